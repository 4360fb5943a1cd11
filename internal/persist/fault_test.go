package persist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/backtestpersistence/operator/internal/testenv"
)

// eventually polls cond until it holds or the deadline passes (a wait, not a timing assertion).
func eventually(t *testing.T, what string, deadline time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("%s: still not true after %v", what, deadline)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ownRedis(t *testing.T) *testenv.Redis {
	t.Helper()
	servers(t)
	r, err := testenv.StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if r.External() {
		t.Skip("REDIS_URL names an external Redis: this test must kill and restart it")
	}
	return r
}

// ownMongo starts a FerretDB of the test's own, which it may stop and restart.
func ownMongo(t *testing.T, what string) *testenv.Mongo {
	t.Helper()
	servers(t)
	m, err := testenv.StartMongo(testenv.MongoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	if m.External() {
		t.Skip("MONGODB_URI names an external server: " + what + " must stop and restart it")
	}
	return m
}

func stateValue(n int) string {
	return string(mustJSON(map[string]any{"id": "x", "data": n, "when": 1}))
}

// Redis killed: reads keep working on MongoDB; writes fail with ErrUnavailable and
// change nothing (they cannot mark the cache other replicas may be reading), except
// list writes that change nothing. Restarted empty: writes work again, the cache
// comes back into use and serves the latest values.
func TestRedisKilledAndRestarted(t *testing.T) {
	r := ownRedis(t)
	f := newFixture(t, storeConfig{cache: true, redis: r, mutate: func(o *Options) { o.HealthInterval = 100 * time.Millisecond }})
	key := keyOf("signalId", "fault", "bucketName", "redis")
	read := Request{Kind: KindState, Op: OpRead, Key: key}
	write := func(n int) {
		f.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(n))})
	}
	listKey := keyOf("backtest", true)
	rows := func(status string) []byte {
		return mustJSON([]any{fxStorageRow("r1", 1, status), fxStorageRow("r2", 2, "opened")})
	}
	status := func() any {
		return listByID(t, f.do(Request{Kind: KindStorage, Op: OpRead, Key: listKey}).Value)["r1"]["status"]
	}
	write(1)
	f.do(Request{Kind: KindStorage, Op: OpWrite, Key: listKey, Value: rows("opened")}) // hashes cached
	assertJSON(t, "cached", f.do(read).Value, stateValue(1))
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := f.doErr(Request{Kind: KindStorage, Op: OpWrite, Key: listKey, Value: rows("closed")}); !errors.Is(err, ErrCacheUnavailable) {
		t.Fatalf("changing list write with Redis down: %v, want ErrCacheUnavailable", err)
	}
	if got := status(); got != "opened" {
		t.Fatalf("a list write that failed changed MongoDB: r1 %v", got)
	}
	f.do(Request{Kind: KindStorage, Op: OpWrite, Key: listKey, Value: rows("opened")}) // unchanged: nothing to mark
	assertJSON(t, "read with Redis down", f.do(read).Value, stateValue(1))
	if err := f.doErr(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(2))}); !errors.Is(err, ErrCacheUnavailable) {
		t.Fatalf("write with Redis down: %v, want ErrCacheUnavailable", err)
	}
	assertJSON(t, "a write that failed changed nothing", f.do(read).Value, stateValue(1))
	if f.store.CacheHealth().InUse {
		t.Fatal("cache still in use with Redis down")
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "writes work again", 10*time.Second, func() bool {
		return f.doErr(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(2))}) == nil
	})
	eventually(t, "cache back in use", 10*time.Second, func() bool { return f.store.CacheHealth().InUse })
	assertJSON(t, "read after restart", f.do(read).Value, stateValue(2))
	f.do(Request{Kind: KindStorage, Op: OpWrite, Key: listKey, Value: rows("closed")})
	if got := status(); got != "closed" {
		t.Fatalf("list write after the restart lost: r1 %v", got)
	}
	f.do(Request{Kind: KindStorage, Op: OpWrite, Key: listKey, Value: rows("opened")})
	if got := status(); got != "opened" {
		t.Fatalf("write back to the old rows skipped as unchanged: r1 %v", got)
	}
	assertJSON(t, "read after restart", f.do(read).Value, stateValue(2))
	c := f.counted(func() { assertJSON(t, "cached read after restart", f.do(read).Value, stateValue(2)) })
	if c.Mongo != 0 {
		t.Fatalf("read after restart not served by the cache (%d MongoDB commands)", c.Mongo)
	}
	write(3)
	if err := f.rclient.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	assertJSON(t, "read after flush", f.do(read).Value, stateValue(3))
	assertJSON(t, "read after flush, refilled", f.do(read).Value, stateValue(3))
}

// Redis restarts with an old snapshot (or a lagging replica takes over): the new run
// id, noticed on the first new connection, invalidates every entry, so the old value
// is never served, not even once before the periodic check.
func TestRedisRestoredFromOldSnapshot(t *testing.T) {
	r := ownRedis(t)
	// The periodic check is slowed down so that only the connection check can notice.
	f := newFixture(t, storeConfig{cache: true, redis: r, mutate: func(o *Options) { o.HealthInterval = time.Hour }})
	key := keyOf("signalId", "fault", "bucketName", "snapshot")
	read := Request{Kind: KindState, Op: OpRead, Key: key}
	f.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(1))})
	ctx := t.Context()
	epochKey, valKey := f.store.keys.epoch(), f.store.keys.record(KindState, []any{"fault", "snapshot"})
	oldEpoch, err := f.rclient.Dump(ctx, epochKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	oldVal, err := f.rclient.Dump(ctx, valKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	f.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(2))})
	assertJSON(t, "before restart", f.do(read).Value, stateValue(2))
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	admin := r.Client()
	defer admin.Close()
	if err := admin.RestoreReplace(ctx, epochKey, 0, oldEpoch).Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.RestoreReplace(ctx, valKey, 0, oldVal).Err(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		assertJSON(t, "read after the restore", f.do(read).Value, stateValue(2))
	}
	eventually(t, "the cache is back in use", 10*time.Second, func() bool { return f.store.CacheHealth().InUse })
	for i := 0; i < 3; i++ {
		assertJSON(t, "read after recovery", f.do(read).Value, stateValue(2))
	}
	c := f.counted(func() { assertJSON(t, "cached read", f.do(read).Value, stateValue(2)) })
	if c.Mongo != 0 {
		t.Fatalf("read after recovery not served by the cache (%d MongoDB commands)", c.Mongo)
	}
}

// FerretDB stopped: operations fail with ErrUnavailable within the timeout.
// Restarted: the same store recovers. A store opened while it was down initializes later.
func TestMongoStoppedAndRestarted(t *testing.T) {
	m := ownMongo(t, "this test")
	const timeout = time.Second
	f := newFixture(t, storeConfig{cache: false, mongoURI: m.URI(), mutate: func(o *Options) { o.OpTimeout = timeout }})
	key := keyOf("signalId", "fault", "bucketName", "mongo")
	f.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(1))})

	late, err := Open(Options{Database: f.db, OpTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, req := range []Request{
		{Kind: KindState, Op: OpRead, Key: key},
		{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(2))},
		{Kind: KindStorage, Op: OpRead, Key: keyOf("backtest", true)},
	} {
		start := time.Now()
		_, err := f.store.Do(context.Background(), req)
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrCacheUnavailable) {
			t.Fatalf("%s %s with FerretDB down: %v, want ErrUnavailable (not the cache's)", req.Kind, req.Op, err)
		}
		if d := time.Since(start); d > 5*timeout {
			t.Fatalf("%s %s took %v with a %v timeout", req.Kind, req.Op, d, timeout)
		}
	}
	if err := late.Init(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("init with FerretDB down: %v", err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the same store recovers", 30*time.Second, func() bool {
		_, err := f.store.Do(context.Background(), Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(3))})
		return err == nil
	})
	assertJSON(t, "read after recovery", f.do(Request{Kind: KindState, Op: OpRead, Key: key}).Value, stateValue(3))
	eventually(t, "a store whose init failed initializes later", 30*time.Second, func() bool {
		return late.Init(context.Background()) == nil
	})
	res, err := late.Do(context.Background(), Request{Kind: KindState, Op: OpRead, Key: key})
	if err != nil || !jsonEqual(res.Value, []byte(stateValue(3))) {
		t.Fatalf("late store read: %s, %v", res.Value, err)
	}
}

// Concurrent reads share Redis pipelines. Killing Redis under them fails no read
// (they fall back to MongoDB) and no read is stale; a write during the outage fails
// and changes nothing; after the restart the reads are pipelined again and see the
// writes made then.
func TestConcurrentReadsThroughRedisOutage(t *testing.T) {
	r := ownRedis(t)
	f := newFixture(t, storeConfig{cache: true, redis: r, mutate: func(o *Options) { o.HealthInterval = 100 * time.Millisecond }})
	const readers = 16
	keys := make([]map[string]any, readers)
	writeAll := func(n int) {
		for _, k := range keys {
			f.do(Request{Kind: KindState, Op: OpWrite, Key: k, Value: []byte(stateValue(n))})
		}
	}
	for i := range keys {
		keys[i] = keyOf("signalId", fmt.Sprintf("pipe-%d", i), "bucketName", "outage")
	}
	writeAll(1)
	var floor atomic.Int64 // every read that starts after floor was raised must see at least it
	floor.Store(1)
	var reads atomic.Int64
	stop := make(chan struct{})
	errs := make(chan error, readers)
	for i := range readers {
		go func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				least := floor.Load()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				res, err := f.store.Do(ctx, Request{Kind: KindState, Op: OpRead, Key: keys[i]})
				cancel()
				if err != nil {
					errs <- fmt.Errorf("reader %d: %w", i, err)
					return
				}
				var v struct{ Data int64 }
				if err := json.Unmarshal(res.Value, &v); err != nil || v.Data < least {
					errs <- fmt.Errorf("reader %d read %s, want data >= %d", i, res.Value, least)
					return
				}
				reads.Add(1)
			}
		}()
	}
	failed := func() bool {
		select {
		case err := <-errs:
			close(stop)
			t.Fatal(err)
		default:
		}
		return false
	}
	progress := func(what string) {
		t.Helper()
		from := reads.Load()
		eventually(t, what, 20*time.Second, func() bool { return failed() || reads.Load() >= from+500 })
	}
	pipelined := func() uint64 { return f.store.cache.pipelinedReads.Load() }

	progress("reads before the outage")
	if pipelined() == 0 {
		close(stop)
		t.Fatal("no read was pipelined with 16 concurrent readers")
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	progress("reads with Redis down")
	if err := f.doErr(Request{Kind: KindState, Op: OpWrite, Key: keys[0], Value: []byte(stateValue(2))}); !errors.Is(err, ErrUnavailable) {
		close(stop)
		t.Fatalf("write with Redis down: %v, want ErrUnavailable", err)
	}
	progress("reads after a write that failed")
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "cache back in use", 10*time.Second, func() bool { return failed() || f.store.CacheHealth().InUse })
	writeAll(3)
	floor.Store(3)
	before := pipelined()
	progress("reads after the restart")
	if pipelined() == before {
		close(stop)
		t.Fatal("reads after the restart were not pipelined")
	}
	close(stop)
	for range readers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A cache whose recovery keeps failing at once (here: its Redis client was closed
// under it) retries with backoff, not in a loop that burns a core: about 6 attempts
// in a second at 50 ms doubling, where the loop once made tens of thousands.
func TestRecoveryBacksOffWhileFailing(t *testing.T) {
	_, r := servers(t)
	f := newFixture(t, storeConfig{cache: true, redis: r})
	var attempts atomic.Int64
	f.rclient.AddHook(commandHook{name: "info", n: &attempts})
	_ = f.rclient.Close()
	f.store.cache.markSuspect(errors.New("test: client closed"))
	time.Sleep(time.Second)
	if n := attempts.Load(); n > 50 {
		t.Fatalf("%d recovery attempts in a second with Redis failing at once: no backoff", n)
	}
}

// commandHook counts the commands called name.
type commandHook struct {
	name string
	n    *atomic.Int64
}

func (commandHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h commandHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == h.name {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (commandHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A write whose answer is lost while FerretDB is stopped (SIGSTOP) still waits in
// the server's socket, and runs when the server resumes: after the writer's next
// write, which was acknowledged, in about a third of the rounds when writes were
// unconditional. A write named by the version it follows finds the document moved
// on and changes nothing, so MongoDB (read apart from the cache) keeps the
// acknowledged value, and so does every Store, the cache on and off. Each record
// path is covered (a write that creates the document, overwrites it, and a soft
// delete), and a list write changing an item.
func TestLateWriteNeverOverwritesALaterOne(t *testing.T) {
	m := ownMongo(t, "this test")
	r := ownRedis(t)
	for _, cached := range []bool{false, true} {
		t.Run(fmt.Sprintf("cache=%v", cached), func(t *testing.T) {
			t.Cleanup(func() { _ = syscall.Kill(m.PID(), syscall.SIGCONT) })
			f := newFixture(t, storeConfig{cache: cached, redis: r, mongoURI: m.URI()})
			direct := newFixture(t, storeConfig{cache: false, mongoURI: m.URI(), dbName: f.db.Name()})
			ctx := context.Background()
			measure := func(n int, removed bool) json.RawMessage {
				return mustJSON(map[string]any{"id": "late", "data": n, "removed": removed})
			}
			for round := range 12 {
				state := Request{Kind: KindState, Op: OpWrite, Key: keyOf("signalId", fmt.Sprint("late-", round%3), "bucketName", "late"), Value: []byte(stateValue(2 * round))}
				acked := state
				acked.Value = []byte(stateValue(2*round + 1))
				meas := keyOf("bucket", "late", "key", fmt.Sprint("k", round%3))
				first := Request{Kind: KindMeasure, Op: OpWrite, Key: meas, Value: measure(2*round, false)}
				then := Request{Kind: KindMeasure, Op: OpRemove, Key: meas}
				if round%2 == 1 { // the late one removes, the acknowledged one writes
					first, then = then, Request{Kind: KindMeasure, Op: OpWrite, Key: meas, Value: measure(2*round+1, false)}
				}
				storage := keyOf("backtest", true)
				row := func(n int) json.RawMessage {
					return mustJSON([]map[string]any{{"id": "late", "n": n, "priority": 1}})
				}
				lateRows := Request{Kind: KindStorage, Op: OpWrite, Key: storage, Value: row(2 * round)}
				ackedRows := Request{Kind: KindStorage, Op: OpWrite, Key: storage, Value: row(2*round + 1)}
				pid := m.PID()
				stopProcess(t, pid)
				for _, late := range []Request{state, first, lateRows} {
					lctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
					_, err := f.store.Do(lctx, late)
					cancel()
					if err == nil {
						stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
						t.Fatalf("round %d: %s %s acknowledged with FerretDB stopped (pid %d, now %d, stat %s)", round, late.Kind, late.Op, pid, m.PID(), stat)
					}
				}
				done := make(chan error, 3)
				for _, req := range []Request{acked, then, ackedRows} {
					go func() { _, err := f.store.Do(ctx, req); done <- err }()
				}
				time.Sleep(300 * time.Millisecond)
				if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
					t.Fatal(err)
				}
				for range 3 {
					if err := <-done; err != nil {
						t.Fatalf("round %d: write after the resume: %v", round, err)
					}
				}
				time.Sleep(200 * time.Millisecond) // the late writes run meanwhile
				for _, s := range []*fixture{f, direct} {
					assertJSON(t, fmt.Sprintf("round %d: state", round), s.do(Request{Kind: KindState, Op: OpRead, Key: acked.Key}).Value, string(acked.Value))
					got := s.do(Request{Kind: KindMeasure, Op: OpRead, Key: meas}).Value
					if then.Op == OpRemove {
						if string(got) != "null" {
							t.Fatalf("round %d: removed measure reads %s", round, got)
						}
					} else {
						assertJSON(t, fmt.Sprintf("round %d: measure", round), got, string(then.Value))
					}
					assertJSON(t, fmt.Sprintf("round %d: storage", round), s.do(Request{Kind: KindStorage, Op: OpRead, Key: storage}).Value, string(ackedRows.Value))
				}
			}
		})
	}
}

// stopProcess sends SIGSTOP to pid and waits until the kernel shows it stopped (the
// signal takes effect after kill returns).
func stopProcess(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually(t, fmt.Sprintf("process %d stopped", pid), 5*time.Second, func() bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		// "pid (comm) state ...": the state follows the last ')'
		i := strings.LastIndexByte(string(stat), ')')
		return err == nil && i >= 0 && i+2 < len(stat) && stat[i+2] == 'T'
	})
}
