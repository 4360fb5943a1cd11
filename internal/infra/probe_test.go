package infra

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/backtestpersistence/operator/internal/testenv"
)

// TestProbeMongoAfterRestart: the first probe after a server restart finds only dead
// pooled connections; it must still report the server as up (one retry on a fresh
// connection), or every restart would flap MongoReady to False for an interval.
func TestProbeMongoAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("needs FerretDB")
	}
	m, err := testenv.StartMongo(testenv.MongoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.External() {
		t.Skip("MONGODB_URI names an external server: it cannot be restarted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A long heartbeat, so only the probe itself can discover the dead connections.
	c, err := mongo.Connect(options.Client().ApplyURI(m.URI()).SetHeartbeatInterval(time.Hour).SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Disconnect(context.Background()) }()
	if _, err := ProbeMongo(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := ProbeMongo(ctx, c); err != nil {
		t.Fatalf("first probe after a restart: %v", err)
	}
}

// TestProbeRedisAfterRestart: as for MongoDB, a restart must not make the first probe fail.
func TestProbeRedisAfterRestart(t *testing.T) {
	r := startRedis(t)
	if r.External() {
		t.Skip("REDIS_URL names an external server: it cannot be restarted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := NewPools(PoolOptions{})
	defer p.Close()
	c, release, err := p.Redis(ctx, r.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	// Several pooled connections (concurrent blocking reads), all of which die with the server.
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.BLPop(ctx, time.Second, "btp-probe-test-none")
		}()
	}
	wg.Wait()
	if n := c.(*redis.Client).PoolStats().TotalConns; n < 2 {
		t.Fatalf("only %d pooled connections", n)
	}
	if _, err := ProbeRedis(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := ProbeRedis(ctx, c); err != nil {
		t.Fatalf("first probe after a restart: %v", err)
	}
}
