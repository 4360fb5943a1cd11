package persist

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/backtestpersistence/operator/internal/history"
	"github.com/backtestpersistence/operator/internal/testenv"
)

// The history tests run concurrent writers and readers through two Stores on the
// same database and key prefix, each with its own MongoDB and Redis clients (as two
// gateway replicas have), inject one fault per schedule, and check the recorded
// history (package history): no stale, non-monotonic, unknown or lost read. A write
// that fails is indeterminate, so faults that fail operations are no violation; a
// read that returns is judged.

// historyWorkload is the size of every schedule's workload.
var historyWorkload = history.Workload{Writers: 8, KeysPerWriter: 4, Readers: 8, Sides: 2}

// historySides are the two stores of a schedule and the servers behind them.
type historySides struct {
	stores [2]*Store
	db     string
}

// historyRedisClient is a client as the gateway's pools build one: short I/O
// timeouts, one retry, one dial attempt, and the connection guard.
func historyRedisClient(t *testing.T, uo redis.UniversalOptions) redis.UniversalClient {
	t.Helper()
	uo.PoolSize, uo.DialTimeout, uo.ReadTimeout, uo.WriteTimeout = 16, time.Second, 500*time.Millisecond, 500*time.Millisecond
	uo.MaxRetries, uo.DialerRetries = 1, 1
	guard := NewConnGuard(uo.IsClusterMode)
	uo.OnConnect = guard.OnConnect
	var c redis.UniversalClient
	if uo.IsClusterMode {
		co := uo.Cluster()
		// go-redis reloads a cluster's slot map only on MOVED or every 60 s by default:
		// without this the client would keep dialing a dead master for a minute.
		co.ClusterStateReloadInterval = 500 * time.Millisecond
		c = redis.NewClusterClient(co)
	} else {
		c = redis.NewUniversalClient(&uo)
	}
	guard.Attach(c)
	t.Cleanup(func() { DetachConnGuard(c); _ = c.Close() })
	return c
}

// redisAt is the client options of one server at addr.
func redisAt(addr string) redis.UniversalOptions {
	return redis.UniversalOptions{Addrs: []string{addr}}
}

// openSides opens two stores on one database and prefix, side i on redisURLs[i].
func openSides(t *testing.T, mongoURI string, redisOpts [2]redis.UniversalOptions) *historySides {
	return openSidesOn(t, [2]string{mongoURI, mongoURI}, redisOpts)
}

// openSidesOn is openSides with side i on mongoURIs[i] (one database behind both).
func openSidesOn(t *testing.T, mongoURIs [2]string, redisOpts [2]redis.UniversalOptions) *historySides {
	t.Helper()
	h := &historySides{db: randomName("h_")}
	prefix := randomName("btp:") + ":"
	for i := range h.stores {
		mc, err := mongo.Connect(options.Client().ApplyURI(mongoURIs[i]).SetMaxPoolSize(20).
			SetServerSelectionTimeout(2 * time.Second).SetRetryWrites(false))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = mc.Disconnect(context.Background()) })
		s, err := Open(Options{Database: mc.Database(h.db), Redis: historyRedisClient(t, redisOpts[i]),
			KeyPrefix: prefix, OpTimeout: 3 * time.Second, HealthInterval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = s.Init(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		h.stores[i] = s
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = h.stores[0].opts.Database.Drop(ctx)
	})
	return h
}

func historyKey(key string) map[string]any { return keyOf("signalId", key, "bucketName", "history") }

// workload binds the history workload to the two stores (State records holding the value).
func (h *historySides) workload() history.Workload {
	w := historyWorkload
	w.Write = func(ctx context.Context, side int, key string, v int64) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := h.stores[side].Do(ctx, Request{Kind: KindState, Op: OpWrite, Key: historyKey(key),
			Value: mustJSON(map[string]any{"id": key, "data": v, "when": 1})})
		return err
	}
	w.Read = func(ctx context.Context, side int, key string) (int64, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		res, err := h.stores[side].Do(ctx, Request{Kind: KindState, Op: OpRead, Key: historyKey(key)})
		if err != nil {
			return 0, err
		}
		return stateData(res.Value)
	}
	return w
}

// stateData is the integer a history write stored (0 for an absent record).
func stateData(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var v struct {
		Data int64 `json:"data"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, fmt.Errorf("unexpected value %s: %w", raw, err)
	}
	return v.Data, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// steps runs fault steps in order, stopping at the first error.
func steps(ctx context.Context, fns ...func() error) error {
	for _, fn := range fns {
		if err := fn(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

func pause(ctx context.Context, d time.Duration) func() error {
	return func() error { return sleep(ctx, d) }
}

// historySchedule is one fault schedule: setup starts its servers and returns the
// sides and the fault to run while the workload runs.
type historySchedule struct {
	name  string
	setup func(t *testing.T) (*historySides, func(ctx context.Context) error)
}

func historySchedules() []historySchedule {
	ownSides := func(t *testing.T, cut bool) (*historySides, *testenv.Redis, *testenv.Proxy) {
		m, _ := servers(t)
		r := ownRedis(t)
		urls := [2]redis.UniversalOptions{redisAt(r.Addr()), redisAt(r.Addr())}
		var p *testenv.Proxy
		if cut {
			var err error
			if p, err = testenv.StartProxy(r.Addr()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close)
			urls[1] = redisAt(p.Addr())
		}
		return openSides(t, m.URI(), urls), r, p
	}
	return []historySchedule{
		{"no fault", func(t *testing.T) (*historySides, func(context.Context) error) {
			h, _, _ := ownSides(t, false)
			return h, func(ctx context.Context) error { return sleep(ctx, 3*time.Second) }
		}},
		{"redis killed and restarted", func(t *testing.T) (*historySides, func(context.Context) error) {
			h, r, _ := ownSides(t, false)
			return h, func(ctx context.Context) error {
				return steps(ctx, pause(ctx, time.Second), r.Stop, pause(ctx, 2*time.Second), r.Start, pause(ctx, 1500*time.Millisecond))
			}
		}},
		{"redis flushed", func(t *testing.T) (*historySides, func(context.Context) error) {
			h, r, _ := ownSides(t, false)
			admin := r.Client()
			t.Cleanup(func() { _ = admin.Close() })
			flush := func() error { return admin.FlushAll(context.Background()).Err() }
			return h, func(ctx context.Context) error {
				return steps(ctx, pause(ctx, time.Second), flush, pause(ctx, time.Second), flush, pause(ctx, time.Second))
			}
		}},
		{"redis paused (SIGSTOP 3s)", func(t *testing.T) (*historySides, func(context.Context) error) {
			h, r, _ := ownSides(t, false)
			sig := func(s syscall.Signal) func() error { return func() error { return syscall.Kill(r.PID(), s) } }
			t.Cleanup(func() { _ = sig(syscall.SIGCONT)() })
			return h, func(ctx context.Context) error {
				return steps(ctx, pause(ctx, time.Second), sig(syscall.SIGSTOP), pause(ctx, 3*time.Second), sig(syscall.SIGCONT), pause(ctx, 1500*time.Millisecond))
			}
		}},
		{"one side's redis dropped 4s", func(t *testing.T) (*historySides, func(context.Context) error) {
			h, _, p := ownSides(t, true)
			return h, func(ctx context.Context) error {
				return steps(ctx, pause(ctx, time.Second), func() error { p.Drop(); return nil }, pause(ctx, 4*time.Second),
					func() error { p.Pass(); return nil }, pause(ctx, 1500*time.Millisecond))
			}
		}},
		{"one side's redis stalled 4s", func(t *testing.T) (*historySides, func(context.Context) error) {
			h, _, p := ownSides(t, true)
			return h, func(ctx context.Context) error {
				return steps(ctx, pause(ctx, time.Second), func() error { p.Stall(); return nil }, pause(ctx, 4*time.Second),
					func() error { p.Pass(); return nil }, pause(ctx, 1500*time.Millisecond))
			}
		}},
		{"ferretdb killed and restarted", func(t *testing.T) (*historySides, func(context.Context) error) {
			m := ownMongo(t, "this schedule")
			r := ownRedis(t)
			h := openSides(t, m.URI(), [2]redis.UniversalOptions{redisAt(r.Addr()), redisAt(r.Addr())})
			return h, func(ctx context.Context) error {
				return steps(ctx, pause(ctx, time.Second), m.Stop, pause(ctx, 2*time.Second), m.Start, pause(ctx, 1500*time.Millisecond))
			}
		}},
		// Commands sent while FerretDB is stopped wait in its sockets and run when it
		// resumes, after their writes have failed on the client's timeout: a late write
		// must not overwrite a later acknowledged one.
		{"ferretdb paused (SIGSTOP 4s)", func(t *testing.T) (*historySides, func(context.Context) error) {
			m := ownMongo(t, "this schedule")
			r := ownRedis(t)
			h := openSides(t, m.URI(), [2]redis.UniversalOptions{redisAt(r.Addr()), redisAt(r.Addr())})
			pid := m.PID()
			sig := func(s syscall.Signal) func() error { return func() error { return syscall.Kill(pid, s) } }
			t.Cleanup(func() { _ = sig(syscall.SIGCONT)() })
			return h, func(ctx context.Context) error {
				return steps(ctx, pause(ctx, time.Second), sig(syscall.SIGSTOP), pause(ctx, 4*time.Second), sig(syscall.SIGCONT),
					pause(ctx, time.Second), sig(syscall.SIGSTOP), pause(ctx, 3500*time.Millisecond), sig(syscall.SIGCONT), pause(ctx, 1500*time.Millisecond))
			}
		}},
		// One side's path to FerretDB holds its bytes for 4s, then delivers them: that
		// side's writes fail on their timeout and are applied later.
		{"one side's ferretdb stalled 4s", func(t *testing.T) (*historySides, func(context.Context) error) {
			m, _ := servers(t)
			r := ownRedis(t)
			p, err := testenv.StartProxy(m.Addr())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close)
			h := openSidesOn(t, [2]string{m.URI(), strings.Replace(m.URI(), m.Addr(), p.Addr(), 1)},
				[2]redis.UniversalOptions{redisAt(r.Addr()), redisAt(r.Addr())})
			return h, func(ctx context.Context) error {
				return steps(ctx, pause(ctx, time.Second), func() error { p.Stall(); return nil }, pause(ctx, 4*time.Second),
					func() error { p.Pass(); return nil }, pause(ctx, time.Second), func() error { p.Stall(); return nil },
					pause(ctx, 3500*time.Millisecond), func() error { p.Pass(); return nil }, pause(ctx, 1500*time.Millisecond))
			}
		}},
		{"sentinel failover to a lagging replica", func(t *testing.T) (*historySides, func(context.Context) error) {
			m, _ := servers(t)
			s, err := testenv.StartSentinel(testenv.SentinelOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			sentinelOpts := redis.UniversalOptions{Addrs: s.SentinelAddrs(), MasterName: s.MasterName()}
			h := openSides(t, m.URI(), [2]redis.UniversalOptions{sentinelOpts, sentinelOpts})
			return h, func(ctx context.Context) error {
				return steps(ctx, pause(ctx, time.Second), s.CutReplica, pause(ctx, time.Second),
					func() error { _, err := s.KillMaster(); return err }, pause(ctx, 2*time.Second))
			}
		}},
		{"cluster failover to a lagging replica", func(t *testing.T) (*historySides, func(context.Context) error) {
			m, _ := servers(t)
			c, err := testenv.StartCluster()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			clusterOpts := redis.UniversalOptions{Addrs: c.Addrs(), IsClusterMode: true}
			h := openSides(t, m.URI(), [2]redis.UniversalOptions{clusterOpts, clusterOpts})
			slotKey := h.stores[0].keys.epoch() // every key of the tenant is in this slot
			return h, func(ctx context.Context) error {
				return steps(ctx, pause(ctx, time.Second), func() error { return c.CutReplica(slotKey) }, pause(ctx, time.Second),
					func() error { _, _, err := c.KillMasterOf(slotKey); return err }, pause(ctx, 2*time.Second))
			}
		}},
	}
}

// TestHistory runs every schedule and checks its history. Each schedule's line of
// the table (operations and violations) is logged.
func TestHistory(t *testing.T) {
	servers(t)
	redis.SetLogger(quietLogger{})
	var table []string
	for _, sc := range historySchedules() {
		t.Run(sc.name, func(t *testing.T) {
			h, fault := sc.setup(t)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			table = append(table, history.Verify(ctx, t, sc.name, h.workload(), fault))
		})
	}
	t.Log("history schedules (two stores, one database and prefix):\n" + strings.Join(table, "\n"))
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...interface{}) {}
