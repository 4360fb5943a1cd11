package infra

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/backtestpersistence/operator/internal/testenv"
)

// startRedis starts a redis-server of the test's own (skipped with -short).
func startRedis(t *testing.T) *testenv.Redis {
	t.Helper()
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	r, err := testenv.StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// TestPoolsShareAndClose: users of one endpoint share a client; distinct credentials
// get distinct clients; the last release closes the client.
func TestPoolsShareAndClose(t *testing.T) {
	r := startRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	p := NewPools(PoolOptions{})
	a, relA, err := p.Redis(ctx, r.URL())
	if err != nil {
		t.Fatal(err)
	}
	b, relB, err := p.Redis(ctx, r.URL())
	if err != nil {
		t.Fatal(err)
	}
	if a != b || p.Len() != 1 {
		t.Fatalf("same URL: distinct clients or %d pooled", p.Len())
	}
	u, _ := url.Parse(r.URL())
	u.User = url.UserPassword("", "other")
	c, relC, err := p.Redis(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	if c == a || p.Len() != 2 {
		t.Fatalf("other credentials shared a client (%d pooled)", p.Len())
	}
	relC()
	relA()
	relA() // a second call of the same release is a no-op
	if p.Len() != 1 {
		t.Fatalf("after releasing one of two users: %d pooled, want 1", p.Len())
	}
	if _, err := ProbeRedis(ctx, b); err != nil {
		t.Fatalf("client closed while still used: %v", err)
	}
	relB()
	if p.Len() != 0 {
		t.Fatalf("after the last release: %d pooled", p.Len())
	}
	if err := b.Ping(ctx).Err(); err == nil {
		t.Fatal("client still open after its last release")
	}
}

// TestProbeClassification: real servers give the reasons the conditions report.
func TestProbeClassification(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server and FerretDB")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := NewPools(PoolOptions{ConnectTimeout: 2 * time.Second, RedisTimeout: 2 * time.Second})
	defer p.Close()

	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	closed := fmt.Sprintf("127.0.0.1:%d", port)

	rc, rel, err := p.Redis(ctx, "redis://"+closed)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ProbeRedis(ctx, rc)
	rel()
	if Classify(err) != ClassUnreachable {
		t.Fatalf("redis on a closed port: %v classified %v", err, Classify(err))
	}

	mc, rel, err := p.Mongo(ctx, "mongodb://"+closed+"/")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ProbeMongo(ctx, mc)
	rel()
	if Classify(err) != ClassUnreachable {
		t.Fatalf("mongo on a closed port: %v classified %v", err, Classify(err))
	}

	if testing.Short() {
		return
	}
	r, err := testenv.StartRedisWith(testenv.RedisOptions{Password: "right"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.External() {
		rc, rel, err = p.Redis(ctx, "redis://:wrong@"+r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		_, err = ProbeRedis(ctx, rc)
		rel()
		if Classify(err) != ClassAuthFailed {
			t.Fatalf("redis wrong password: %v classified %v", err, Classify(err))
		}
	}

	m, err := testenv.StartMongo(testenv.MongoOptions{Username: "u", Password: "right"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.External() {
		t.Skip("MONGODB_URI names an external server: wrong-password case not checked")
	}
	mc, rel, err = p.Mongo(ctx, m.URI())
	if err != nil {
		t.Fatal(err)
	}
	version, err := ProbeMongo(ctx, mc)
	rel()
	if err != nil || version == "" {
		t.Fatalf("right password: version %q, %v", version, err)
	}
	mc, rel, err = p.Mongo(ctx, "mongodb://u:wrong@"+m.Addr()+"/?authSource=admin")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ProbeMongo(ctx, mc)
	rel()
	if Classify(err) != ClassAuthFailed {
		t.Fatalf("mongo wrong password: %v classified %v", err, Classify(err))
	}
}

// TestPoolsClusterReload: a Cluster client reloads its slot map at the pool's interval,
// not go-redis's 60s default; other topologies keep their own client types.
func TestPoolsClusterReload(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, url string
		opts      PoolOptions
		want      time.Duration // 0: not a Cluster client
	}{
		{"cluster scheme, default", "redis+cluster://127.0.0.1:1", PoolOptions{}, 5 * time.Second},
		{"cluster by addr, configured", "redis://127.0.0.1:1?addr=127.0.0.1:2", PoolOptions{RedisClusterReload: 2 * time.Second}, 2 * time.Second},
		{"single server", "redis://127.0.0.1:1", PoolOptions{}, 0},
		{"sentinel", "redis+sentinel://127.0.0.1:1?master_name=m", PoolOptions{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPools(tc.opts)
			defer p.Close()
			c, rel, err := p.Redis(ctx, tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer rel()
			cc, isCluster := c.(*redis.ClusterClient)
			switch {
			case tc.want == 0 && isCluster:
				t.Fatalf("%s built a Cluster client", tc.url)
			case tc.want != 0 && !isCluster:
				t.Fatalf("%s built %T, want a Cluster client", tc.url, c)
			case tc.want != 0 && cc.Options().ClusterStateReloadInterval != tc.want:
				t.Fatalf("slot map reload every %v, want %v", cc.Options().ClusterStateReloadInterval, tc.want)
			}
		})
	}
}

// TestPoolsKeepRedisTimeouts: a tenant's Redis URL that disables go-redis's
// timeouts (0 or -1 in the URL) still gets the pool's, and one that stretches them
// or the retries gets the bounds: they bound every cache lookup.
func TestPoolsKeepRedisTimeouts(t *testing.T) {
	ctx := context.Background()
	p := NewPools(PoolOptions{RedisIOTimeout: 700 * time.Millisecond, RedisTimeout: 3 * time.Second})
	defer p.Close()
	for _, url := range []string{
		"redis://127.0.0.1:1/0?read_timeout=0&write_timeout=0&dial_timeout=0",
		"redis://127.0.0.1:1/0?read_timeout=-1&write_timeout=-1&dial_timeout=-1",
		"redis://127.0.0.1:1/0",
	} {
		c, rel, err := p.Redis(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		o := c.(*redis.Client).Options()
		rel()
		if o.ReadTimeout != 700*time.Millisecond || o.WriteTimeout != 700*time.Millisecond || o.DialTimeout != 3*time.Second {
			t.Fatalf("%s: read %v, write %v, dial %v; want the pool's 700ms, 700ms, 3s", url, o.ReadTimeout, o.WriteTimeout, o.DialTimeout)
		}
	}
	// A URL's own timeouts are kept within the bounds, and cut to them beyond.
	c, rel, err := p.Redis(ctx, "redis://127.0.0.1:1/0?read_timeout=2s&pool_timeout=3s&max_retries=2")
	if err != nil {
		t.Fatal(err)
	}
	o := c.(*redis.Client).Options()
	rel()
	if o.ReadTimeout != 2*time.Second || o.PoolTimeout != 3*time.Second || o.MaxRetries != 2 {
		t.Fatalf("read_timeout=2s pool_timeout=3s max_retries=2 became %v, %v, %d", o.ReadTimeout, o.PoolTimeout, o.MaxRetries)
	}
	c, rel, err = p.Redis(ctx, "redis://127.0.0.1:1/0?read_timeout=60s&write_timeout=60s&dial_timeout=60s&pool_timeout=60s&max_retries=100")
	if err != nil {
		t.Fatal(err)
	}
	o = c.(*redis.Client).Options()
	rel()
	if o.ReadTimeout != maxRedisWait || o.WriteTimeout != maxRedisWait || o.DialTimeout != maxRedisWait ||
		o.PoolTimeout != maxRedisWait || o.MaxRetries != maxRedisRetries {
		t.Fatalf("a URL asking for 60s waits and 100 retries got read %v, write %v, dial %v, pool %v, %d retries",
			o.ReadTimeout, o.WriteTimeout, o.DialTimeout, o.PoolTimeout, o.MaxRetries)
	}
}
