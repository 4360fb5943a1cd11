package testenv

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func TestRedisStopStart(t *testing.T) {
	r, err := StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.External() {
		t.Skip("REDIS_URL names an external server: stop/start is not tested against it")
	}
	c := r.Client()
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping succeeded against a stopped redis-server")
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	// A restarted server is empty: tests of cache coherence rely on that.
	if v, err := c.Get(ctx, "k").Result(); err == nil {
		t.Fatalf("restarted redis-server still has k=%q", v)
	}
}

func TestMongoBackends(t *testing.T) {
	for name, opts := range map[string]MongoOptions{
		BackendSQLite:     {Backend: BackendSQLite},
		"sqlite-pragmas":  {Backend: BackendSQLite, SQLitePragmas: SQLiteFastPragmas},
		BackendPostgreSQL: {Backend: BackendPostgreSQL},
	} {
		t.Run(name, func(t *testing.T) {
			if opts.Backend == BackendPostgreSQL && !PostgresAvailable() {
				t.Skip("PostgreSQL 15 binaries not installed")
			}
			m, err := StartMongo(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.External() {
				t.Skip("MONGODB_URI names an external server")
			}
			c, err := m.Client()
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Disconnect(context.Background()) }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			coll := c.Database("testenv").Collection("c")
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "v", Value: "x"}}); err != nil {
				t.Fatal(err)
			}
			if err := m.Stop(); err != nil {
				t.Fatal(err)
			}
			short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
			err = coll.FindOne(short, bson.D{{Key: "_id", Value: 1}}).Err()
			cancelShort()
			if err == nil {
				t.Fatal("read succeeded against a stopped FerretDB")
			}
			if err := m.Start(); err != nil {
				t.Fatal(err)
			}
			// Data survives a restart of FerretDB (its backend keeps running).
			var doc bson.M
			if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: 1}}).Decode(&doc); err != nil {
				t.Fatalf("read after restart: %v", err)
			}
			if doc["v"] != "x" {
				t.Fatalf("read after restart: %v", doc)
			}
		})
	}
}

func TestMongoAuthentication(t *testing.T) {
	m, err := StartMongo(MongoOptions{Backend: BackendSQLite, Username: "tenant", Password: "right"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.External() {
		t.Skip("MONGODB_URI names an external server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ping := func(uri string) error {
		c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second))
		if err != nil {
			return err
		}
		defer func() { _ = c.Disconnect(context.Background()) }()
		return c.Database("admin").RunCommand(ctx, bson.D{{Key: "listCollections", Value: 1}}).Err()
	}
	if err := ping(m.URI()); err != nil {
		t.Fatalf("right password: %v", err)
	}
	err = ping("mongodb://tenant:wrong@" + m.Addr() + "/?authSource=admin")
	var ce mongo.CommandError
	var se mongo.ServerError
	switch {
	case err == nil:
		t.Fatal("wrong password accepted")
	case errors.As(err, &ce) && ce.Code == 18, errors.As(err, &se) && se.HasErrorCode(18):
	default:
		t.Fatalf("wrong password: want error 18 (AuthenticationFailed), got %v", err)
	}
}
