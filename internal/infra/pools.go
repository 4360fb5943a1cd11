package infra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/backtestpersistence/operator/internal/persist"
)

// PoolOptions tune the clients Pools creates. Zero values take the defaults.
type PoolOptions struct {
	// MongoMaxPoolSize caps connections per MongoDB client (default 16). FerretDB wedges
	// when its clients together open more connections than its own backend pool.
	MongoMaxPoolSize uint64
	// ConnectTimeout bounds connecting and selecting a server (default 5s).
	ConnectTimeout time.Duration
	// RedisPoolSize caps connections per Redis node (default 16).
	RedisPoolSize int
	// RedisTimeout bounds Redis dials (default 3s).
	RedisTimeout time.Duration
	// RedisIOTimeout bounds each Redis read and write (default 500ms): the store sets no
	// timer of its own on cache lookups, so a hung Redis costs a read at most this long
	// before the store falls back to MongoDB.
	RedisIOTimeout time.Duration
	// CloseTimeout bounds closing a client when its last user releases it (default 5s).
	CloseTimeout time.Duration
	// RedisClusterReload is how often a Redis Cluster client reloads its slot map (default
	// 5s). Without it a client learns of a failover only from a MOVED reply or after
	// go-redis's own 60s, and sends a dead master's slots to a closed port until then.
	RedisClusterReload time.Duration
	// RedisDialer, when set, opens every Redis connection instead of a plain TCP dial
	// (tests route one gateway replica's Redis traffic through a fault proxy).
	RedisDialer func(ctx context.Context, network, addr string) (net.Conn, error)
	// Log receives close errors; connection errors are the caller's to report.
	Log logr.Logger
}

func (o *PoolOptions) defaults() {
	if o.MongoMaxPoolSize == 0 {
		o.MongoMaxPoolSize = 16
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.RedisPoolSize == 0 {
		o.RedisPoolSize = 16
	}
	if o.RedisIOTimeout == 0 {
		o.RedisIOTimeout = 500 * time.Millisecond
	}
	if o.RedisTimeout == 0 {
		o.RedisTimeout = 3 * time.Second
	}
	if o.CloseTimeout == 0 {
		o.CloseTimeout = 5 * time.Second
	}
	if o.RedisClusterReload == 0 {
		o.RedisClusterReload = 5 * time.Second
	}
}

// ClientOption adjusts one client request.
type ClientOption func(*clientSettings)

type clientSettings struct {
	tls *TLSMaterial
}

// WithTLS applies TLS material from the spec (nil: the connection string decides).
func WithTLS(m *TLSMaterial) ClientOption { return func(s *clientSettings) { s.tls = m } }

// Pools shares MongoDB and Redis clients among all users of the same endpoint and
// credentials (tenants, the reconciler and the gateway). A client is created on first
// use, counted per user, and closed when its last user releases it. Safe for concurrent use.
type Pools struct {
	opts PoolOptions

	mu      sync.Mutex
	clients map[string]*pooledClient
}

type pooledClient struct {
	refs  int
	mongo *mongo.Client
	redis redis.UniversalClient
}

// NewPools returns empty pools.
func NewPools(opts PoolOptions) *Pools {
	opts.defaults()
	return &Pools{opts: opts, clients: map[string]*pooledClient{}}
}

// Mongo returns the shared client for uri and a release function the caller must call
// exactly once when done (later calls are no-ops). The client connects lazily: a
// server that is down is reported by the first operation, not here. Errors here are
// an *InvalidURIError or an unreachable SRV name.
func (p *Pools) Mongo(ctx context.Context, uri string, opts ...ClientOption) (*mongo.Client, func(), error) {
	s := settings(opts)
	key := poolKey("mongo", uri, s)
	if pc, release := p.acquire(key); pc != nil {
		return pc.mongo, release, nil
	}
	base := options.Client().
		SetMaxPoolSize(p.opts.MongoMaxPoolSize).
		SetConnectTimeout(p.opts.ConnectTimeout).
		SetServerSelectionTimeout(p.opts.ConnectTimeout).
		SetAppName("backtest-persistence")
	co, err := mongoClientOptions(uri, base)
	if err != nil {
		return nil, nil, err
	}
	if s.tls != nil {
		cfg, err := s.tls.Config()
		if err != nil {
			return nil, nil, err
		}
		co.SetTLSConfig(cfg)
	}
	c, err := mongo.Connect(co)
	if err != nil {
		return nil, nil, fmt.Errorf("create mongo client: %w", err)
	}
	pc, release := p.insert(key, &pooledClient{mongo: c})
	if pc.mongo != c { // another caller won the race; ours was never used
		p.close(&pooledClient{mongo: c})
	}
	return pc.mongo, release, nil
}

// Redis returns the shared client for url and a release function, as Mongo does.
// Errors are *InvalidURIError.
// The most a tenant's Redis URL may ask of a client: each wait (dial, read, write, a
// pooled connection) and the retries of a command. A cache lookup then ends within
// about maxRedisWait × (maxRedisRetries+1) even against a stalled server.
const (
	maxRedisWait    = 5 * time.Second
	maxRedisRetries = 3
)

func (p *Pools) Redis(ctx context.Context, url string, opts ...ClientOption) (redis.UniversalClient, func(), error) {
	s := settings(opts)
	key := poolKey("redis", url, s)
	if pc, release := p.acquire(key); pc != nil {
		return pc.redis, release, nil
	}
	uo, err := ParseRedisURL(url)
	if err != nil {
		return nil, nil, err
	}
	if s.tls != nil {
		cfg, err := s.tls.Config()
		if err != nil {
			return nil, nil, err
		}
		if uo.TLSConfig != nil && cfg.ServerName == "" {
			cfg.ServerName = uo.TLSConfig.ServerName
		}
		uo.TLSConfig = cfg
	}
	if uo.PoolSize == 0 {
		uo.PoolSize = p.opts.RedisPoolSize
	}
	// A URL cannot take the timeouts away (read_timeout=0 or -1 disables them in
	// go-redis) nor stretch them past maxRedisWait: the stores rely on them to bound
	// every cache lookup, which sets no timer of its own and which go-redis does not
	// bound by the caller's context.
	for _, t := range []struct {
		d    *time.Duration
		dflt time.Duration
	}{
		{&uo.DialTimeout, p.opts.RedisTimeout}, {&uo.ReadTimeout, p.opts.RedisIOTimeout}, {&uo.WriteTimeout, p.opts.RedisIOTimeout},
	} {
		switch {
		case *t.d <= 0:
			*t.d = t.dflt
		case *t.d > maxRedisWait:
			*t.d = maxRedisWait
		}
	}
	if uo.PoolTimeout <= 0 || uo.PoolTimeout > maxRedisWait {
		uo.PoolTimeout = min(uo.ReadTimeout+time.Second, maxRedisWait) // go-redis's default, bounded
	}
	if uo.MaxRetries > maxRedisRetries {
		uo.MaxRetries = maxRedisRetries
	}
	if uo.Dialer == nil && p.opts.RedisDialer != nil {
		uo.Dialer = p.opts.RedisDialer
	}
	if uo.MaxRetries == 0 {
		uo.MaxRetries = 1
	}
	if uo.DialerRetries == 0 {
		// A refused dial is reported at once; the next health check or request dials again.
		uo.DialerRetries = 1
	}
	// Every new connection checks Redis's run id, so the stores on this client notice a
	// restart or failover before serving from it (persist.ConnGuard).
	perNode := uo.IsClusterMode || uo.RouteByLatency || uo.RouteRandomly || (uo.MasterName == "" && len(uo.Addrs) > 1)
	guard := persist.NewConnGuard(perNode)
	if prev := uo.OnConnect; prev != nil {
		uo.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
			if err := prev(ctx, cn); err != nil {
				return err
			}
			return guard.OnConnect(ctx, cn)
		}
	} else {
		uo.OnConnect = guard.OnConnect
	}
	c := p.newRedisClient(uo)
	guard.Attach(c)
	pc, release := p.insert(key, &pooledClient{redis: c})
	if pc.redis != c {
		p.close(&pooledClient{redis: c})
	}
	return pc.redis, release, nil
}

// Len is the number of open clients (for tests and metrics).
func (p *Pools) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.clients)
}

// Close closes every client regardless of users; for process shutdown.
func (p *Pools) Close() {
	p.mu.Lock()
	all := p.clients
	p.clients = map[string]*pooledClient{}
	p.mu.Unlock()
	for _, pc := range all {
		p.close(pc)
	}
}

func (p *Pools) acquire(key string) (*pooledClient, func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc, ok := p.clients[key]
	if !ok {
		return nil, nil
	}
	pc.refs++
	return pc, p.releaser(key, pc)
}

// insert adds pc unless a client for key appeared meanwhile, and takes a reference
// on whichever client is stored.
func (p *Pools) insert(key string, pc *pooledClient) (*pooledClient, func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if existing, ok := p.clients[key]; ok {
		pc = existing
	} else {
		p.clients[key] = pc
	}
	pc.refs++
	return pc, p.releaser(key, pc)
}

func (p *Pools) releaser(key string, pc *pooledClient) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			pc.refs--
			last := pc.refs == 0 && p.clients[key] == pc
			if last {
				delete(p.clients, key)
			}
			p.mu.Unlock()
			if last {
				p.close(pc)
			}
		})
	}
}

func (p *Pools) close(pc *pooledClient) {
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.CloseTimeout)
	defer cancel()
	if pc.mongo != nil {
		if err := pc.mongo.Disconnect(ctx); err != nil {
			p.opts.Log.V(1).Info("closing mongo client", "error", err.Error())
		}
	}
	if pc.redis != nil {
		persist.DetachConnGuard(pc.redis)
		if err := pc.redis.Close(); err != nil {
			p.opts.Log.V(1).Info("closing redis client", "error", err.Error())
		}
	}
}

func settings(opts []ClientOption) clientSettings {
	var s clientSettings
	for _, o := range opts {
		o(&s)
	}
	return s
}

// poolKey hashes the connection string (credentials included, so clients with
// different credentials are never shared) without keeping it in memory as a map key.
func poolKey(kind, uri string, s clientSettings) string {
	h := sha256.Sum256([]byte(kind + "\x00" + uri + "\x00" + s.tls.fingerprint()))
	return hex.EncodeToString(h[:])
}

// newRedisClient builds the client for uo; a Cluster client gets the pool's slot-map
// reload interval, which UniversalOptions cannot carry.
func (p *Pools) newRedisClient(uo *redis.UniversalOptions) redis.UniversalClient {
	if uo.MasterName != "" || (!uo.IsClusterMode && len(uo.Addrs) < 2) {
		return redis.NewUniversalClient(uo)
	}
	co := uo.Cluster()
	co.ClusterStateReloadInterval = p.opts.RedisClusterReload
	return redis.NewClusterClient(co)
}
