package persist

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Read-your-writes across replicas (R4): two stores on one database and key prefix,
// each with its own Redis client, stand for two gateway replicas. A cutHook on one
// client cuts that replica off from Redis at a chosen command, as a network partition
// or a crash between the MongoDB commit and the cache update would.

// errCut is what a cut-off client's commands fail with.
var errCut = errors.New("injected: redis unreachable from this replica")

// cutHook fails the first command whose arguments contain one of the trigger
// substrings, and every command after it (the replica stays cut off) until heal.
type cutHook struct {
	mu       sync.Mutex
	triggers []string
	all      bool // cut now, whatever the command
	cut      bool
}

func (h *cutHook) arm(triggers ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.triggers, h.cut = triggers, false
}

func (h *cutHook) cutAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cut = true
}

func (h *cutHook) heal() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.triggers, h.cut = nil, false
}

func (h *cutHook) isCut() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cut
}

// fails reports whether cmd must fail, cutting the client off when it triggers.
func (h *cutHook) fails(cmd redis.Cmder) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cut {
		return true
	}
	for _, a := range cmd.Args() {
		s := fmt.Sprint(a)
		if b, ok := a.([]byte); ok {
			s = string(b)
		}
		for _, t := range h.triggers {
			if strings.Contains(s, t) {
				h.cut = true
				return true
			}
		}
	}
	return false
}

func (h *cutHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if h.isCut() {
			return nil, errCut
		}
		return next(ctx, network, addr)
	}
}

func (h *cutHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.fails(cmd) {
			cmd.SetErr(errCut)
			return errCut
		}
		return next(ctx, cmd)
	}
}

func (h *cutHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if h.fails(cmd) {
				for _, c := range cmds {
					c.SetErr(errCut)
				}
				return errCut
			}
		}
		return next(ctx, cmds)
	}
}

// replicas opens two stores on one database and prefix; the first one's Redis
// client carries a cutHook.
func replicas(t *testing.T, mutate func(*Options)) (cutOff, healthy *fixture, hook *cutHook) {
	t.Helper()
	hook = &cutHook{}
	db, prefix := randomName("t_"), randomName("btp:")+":"
	cutOff = newFixture(t, storeConfig{cache: true, dbName: db, prefix: prefix, mutate: func(o *Options) {
		o.Redis.(*redis.Client).AddHook(hook)
		if mutate != nil {
			mutate(o)
		}
	}})
	healthy = newFixture(t, storeConfig{cache: true, dbName: db, prefix: prefix, mutate: mutate})
	return cutOff, healthy, hook
}

// storedState reads a State document's data straight from MongoDB.
func storedState(t *testing.T, f *fixture, key map[string]any) string {
	t.Helper()
	g := newFixture(t, storeConfig{cache: false, dbName: f.db.Name()})
	return string(g.do(Request{Kind: KindState, Op: OpRead, Key: key}).Value)
}

// A replica whose cache update fails after the MongoDB commit (a partition, or a
// crash, right after the commit): the other replica must not keep serving the value
// it had cached before the write.
func TestCacheUpdateFailsAfterCommit(t *testing.T) {
	a, b, hook := replicas(t, nil)
	key := keyOf("signalId", "coh", "bucketName", "update")
	read := Request{Kind: KindState, Op: OpRead, Key: key}
	a.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(1))})
	assertJSON(t, "healthy replica, cached", b.do(read).Value, stateValue(1))
	assertJSON(t, "healthy replica, cached", b.do(read).Value, stateValue(1))

	// The new value travels only in the update after the commit: cut there.
	hook.arm(`"data":2`)
	err := a.doErr(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(2))})
	if !hook.isCut() {
		t.Fatal("the cache update was never sent")
	}
	if err != nil && !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write whose cache update failed: %v, want nil or ErrUnavailable", err)
	}
	assertJSON(t, "MongoDB holds the write", []byte(storedState(t, a, key)), stateValue(2))
	for i := 0; i < 3; i++ {
		assertJSON(t, "healthy replica after the other's write", b.do(read).Value, stateValue(2))
	}
	assertJSON(t, "cut-off replica reads from MongoDB", a.do(read).Value, stateValue(2))
	c := newFixture(t, storeConfig{cache: true, dbName: a.db.Name(), prefix: a.opts.KeyPrefix})
	assertJSON(t, "a replica started afterwards", c.do(read).Value, stateValue(2))

	hook.heal()
	eventually(t, "the cut-off replica writes again", 10*time.Second, func() bool {
		return a.doErr(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(3))}) == nil
	})
	assertJSON(t, "healthy replica after recovery", b.do(read).Value, stateValue(3))
	assertJSON(t, "healed replica", a.do(read).Value, stateValue(3))
}

// A replica cut off from Redis while the other keeps it: its writes must not commit
// behind the other's cache. They fail with ErrUnavailable and change nothing; its
// reads keep working from MongoDB.
func TestReplicaCutOffFromRedis(t *testing.T) {
	a, b, hook := replicas(t, nil)
	key := keyOf("signalId", "coh", "bucketName", "cut")
	read := Request{Kind: KindState, Op: OpRead, Key: key}
	a.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(1))})
	assertJSON(t, "healthy replica, cached", b.do(read).Value, stateValue(1))
	assertJSON(t, "healthy replica, cached", b.do(read).Value, stateValue(1))

	hook.cutAll()
	err := a.doErr(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(2))})
	if err == nil {
		// acknowledged: every later read must see it
		assertJSON(t, "healthy replica after an acknowledged write", b.do(read).Value, stateValue(2))
		t.Fatal("a write that could not reach Redis was acknowledged")
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write of a cut-off replica: %v, want ErrUnavailable", err)
	}
	assertJSON(t, "MongoDB unchanged", []byte(storedState(t, a, key)), stateValue(1))
	assertJSON(t, "healthy replica", b.do(read).Value, stateValue(1))
	assertJSON(t, "cut-off replica reads from MongoDB", a.do(read).Value, stateValue(1))
	rm := a.doErr(Request{Kind: KindMemory, Op: OpRemove, Key: keyOf("signalId", "coh", "bucketName", "m", "memoryId", "x")})
	if !errors.Is(rm, ErrUnavailable) {
		t.Fatalf("soft delete of a cut-off replica: %v, want ErrUnavailable", rm)
	}

	hook.heal()
	eventually(t, "the cut-off replica writes again", 10*time.Second, func() bool {
		return a.doErr(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(3))}) == nil
	})
	assertJSON(t, "healthy replica after the write", b.do(read).Value, stateValue(3))
}

// Soft deletes go through the same protocol: a tombstone written by a replica whose
// update fails is not hidden by the other replica's cached value.
func TestRemoveUpdateFailsAfterCommit(t *testing.T) {
	a, b, hook := replicas(t, nil)
	key := keyOf("signalId", "coh", "bucketName", "rm", "memoryId", "m1")
	read := Request{Kind: KindMemory, Op: OpRead, Key: key}
	a.do(Request{Kind: KindMemory, Op: OpWrite, Key: key, Value: []byte(fxMemory)})
	assertJSON(t, "cached", b.do(read).Value, fxMemory)
	// the update of a soft delete carries the payload with "removed":true
	hook.arm(`"removed":true`)
	err := a.doErr(Request{Kind: KindMemory, Op: OpRemove, Key: key})
	if !hook.isCut() {
		t.Fatal("the cache update was never sent")
	}
	if err != nil && !errors.Is(err, ErrUnavailable) {
		t.Fatalf("remove: %v", err)
	}
	assertJSON(t, "healthy replica after the remove", b.do(read).Value, "null")
}

// A list item changed A to B while the hash update fails, then changed back to A
// through another replica: MongoDB must hold A (never skipped as unchanged).
func TestListChangedBackAfterFailedHashUpdate(t *testing.T) {
	a, b, hook := replicas(t, nil)
	key := keyOf("backtest", true)
	rowA, rowB := fxStorageRow("r1", 1, "opened"), fxStorageRow("r1", 1, "closed")
	list := func(r map[string]any) []byte { return mustJSON([]any{r, fxStorageRow("r2", 2, "opened")}) }
	status := func(f *fixture) any {
		return listByID(t, f.do(Request{Kind: KindStorage, Op: OpRead, Key: key}).Value)["r1"]["status"]
	}
	a.do(Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: list(rowA)})
	b.do(Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: list(rowA)}) // hashes in use by both
	sum := sha256.Sum256(mustJSON(rowB))
	hook.arm(hex.EncodeToString(sum[:16])) // the hash of B travels only in the update
	err := a.doErr(Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: list(rowB)})
	if !hook.isCut() {
		t.Fatal("the hash update was never sent")
	}
	if err != nil && !errors.Is(err, ErrUnavailable) {
		t.Fatalf("list write whose hash update failed: %v", err)
	}
	if got := status(b); got != "closed" {
		t.Fatalf("MongoDB after the write: r1 %v", got)
	}
	b.do(Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: list(rowA)})
	if got := status(b); got != "opened" {
		t.Fatalf("write back to A skipped as unchanged (lost update): r1 %v", got)
	}
}

// The cache turned off and on again: entries cached before are not served, since
// writes made while it was off never touched them.
func TestCacheReenabled(t *testing.T) {
	on := newFixture(t, storeConfig{cache: true})
	key := keyOf("signalId", "coh", "bucketName", "reenable")
	read := Request{Kind: KindState, Op: OpRead, Key: key}
	on.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(1))})
	assertJSON(t, "cached", on.do(read).Value, stateValue(1))
	on.store.Close()

	off := newFixture(t, storeConfig{cache: false, dbName: on.db.Name()})
	off.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(2))})

	again := newFixture(t, storeConfig{cache: true, dbName: on.db.Name(), prefix: on.opts.KeyPrefix})
	assertJSON(t, "read after the cache came back", again.do(read).Value, stateValue(2))
	assertJSON(t, "read after the cache came back, refilled", again.do(read).Value, stateValue(2))
}

// The Secret rotated so that the same key prefix fronts another database: old
// entries are not served, and their versions do not block fresh ones. The two
// stores may overlap in time (replicas switch one by one).
func TestPrefixMovedToAnotherDatabase(t *testing.T) {
	old := newFixture(t, storeConfig{cache: true})
	key := keyOf("signalId", "coh", "bucketName", "moved")
	read := Request{Kind: KindState, Op: OpRead, Key: key}
	for i := 1; i <= 5; i++ { // version 5 in the old database
		old.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(i))})
	}
	assertJSON(t, "old database, cached", old.do(read).Value, stateValue(5))

	moved := newFixture(t, storeConfig{cache: true, prefix: old.opts.KeyPrefix})
	assertJSON(t, "new database is empty", moved.do(read).Value, "null")
	moved.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(100))}) // version 1
	assertJSON(t, "new database", moved.do(read).Value, stateValue(100))
	assertJSON(t, "new database, cached", moved.do(read).Value, stateValue(100))
	// the old store still runs: each sees its own database
	assertJSON(t, "old database while both run", old.do(read).Value, stateValue(5))
	assertJSON(t, "new database while both run", moved.do(read).Value, stateValue(100))
	old.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(6))})
	assertJSON(t, "new database after the old one wrote", moved.do(read).Value, stateValue(100))
	assertJSON(t, "old database after its write", old.do(read).Value, stateValue(6))
}

// A list hash rebuilt from MongoDB by a write that also changes an item records the
// new content, not what MongoDB held before the write.
func TestListHashRebuiltByAChangingWrite(t *testing.T) {
	f := newFixture(t, storeConfig{cache: true})
	key := keyOf("backtest", false)
	list := func(status string) []byte { return mustJSON([]any{fxStorageRow("r1", 1, status)}) }
	status := func() any {
		return listByID(t, f.do(Request{Kind: KindStorage, Op: OpRead, Key: key}).Value)["r1"]["status"]
	}
	f.do(Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: list("opened")})
	if err := f.rclient.Del(t.Context(), f.store.keys.listHashes(KindStorage, []any{false})).Err(); err != nil {
		t.Fatal(err)
	}
	f.do(Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: list("closed")}) // rebuilds the hash
	f.do(Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: list("opened")})
	if got := status(); got != "opened" {
		t.Fatalf("write back skipped as unchanged: r1 %v", got)
	}
}

// A writer that died between its commit and its update leaves its marker: readers
// go to MongoDB while it lives (and fill nothing), and once it has expired the entry
// is refilled from MongoDB, never restored to the value cached before the write.
func TestMarkerOfADeadWriter(t *testing.T) {
	f := newFixture(t, storeConfig{cache: true})
	ctx := t.Context()
	key := keyOf("signalId", "coh", "bucketName", "dead")
	read := Request{Kind: KindState, Op: OpRead, Key: key}
	f.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(1))})
	assertJSON(t, "cached", f.do(read).Value, stateValue(1))

	rkey := f.store.keys.record(KindState, []any{"coh", "dead"})
	if _, _, err := f.store.cache.mark(ctx, rkey); err != nil {
		t.Fatal(err)
	}
	direct := newFixture(t, storeConfig{cache: false, dbName: f.db.Name()})
	direct.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(2))}) // the commit; no update follows
	for i := 0; i < 3; i++ {
		c := f.counted(func() { assertJSON(t, "read while the marker lives", f.do(read).Value, stateValue(2)) })
		if c.Mongo != 1 {
			t.Fatalf("read while the marker lives cost %d MongoDB commands, want 1 (no fill)", c.Mongo)
		}
	}
	// the marker expires (its expiry moved into the past)
	raw, err := f.rclient.Get(ctx, rkey).Result()
	if err != nil || !strings.HasPrefix(raw, "!") {
		t.Fatalf("marker: %q, %v", short(raw), err)
	}
	eq := strings.IndexByte(raw, '=')
	end := strings.IndexByte(raw[1:], '!') + 1
	expired := raw[:eq+1] + "1" + raw[end:]
	if err := f.rclient.Set(ctx, rkey, expired, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		assertJSON(t, "read after the marker expired", f.do(read).Value, stateValue(2))
	}
	c := f.counted(func() { assertJSON(t, "cached again", f.do(read).Value, stateValue(2)) })
	if c.Mongo != 0 {
		t.Fatalf("entry not refilled after the marker expired (%d MongoDB commands)", c.Mongo)
	}
}

func TestPendingFence(t *testing.T) {
	for _, tc := range []struct {
		raw, fence string
		pending    bool
	}{
		{"", "", false},
		{"3|e|p{}", "", false},
		{"!a=1!", fencePending, true},
		{"!a=1,b=2!3|e|p{}", fencePending, true},
		{"!!#n0nce", "n0nce", true},
		{"!!", fencePending, true},
	} {
		f, p := pendingFence(tc.raw)
		if f != tc.fence || p != tc.pending {
			t.Errorf("pendingFence(%q) = %q, %v; want %q, %v", tc.raw, f, p, tc.fence, tc.pending)
		}
	}
}

func TestParseInfo(t *testing.T) {
	s := parseInfo("# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\ntcp_port:6379\r\n\r\n# Replication\r\nrole:master\r\nconnected_slaves:2\r\n")
	if s.runID != "abc123" || s.replicas != 2 {
		t.Fatalf("parseInfo = %+v", s)
	}
	if got := laddrOf("id=3 addr=127.0.0.1:5000 laddr=127.0.0.1:7001 fd=8 name="); got != "127.0.0.1:7001" {
		t.Fatalf("laddrOf = %q", got)
	}
}

// The connection guard accepts the first run id of a node, reports a change, and
// marks the caches on its client suspect.
func TestConnGuardCheck(t *testing.T) {
	g := NewConnGuard(true)
	c := &cache{wake: make(chan struct{}, 1)}
	g.add(c)
	if g.check("n1", "r1") {
		t.Fatal("a first run id is not a change")
	}
	if g.check("n2", "r2") {
		t.Fatal("another node's first run id is not a change")
	}
	if g.check("n1", "r1") || !c.usable() {
		t.Fatalf("same run id: usable %v", c.usable())
	}
	if !g.check("n1", "r9") || c.usable() {
		t.Fatalf("changed run id not reported: usable %v", c.usable())
	}
	if g.check("n1", "r9") {
		t.Fatal("the new run id is accepted once reported")
	}
}

// cancelHook cancels a request's context when the first command whose arguments
// contain its trigger is sent: the caller gives up right then.
type cancelHook struct {
	mu      sync.Mutex
	trigger string
	cancel  context.CancelFunc
}

func (h *cancelHook) arm(trigger string, cancel context.CancelFunc) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.trigger, h.cancel = trigger, cancel
}

func (h *cancelHook) fire(cmd redis.Cmder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel == nil {
		return
	}
	for _, a := range cmd.Args() {
		if s, ok := a.(string); ok && s == h.trigger {
			h.cancel()
			h.cancel = nil
			return
		}
	}
}

func (h *cancelHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *cancelHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.fire(cmd)
		return next(ctx, cmd)
	}
}

func (h *cancelHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			h.fire(cmd)
		}
		return next(ctx, cmds)
	}
}

// A caller that gives up (a cancelled request, its own deadline) is no Redis
// failure: the tenant's cache stays in use and keeps its epoch, so no caller can
// throw away every cached entry and series of the tenant by hanging up. And a
// caller giving up right after a write's commit does not cut the cache update
// short: the write is acknowledged and cached for the other replica.
func TestCallerGivingUpKeepsTheCache(t *testing.T) {
	hook := &cancelHook{}
	db, prefix := randomName("t_"), randomName("btp:")+":"
	a := newFixture(t, storeConfig{cache: true, dbName: db, prefix: prefix, mutate: func(o *Options) {
		o.Redis.(*redis.Client).AddHook(hook)
		seriesClock(o)
	}}).with(t)
	b := newFixture(t, storeConfig{cache: true, dbName: db, prefix: prefix, mutate: seriesClock}).with(t)
	key := keyOf("signalId", "gone", "bucketName", "caller")
	read := Request{Kind: KindState, Op: OpRead, Key: key}
	a.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(1))})
	writeCandleRange(a, seriesKey, candleRange(0, 10))
	known(t, a, seriesKey)
	epoch := func() string {
		v, err := a.rclient.Get(context.Background(), a.store.keys.epoch()).Result()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := epoch()

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for _, req := range []Request{read,
		{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(9))},
		{Kind: KindCandle, Op: OpRead, Key: seriesKey, Since: candleBase, Limit: 5},
		{Kind: KindCandle, Op: OpWrite, Key: seriesKey, Value: mustJSON(candleRange(10, 1))},
		{Kind: KindStorage, Op: OpWrite, Key: keyOf("bucketName", "caller"), Value: []byte(`[{"id":"s1","priority":1}]`)},
	} {
		_, _ = a.store.Do(gone, req) // an error or not: the caller is gone either way
		if h := a.store.CacheHealth(); !h.InUse {
			t.Fatalf("%s %s of a cancelled caller took the cache out of use: %v", req.Kind, req.Op, h.LastErr)
		}
	}
	if got := epoch(); got != before {
		t.Fatalf("epoch rotated from %s to %s by cancelled callers", before, got)
	}
	assertFromCache(t, a, "cached reads after the cancelled callers", func() {
		assertJSON(t, "record", a.do(read).Value, stateValue(1))
		assertJSON(t, "window", window(a, seriesKey, 0, 5), string(mustJSON(candleRange(0, 5))))
	})

	for _, tc := range []struct {
		name   string
		script *redis.Script
		req    Request
		check  func(t *testing.T)
	}{
		{"record", updateScript, Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(2))}, func(t *testing.T) {
			assertJSON(t, "the other replica", b.with(t).do(read).Value, stateValue(2))
		}},
		// 10 as well: the cancelled caller's write of it above may not have committed
		{"candle", seriesUpdateScript, Request{Kind: KindCandle, Op: OpWrite, Key: seriesKey, Value: mustJSON(candleRange(10, 2))}, func(t *testing.T) {
			a := a.with(t)
			assertFromCache(t, a, "the written candles", func() {
				assertJSON(t, "window", window(a, seriesKey, 7, 5), string(mustJSON(candleRange(7, 5))))
			})
		}},
	} {
		t.Run(tc.name+" update after the caller gave up", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			hook.arm(tc.script.Hash(), cancel)
			if _, err := a.store.Do(ctx, tc.req); err != nil {
				t.Fatalf("write whose caller gave up after the commit: %v, want success", err)
			}
			if ctx.Err() == nil {
				t.Fatal("the update was never sent")
			}
			tc.check(t)
		})
	}
}
