package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	mongoopts "go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The raw-driver floor of a scenario: as many MongoDB upserts as this project's
// client sent requests with writes in the scenario's run (each counted once, without
// retries), one after another, from the Go driver to the same FerretDB, each a 1 KiB
// document upserted by a unique key into a 50-document collection of a scratch
// database, measured right after that run. A backend that stores each acknowledged
// write in this server before it answers, with at least one upsert per such request,
// cannot spend less time on those requests than this, except where they overlap;
// its reads come on top. It puts the targets in proportion to what the server allows.

// floorKeys is the size of the floor's collection (a small one: FerretDB scans).
const floorKeys = 50

// floorTimeout bounds one floor measurement, so a stalled server cannot hang the
// harness (its runs are reported without a floor).
const floorTimeout = 5 * time.Minute

// measureFloor runs n sequential upserts and returns their total time.
func measureFloor(ctx context.Context, st *stack, n int) (time.Duration, error) {
	if n <= 0 {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, floorTimeout)
	defer cancel()
	// The server's own URI (its path may name the database to authenticate against);
	// the scratch database is chosen below.
	client, err := mongo.Connect(mongoopts.Client().ApplyURI(st.mongo.URI()).SetRetryWrites(false))
	if err != nil {
		return 0, err
	}
	cleanup := func(f func(context.Context) error) {
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = f(c)
	}
	defer cleanup(client.Disconnect)
	db := client.Database("bench-floor")
	defer cleanup(db.Drop)
	coll := db.Collection("items")
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "k", Value: 1}}, Options: mongoopts.Index().SetUnique(true)}); err != nil {
		return 0, fmt.Errorf("floor index: %w", err)
	}
	payload := strings.Repeat("x", 1024)
	upsert := func(i int) error {
		_, err := coll.UpdateOne(ctx, bson.D{{Key: "k", Value: i % floorKeys}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "payload", Value: payload}, {Key: "n", Value: i}}}},
			mongoopts.UpdateOne().SetUpsert(true))
		return err
	}
	for i := range floorKeys { // the collection at its size before timing
		if err := upsert(i); err != nil {
			return 0, fmt.Errorf("floor upsert: %w", err)
		}
	}
	start := time.Now()
	for i := range n {
		if err := upsert(i); err != nil {
			return 0, fmt.Errorf("floor upsert: %w", err)
		}
	}
	return time.Since(start), nil
}
