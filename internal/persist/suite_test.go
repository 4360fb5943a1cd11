package persist

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/backtestpersistence/operator/internal/testenv"
)

// The shared servers of the package's integration tests, started on first use.
var (
	serversOnce sync.Once
	sharedMongo *testenv.Mongo
	sharedRedis *testenv.Redis
	serversErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedMongo != nil {
		sharedMongo.Close()
	}
	if sharedRedis != nil {
		sharedRedis.Close()
	}
	os.Exit(code)
}

// servers returns the shared FerretDB and redis-server, starting them on first use.
func servers(t testing.TB) (*testenv.Mongo, *testenv.Redis) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs FerretDB and redis-server (not in -short)")
	}
	serversOnce.Do(func() {
		if sharedMongo, serversErr = testenv.StartMongo(testenv.MongoOptions{}); serversErr != nil {
			return
		}
		sharedRedis, serversErr = testenv.StartRedis()
	})
	if serversErr != nil {
		t.Fatalf("start servers: %v", serversErr)
	}
	return sharedMongo, sharedRedis
}

func randomName(prefix string) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// fixture is a store under test with its clients and round-trip counter.
type fixture struct {
	t       testing.TB
	store   *Store
	db      *mongo.Database
	mclient *mongo.Client
	rclient *redis.Client
	counter *CommandCounter
	opts    Options
}

// storeConfig adjusts a fixture.
type storeConfig struct {
	cache    bool
	mongoURI string
	redis    *testenv.Redis
	dbName   string
	prefix   string
	mutate   func(*Options)
}

// newFixture opens a store on a fresh database and key prefix.
func newFixture(t testing.TB, cfg storeConfig) *fixture {
	t.Helper()
	m, r := servers(t)
	if cfg.mongoURI == "" {
		cfg.mongoURI = m.URI()
	}
	if cfg.redis == nil {
		cfg.redis = r
	}
	if cfg.dbName == "" {
		cfg.dbName = randomName("t_")
	}
	if cfg.prefix == "" {
		cfg.prefix = randomName("btp:") + ":"
	}
	counter := NewCommandCounter()
	mc, err := mongo.Connect(options.Client().ApplyURI(cfg.mongoURI).SetMaxPoolSize(20).
		SetMonitor(counter.Monitor()).SetServerSelectionTimeout(2 * time.Second).SetRetryWrites(false))
	if err != nil {
		t.Fatalf("mongo connect: %v", err)
	}
	f := &fixture{t: t, mclient: mc, db: mc.Database(cfg.dbName), counter: counter}
	f.opts = Options{Database: f.db, KeyPrefix: cfg.prefix, OpTimeout: 10 * time.Second}
	if cfg.cache {
		f.rclient = guardedClient(cfg.redis)
		f.rclient.AddHook(counter.Hook())
		f.opts.Redis = f.rclient
	}
	if cfg.mutate != nil {
		cfg.mutate(&f.opts)
	}
	s, err := Open(f.opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	f.store = s
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Init(ctx); err != nil {
		t.Fatalf("init: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = f.db.Drop(ctx)
		_ = mc.Disconnect(ctx)
		if f.rclient != nil {
			DetachConnGuard(f.rclient)
			_ = f.rclient.Close()
		}
	})
	return f
}

// guardedClient is a client of r with a ConnGuard, as the manager's pools create them.
func guardedClient(r *testenv.Redis) *redis.Client {
	opts, err := redis.ParseURL(r.URL())
	if err != nil {
		opts = &redis.Options{Addr: r.Addr()}
	}
	g := NewConnGuard(false)
	opts.OnConnect = g.OnConnect
	c := redis.NewClient(opts)
	g.Attach(c)
	return c
}

// with returns the fixture reporting to t (a subtest).
func (f *fixture) with(t testing.TB) *fixture {
	g := *f
	g.t = t
	return &g
}

func (f *fixture) do(req Request) Result {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := f.store.Do(ctx, req)
	if err != nil {
		f.t.Fatalf("%s %s %v: %v", req.Kind, req.Op, req.Key, err)
	}
	return res
}

func (f *fixture) doErr(req Request) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := f.store.Do(ctx, req)
	return err
}

// counted runs fn and returns the round trips it cost.
func (f *fixture) counted(fn func()) Counts {
	before := f.counter.Snapshot()
	fn()
	return f.counter.Snapshot().Sub(before)
}

// jsonEqual compares two JSON texts as JavaScript would see them.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func assertJSON(t testing.TB, what string, got []byte, want string) {
	t.Helper()
	if !jsonEqual(got, []byte(want)) {
		t.Fatalf("%s:\n got: %s\nwant: %s", what, got, want)
	}
}

func ms(v int64) *int64 { return &v }

func keyOf(pairs ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i].(string)] = pairs[i+1]
	}
	return m
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func short(s string) string {
	if len(s) > 200 {
		return s[:200] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return strings.TrimSpace(s)
}
