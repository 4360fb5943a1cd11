package infra

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/backtestpersistence/operator/internal/testenv"
)

func owner(i int) Owner {
	return Owner{UID: fmt.Sprintf("uid-%d", i), Namespace: fmt.Sprintf("ns-%d", i), Name: "t"}
}

// TestKeySpaceClaims: prefixes that are equal, contain or are contained in a claimed
// one are refused; siblings are not; takeover and release act only on the named owner.
func TestKeySpaceClaims(t *testing.T) {
	r := startRedis(t)
	c := r.Client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c.Del(ctx, KeySpaceRegistry)
	claim := func(prefix string) KeySpaceClaim { return KeySpaceClaim{Client: c, Prefix: prefix} }

	if err := claim("t:a:").Claim(ctx, owner(1)); err != nil {
		t.Fatal(err)
	}
	if err := claim("t:a:").Claim(ctx, owner(1)); err != nil {
		t.Fatalf("the owner's second claim: %v", err)
	}
	for _, p := range []string{"t:a:", "t:a:b:", "t:", "t:a:{x}:"} {
		err := claim(p).Claim(ctx, owner(2))
		ce, ok := err.(*ClaimedError)
		if !ok || ce.Holder != owner(1) || ce.Overlap != (p != "t:a:") {
			t.Fatalf("claim of %q by another: %#v", p, err)
		}
	}
	if err := claim("t:ab:").Claim(ctx, owner(2)); err != nil {
		t.Fatalf("a sibling prefix: %v", err)
	}
	if ok, err := claim("t:a:").TakeOver(ctx, owner(3), owner(2)); err != nil || ok {
		t.Fatalf("takeover from an owner that is not recorded: %v %v", ok, err)
	}
	if err := claim("t:a:").Release(ctx, owner(2)); err != nil {
		t.Fatal(err)
	}
	if o, found, err := claim("t:a:").Owner(ctx); err != nil || !found || o != owner(1) {
		t.Fatalf("released by a non-owner: %v %v %v", o, found, err)
	}
	if ok, err := claim("t:a:").TakeOver(ctx, owner(1), owner(3)); err != nil || !ok {
		t.Fatalf("takeover: %v %v", ok, err)
	}
	if err := claim("t:a:").Release(ctx, owner(3)); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := claim("t:a:").Owner(ctx); found {
		t.Fatal("release left the claim")
	}
	if err := claim("t:a:b:").Claim(ctx, owner(4)); err != nil {
		t.Fatalf("a released key space can be claimed: %v", err)
	}
}

// TestDatabaseClaimRace: of many claimants of a new database exactly one wins, and
// the marker names it.
func TestDatabaseClaimRace(t *testing.T) {
	if testing.Short() {
		t.Skip("needs FerretDB")
	}
	m, err := testenv.StartMongo(testenv.MongoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(m.URI()).SetMaxPoolSize(16))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Disconnect(context.Background()) }()
	db := c.Database("claim_race")
	defer func() { _ = db.Drop(context.Background()) }()
	claim := DatabaseClaim{DB: db}

	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = claim.Claim(ctx, owner(i))
		}()
	}
	wg.Wait()
	// A loser whose insert failed for another reason than the duplicate key asks again,
	// as the next reconcile would.
	for i, err := range errs {
		if err != nil && !IsClaimed(err) {
			errs[i] = claim.Claim(ctx, owner(i))
		}
	}
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("two winners: %d and %d", winner, i)
			}
			winner = i
		case !IsClaimed(err):
			t.Fatalf("claimant %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no winner")
	}
	if o, found, err := claim.Owner(ctx); err != nil || !found || o.UID != owner(winner).UID {
		t.Fatalf("marker %v %v %v, winner %d", o, found, err, winner)
	}
	if err := claim.Release(ctx, owner(winner+1)); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := claim.Owner(ctx); !found {
		t.Fatal("released by a non-owner")
	}
}
