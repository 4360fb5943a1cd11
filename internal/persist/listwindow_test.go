package persist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// windowCase is one list kind with its sort field and a way to build an item.
type windowCase struct {
	kind Kind
	key  map[string]any
	item func(id string, sortKey int64) map[string]any
}

var windowCases = []windowCase{
	{KindStorage, keyOf("backtest", true), func(id string, k int64) map[string]any { return fxStorageRow(id, k, "closed") }},
	{KindNotification, keyOf("backtest", true), func(id string, k int64) map[string]any {
		n := fxNotification(id, false)
		n["createdAt"] = k
		return n
	}},
	{KindLog, map[string]any{}, func(id string, k int64) map[string]any { return fxLogEntry(id, k) }},
}

// sortKeysOf returns the sort field of every item of a list read, in order.
func sortKeysOf(t testing.TB, spec *KindSpec, raw []byte) []int64 {
	t.Helper()
	var items []map[string]any
	if err := json.Unmarshal(raw, &items); err != nil {
		t.Fatalf("list read is not an array of objects: %v (%s)", err, short(string(raw)))
	}
	out := make([]int64, len(items))
	for i, it := range items {
		f, _ := it[spec.Head.SortField].(float64)
		out[i] = int64(f)
	}
	return out
}

// expectTopKeys checks that a read holds exactly the keys lo+1..hi in ascending order.
func expectTopKeys(t testing.TB, what string, got []int64, lo, hi int64) {
	t.Helper()
	if int64(len(got)) != hi-lo {
		t.Fatalf("%s: %d items, want %d (the %d highest)", what, len(got), hi-lo, hi-lo)
	}
	for i, k := range got {
		if k != lo+1+int64(i) {
			t.Fatalf("%s: item %d has sort key %d, want %d", what, i, k, lo+1+int64(i))
		}
	}
}

// A list read returns the consumer's window, whatever was written: items written in
// random order over many writes, more than the window, some rewritten.
func TestListReadReturnsTheWindow(t *testing.T) {
	for _, cache := range []bool{true, false} {
		f := newFixture(t, storeConfig{cache: cache})
		for _, wc := range windowCases {
			t.Run(fmt.Sprintf("%s/cache=%v", wc.kind, cache), func(t *testing.T) {
				g := f.with(t)
				spec, _ := Lookup(wc.kind)
				w := int64(spec.Head.Window)
				total := w + w/2 + 7
				keys := rand.Perm(int(total))
				// Writes of up to 200 items, as the consumer's whole-list writes overlap.
				for start := 0; start < len(keys); start += 200 {
					var batch []any
					for _, k := range keys[start:min(start+200, len(keys))] {
						batch = append(batch, wc.item(fmt.Sprintf("i%06d", k), int64(k)+1))
					}
					g.do(Request{Kind: wc.kind, Op: OpWrite, Key: wc.key, Value: mustJSON(batch)})
				}
				// The first read builds the head's meta document (a scan of the items).
				got := sortKeysOf(t, spec, readEventually(t, g.store, Request{Kind: wc.kind, Op: OpRead, Key: wc.key}, 5*time.Minute))
				expectTopKeys(t, "read", got, total-w, total)
				// One more item above the window pushes the lowest one out.
				g.do(Request{Kind: wc.kind, Op: OpWrite, Key: wc.key, Value: mustJSON([]any{wc.item("top", total+1)})})
				got = sortKeysOf(t, spec, g.do(Request{Kind: wc.kind, Op: OpRead, Key: wc.key}).Value)
				expectTopKeys(t, "read after a newer item", got, total-w+1, total+1)
				// Every item is still stored.
				n, err := g.db.Collection(spec.Collection).CountDocuments(context.Background(), g.store.debugFilter(wc.kind, wc.key))
				if err != nil || n != total+1 {
					t.Fatalf("item collection holds %d (%v), want %d", n, err, total+1)
				}
				if !spec.InsertOnly {
					// A row rewritten with a higher sort key moves into the window.
					g.do(Request{Kind: wc.kind, Op: OpWrite, Key: wc.key, Value: mustJSON([]any{wc.item("i000000", total+2)})})
					got = sortKeysOf(t, spec, g.do(Request{Kind: wc.kind, Op: OpRead, Key: wc.key}).Value)
					expectTopKeys(t, "read after a rewrite", got, total-w+2, total+2)
				}
			})
		}
	}
}

// debugFilter is the MongoDB filter of a list context (tests only).
func (s *Store) debugFilter(kind Kind, key map[string]any) bson.D {
	c, err := s.validate(&Request{Kind: kind, Op: OpRead, Key: key})
	if err != nil {
		panic(err)
	}
	return c.mongoFilter()
}

// A tenant's window is configurable above the consumer's cap, never below it; a
// raised window is rebuilt from the stored items.
func TestListWindowConfigured(t *testing.T) {
	m, _ := servers(t)
	mc, err := mongo.Connect(options.Client().ApplyURI(m.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = mc.Disconnect(context.Background()) }()
	for _, bad := range []map[Kind]int{{KindNotification: 499}, {KindLog: 10}, {KindStorage: 0}, {KindSignal: 600}} {
		if _, err := Open(Options{Database: mc.Database("x"), ListWindows: bad}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Open with windows %v: %v, want ErrInvalid", bad, err)
		}
	}
	f := newFixture(t, storeConfig{})
	spec, _ := Lookup(KindStorage)
	var rows []any
	for i := int64(1); i <= 80; i++ {
		rows = append(rows, fxStorageRow(fmt.Sprintf("r%03d", i), i, "closed"))
	}
	lk := keyOf("backtest", false)
	f.do(Request{Kind: KindStorage, Op: OpWrite, Key: lk, Value: mustJSON(rows)})
	expectTopKeys(t, "default window", sortKeysOf(t, spec, f.do(Request{Kind: KindStorage, Op: OpRead, Key: lk}).Value), 30, 80)

	wide, err := Open(Options{Database: f.db, ListWindows: map[Kind]int{KindStorage: 70}})
	if err != nil {
		t.Fatal(err)
	}
	defer wide.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := wide.Do(ctx, Request{Kind: KindStorage, Op: OpRead, Key: lk})
	if err != nil {
		t.Fatal(err)
	}
	expectTopKeys(t, "window of 70", sortKeysOf(t, spec, res.Value), 10, 80)
	if wide.Window(KindStorage) != 70 || f.store.Window(KindNotification) != 500 || f.store.Window(KindSignal) != 0 {
		t.Fatalf("windows: %d %d %d", wide.Window(KindStorage), f.store.Window(KindNotification), f.store.Window(KindSignal))
	}
}

// seedNotifications inserts n notifications of one mode straight into the item
// collection in the @backtest-kit/mongo layout (as an adopted database holds them),
// createdAt 1..n, in random order, with unordered insertMany calls.
func seedNotifications(t testing.TB, db *mongo.Database, backtest bool, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	now := time.Now().UTC()
	order := rand.Perm(n)
	coll := db.Collection("notification-items")
	const chunk = 5000
	for start := 0; start < n; start += chunk {
		docs := make([]any, 0, chunk)
		for _, k := range order[start:min(start+chunk, n)] {
			id := fmt.Sprintf("n%07d", k+1)
			docs = append(docs, bson.D{{Key: "backtest", Value: backtest}, {Key: "notificationId", Value: id},
				{Key: "payload", Value: bson.D{{Key: "id", Value: id}, {Key: "type", Value: "signal.opened"}, {Key: "backtest", Value: backtest},
					{Key: "createdAt", Value: int64(k + 1)}, {Key: "symbol", Value: "BTCUSDT"}, {Key: "strategyName", Value: "s1"},
					{Key: "exchangeName", Value: "binance"}, {Key: "signalId", Value: "7f1c"}, {Key: "priceOpen", Value: 50000.5}}},
				{Key: "createDate", Value: now}, {Key: "updatedDate", Value: now}})
		}
		if _, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil {
			t.Fatalf("seed notifications: %v", err)
		}
	}
}

// readEventually reads a list, retrying ErrUnavailable (a head being rebuilt) as the
// client does, within a budget.
func readEventually(t testing.TB, s *Store, req Request, budget time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(budget)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		res, err := s.Do(ctx, req)
		cancel()
		if err == nil {
			return res.Value
		}
		if !errors.Is(err, ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("read %s: %v", req.Kind, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// 200,000 notifications stored (an adopted database, no head yet): a read returns
// exactly the newest 500 by createdAt; after a write through the store, the new one
// is in and the oldest of the 500 is out. Lists of the other mode are separate.
func TestNotificationWindowOver200k(t *testing.T) {
	f := newFixture(t, storeConfig{cache: true})
	const n = 200_000
	start := time.Now()
	seedNotifications(t, f.db, true, n)
	t.Logf("seeded %d notifications in %v", n, time.Since(start))
	spec, _ := Lookup(KindNotification)
	read := Request{Kind: KindNotification, Op: OpRead, Key: keyOf("backtest", true)}
	start = time.Now()
	got := sortKeysOf(t, spec, readEventually(t, f.store, read, 10*time.Minute))
	t.Logf("first read (head rebuilt from the items) after %v", time.Since(start))
	expectTopKeys(t, "first read", got, n-500, n)
	start = time.Now()
	got = sortKeysOf(t, spec, f.do(read).Value)
	t.Logf("second read %v", time.Since(start))
	expectTopKeys(t, "second read", got, n-500, n)

	item := fxNotification("fresh", false)
	item["createdAt"] = n + 1
	f.do(Request{Kind: KindNotification, Op: OpWrite, Key: keyOf("backtest", true), Value: mustJSON([]any{item})})
	expectTopKeys(t, "after a write", sortKeysOf(t, spec, f.do(read).Value), n-499, n+1)
	assertJSON(t, "live mode", readEventually(t, f.store, Request{Kind: KindNotification, Op: OpRead, Key: keyOf("backtest", false)}, 10*time.Minute), `[]`)
}

// BenchmarkNotificationReadWindow reads the window of a list of 500 notifications
// and of one of 200,000 (adopted, head built by a first read), alternating in one
// loop, and reports both and their ratio (target: at most 2). Setup takes minutes
// on FerretDB; run it with -benchtime 20x so that it runs once.
func BenchmarkNotificationReadWindow(b *testing.B) {
	small := newFixture(b, storeConfig{cache: true})
	large := newFixture(b, storeConfig{cache: true})
	seedNotifications(b, small.db, true, 500)
	seedNotifications(b, large.db, true, 200_000)
	read := Request{Kind: KindNotification, Op: OpRead, Key: keyOf("backtest", true)}
	spec, _ := Lookup(KindNotification)
	expectTopKeys(b, "500 stored", sortKeysOf(b, spec, readEventually(b, small.store, read, 10*time.Minute)), 0, 500)
	expectTopKeys(b, "200,000 stored", sortKeysOf(b, spec, readEventually(b, large.store, read, 10*time.Minute)), 199_500, 200_000)
	pairedAs(b, "500", func() { benchDo(b, small.store, read) }, "200k", func() { benchDo(b, large.store, read) })
}
