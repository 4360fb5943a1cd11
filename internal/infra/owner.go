package infra

import (
	"context"
	"errors"

	v1 "github.com/backtestpersistence/operator/api/v1"
)

// Owner identifies the BacktestPersistence a database or a Redis key space belongs
// to. The UID decides; namespace and name let the controller tell whether the owner
// still exists (a Retained database outlives its object).
type Owner struct {
	UID       string
	Namespace string
	Name      string
}

// OwnerOf is the owner record of obj.
func OwnerOf(obj *v1.BacktestPersistence) Owner {
	return Owner{UID: string(obj.UID), Namespace: obj.Namespace, Name: obj.Name}
}

// Resource names what a claim is about.
type Resource string

// The resources a BacktestPersistence owns.
const (
	ResourceDatabase Resource = "database"
	ResourceKeySpace Resource = "Redis key space"
)

// ClaimedError says the database or key space belongs to another object. Holder is
// for the controller's decisions only: the message never names it, so a condition
// built from Error() tells a tenant nothing about other tenants.
type ClaimedError struct {
	Resource Resource
	// Holder is the owner recorded in the data.
	Holder Owner
	// Overlap: the holder's key prefix differs from the claimed one but one contains
	// the other, so the claim cannot be taken over as a whole.
	Overlap bool
}

func (e *ClaimedError) Error() string {
	if e.Resource == ResourceKeySpace {
		return "the Redis key prefix overlaps the key space of another BacktestPersistence on this server"
	}
	return "the database is owned by another BacktestPersistence"
}

// IsClaimed reports whether err is (or wraps) a *ClaimedError.
func IsClaimed(err error) bool {
	var c *ClaimedError
	return errors.As(err, &c)
}

// Claim is one database or key space that can be claimed for an owner.
type Claim interface {
	// What says which resource this is.
	What() Resource
	// Claim records owner as the owner unless another owner is recorded; it
	// returns nil when owner owns it (now or already), a *ClaimedError when another does.
	Claim(ctx context.Context, owner Owner) error
	// TakeOver replaces the recorded owner from by to, only if from is still recorded;
	// false when it no longer was.
	TakeOver(ctx context.Context, from, to Owner) (bool, error)
	// Owner returns the recorded owner; false when none is recorded.
	Owner(ctx context.Context) (Owner, bool, error)
	// Release removes the record when it names owner.
	Release(ctx context.Context, owner Owner) error
}
