package infra

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// OwnerCollection is the collection of a tenant's database that holds its ownership
// marker: one document with _id "owner". The unique _id makes the first insert the
// only successful claim, also when claimants race.
const OwnerCollection = "btp-owner"

const ownerDocID = "owner"

// ownerDoc is the ownership marker of a database.
type ownerDoc struct {
	ID        string    `bson:"_id"`
	UID       string    `bson:"uid"`
	Namespace string    `bson:"namespace"`
	Name      string    `bson:"name"`
	ClaimedAt time.Time `bson:"claimedAt"`
}

func (d ownerDoc) owner() Owner { return Owner{UID: d.UID, Namespace: d.Namespace, Name: d.Name} }

func markerOf(o Owner) ownerDoc {
	return ownerDoc{ID: ownerDocID, UID: o.UID, Namespace: o.Namespace, Name: o.Name, ClaimedAt: time.Now().UTC().Truncate(time.Millisecond)}
}

// DatabaseClaim is the ownership of one MongoDB database.
type DatabaseClaim struct {
	DB *mongo.Database
}

// What implements Claim.
func (c DatabaseClaim) What() Resource { return ResourceDatabase }

// Claim implements Claim: it inserts the marker; a duplicate key means a marker
// exists, which is then read and compared. An existing database without a marker
// (for example one written by @backtest-kit/mongo) is claimed by the first caller.
func (c DatabaseClaim) Claim(ctx context.Context, owner Owner) error {
	_, err := c.DB.Collection(OwnerCollection).InsertOne(ctx, markerOf(owner))
	if err == nil {
		return nil
	}
	// A racing claimant may also make the insert fail otherwise (FerretDB creating
	// the collection concurrently): whatever is recorded now decides.
	cur, found, rerr := c.Owner(ctx)
	switch {
	case rerr != nil:
		return errors.Join(fmt.Errorf("claim database %s: %w", c.DB.Name(), err), rerr)
	case !found:
		return fmt.Errorf("claim database %s: %w", c.DB.Name(), err)
	case cur.UID != owner.UID:
		return &ClaimedError{Resource: ResourceDatabase, Holder: cur}
	}
	return nil
}

// TakeOver implements Claim with a conditional replace of the marker.
func (c DatabaseClaim) TakeOver(ctx context.Context, from, to Owner) (bool, error) {
	res, err := c.DB.Collection(OwnerCollection).ReplaceOne(ctx,
		bson.D{{Key: "_id", Value: ownerDocID}, {Key: "uid", Value: from.UID}}, markerOf(to))
	if err != nil {
		return false, fmt.Errorf("take over database %s: %w", c.DB.Name(), err)
	}
	return res.MatchedCount == 1, nil
}

// Owner implements Claim.
func (c DatabaseClaim) Owner(ctx context.Context) (Owner, bool, error) {
	var d ownerDoc
	err := c.DB.Collection(OwnerCollection).FindOne(ctx, bson.D{{Key: "_id", Value: ownerDocID}}).Decode(&d)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return Owner{}, false, nil
	case err != nil:
		return Owner{}, false, fmt.Errorf("read owner of database %s: %w", c.DB.Name(), err)
	}
	return d.owner(), true, nil
}

// Release implements Claim. Dropping the database removes the marker with it; this
// is for a database that is kept.
func (c DatabaseClaim) Release(ctx context.Context, owner Owner) error {
	_, err := c.DB.Collection(OwnerCollection).DeleteOne(ctx, bson.D{{Key: "_id", Value: ownerDocID}, {Key: "uid", Value: owner.UID}})
	if err != nil {
		return fmt.Errorf("release database %s: %w", c.DB.Name(), err)
	}
	return nil
}
