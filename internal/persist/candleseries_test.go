package persist

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The candle series cache (candleseries.go) against real FerretDB and redis-server:
// two stores on one database and prefix stand for two gateway replicas; Redis keys
// are deleted, flushed and cut off under them. Every window read is checked against
// what MongoDB holds, and MongoDB commands are counted where the cache must answer
// alone.

const minute = int64(60_000)

var seriesKey = keyOf("exchangeName", "binance", "symbol", "BTC/USDT", "interval", "1m")

// seriesClock is the fixtures' clock: candles up to candleBase+998 minutes are closed.
func seriesClock(o *Options) {
	o.Now = func() time.Time { return time.UnixMilli(candleBase + 1000*minute) }
}

// candleRange returns the candles from candleBase+from minutes on; each candle's
// values depend on its open time only.
func candleRange(from, n int64) []map[string]any {
	out := []map[string]any{}
	for i := from; i < from+n; i++ {
		out = append(out, map[string]any{"timestamp": candleBase + i*minute, "open": 50000 + float64(i) + 0.5,
			"high": 50010, "low": 49990.25, "close": 50001 + i%7, "volume": 12.345})
	}
	return out
}

func window(f *fixture, key map[string]any, from, limit int64) []byte {
	f.t.Helper()
	return f.do(Request{Kind: KindCandle, Op: OpRead, Key: key, Since: candleBase + from*minute, Limit: limit}).Value
}

func writeCandleRange(f *fixture, key map[string]any, cs []map[string]any) []byte {
	f.t.Helper()
	return f.do(Request{Kind: KindCandle, Op: OpWrite, Key: key, Value: mustJSON(cs)}).Value
}

// known reads a series through f until f's cache answers it without MongoDB (a read
// of an unknown series starts its rebuild).
func known(t *testing.T, f *fixture, key map[string]any) {
	t.Helper()
	f = f.with(t)
	eventually(t, "the series is known", 30*time.Second, func() bool {
		return f.counted(func() { window(f, key, 0, 1) }).Mongo == 0
	})
}

// assertFromCache checks that fn sends no MongoDB command.
func assertFromCache(t *testing.T, f *fixture, what string, fn func()) {
	t.Helper()
	if c := f.counted(fn); c.Mongo != 0 {
		t.Fatalf("%s cost %d MongoDB commands (%v), want 0", what, c.Mongo, c.MongoByCmd)
	}
}

// A write on one replica is read by the other from its cache, window by window, as
// a live bot slides its 5-candle window; windows past the newest candle are misses
// answered without MongoDB.
func TestCandleReadYourWritesAcrossReplicas(t *testing.T) {
	a, b, _ := replicas(t, seriesClock)
	a, b = a.with(t), b.with(t)
	known(t, b, seriesKey)
	known(t, a, seriesKey)
	for i := int64(0); i < 40; i++ {
		w, r := a, b
		if i%3 == 2 {
			w, r = b, a
		}
		from := max(0, i-4)
		cs := candleRange(from, i-from+1)
		assertJSON(t, "write result", writeCandleRange(w, seriesKey, cs), string(mustJSON(cs)))
		assertFromCache(t, r, fmt.Sprintf("window ending at %d on the other replica", i), func() {
			assertJSON(t, "window", window(r, seriesKey, from, i-from+1), string(mustJSON(cs)))
			assertJSON(t, "window past the newest candle", window(r, seriesKey, from+1, i-from+1), "null")
		})
	}
	assertFromCache(t, a, "the whole series", func() {
		assertJSON(t, "window", window(a, seriesKey, 0, 40), string(mustJSON(candleRange(0, 40))))
	})
}

// The write's result: the stored version of each closed candle of the request, in
// ascending order; the candle not closed yet is absent, first written wins, a
// candle repeated in one request counts once. Cache on and off.
func TestCandleWriteResult(t *testing.T) {
	for _, cacheOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("cache=%v", cacheOn), func(t *testing.T) {
			f := newFixture(t, storeConfig{cache: cacheOn, mutate: seriesClock}).with(t)
			first := candleRange(10, 3)
			assertJSON(t, "first write", writeCandleRange(f, seriesKey, first), string(mustJSON(first)))
			changed := candleRange(9, 5) // 9, 10, 11, 12, 13; 10-12 stored already
			for _, c := range changed {
				c["close"] = 1.25
			}
			lastClosed := candleRange(999, 1) // closes at now; 1000 opens now: not closed
			notClosed := candleRange(1000, 1)
			req := append(append(append([]map[string]any{}, notClosed...), changed[4], changed[0], changed[2], changed[2]), lastClosed...)
			want := []map[string]any{changed[0], first[0], first[1], first[2], changed[4], lastClosed[0]}
			req = append(req, changed[1], changed[3])
			if cacheOn {
				known(t, f, seriesKey)
			}
			got := writeCandleRange(f, seriesKey, req)
			assertJSON(t, "result of a write over stored candles", got, string(mustJSON(want)))
			assertJSON(t, "window", window(f, seriesKey, 9, 5), string(mustJSON(want[:5])))
			assertJSON(t, "not closed: not stored", window(f, seriesKey, 1000, 1), "null")
			assertJSON(t, "empty write", writeCandleRange(f, seriesKey, []map[string]any{}), "[]")
			assertJSON(t, "only a forming candle", writeCandleRange(f, seriesKey, notClosed), "[]")
		})
	}
}

// An evicted series is unknown, never empty: with either key deleted, windows are
// still right (from MongoDB), and the series is rebuilt and served again.
func TestCandleSeriesEvicted(t *testing.T) {
	f := newFixture(t, storeConfig{cache: true, mutate: seriesClock}).with(t)
	all := candleRange(0, 60)
	writeCandleRange(f, seriesKey, all)
	ctx := context.Background()
	z, cov := f.store.keys.candleSeries([]any{"binance", "BTC/USDT", "1m"})
	for name, k := range map[string]string{"set": z, "coverage": cov} {
		t.Run(name+" deleted", func(t *testing.T) {
			known(t, f, seriesKey)
			assertFromCache(t, f, "window of a known series", func() {
				assertJSON(t, "window", window(f, seriesKey, 10, 5), string(mustJSON(all[10:15])))
			})
			if err := f.rclient.Del(ctx, k).Err(); err != nil {
				t.Fatal(err)
			}
			before := f.store.seriesRebuilds.Load()
			assertJSON(t, "window after the eviction", window(f, seriesKey, 10, 5), string(mustJSON(all[10:15])))
			assertJSON(t, "window past the end after the eviction", window(f, seriesKey, 58, 5), "null")
			eventually(t, "rebuilt", 30*time.Second, func() bool { return f.store.seriesRebuilds.Load() > before })
			assertFromCache(t, f, "window after the rebuild", func() {
				assertJSON(t, "window", window(f, seriesKey, 0, 60), string(mustJSON(all)))
				assertJSON(t, "past the end", window(f, seriesKey, 58, 5), "null")
			})
		})
	}
	t.Run("set evicted, then a write recreates it", func(t *testing.T) {
		if err := f.rclient.Del(ctx, z).Err(); err != nil {
			t.Fatal(err)
		}
		more := candleRange(60, 2)
		writeCandleRange(f, seriesKey, more)
		all = append(all, more...)
		assertJSON(t, "old window", window(f, seriesKey, 5, 5), string(mustJSON(all[5:10])))
		assertJSON(t, "new window", window(f, seriesKey, 58, 4), string(mustJSON(all[58:62])))
	})
}

// FLUSHALL (or a Redis restarted empty): windows are right before and after the
// epoch is recreated, and writes of either replica stay visible to the other.
func TestCandleSeriesFlushed(t *testing.T) {
	r := ownRedis(t)
	db, prefix := randomName("t_"), randomName("btp:")+":"
	a := newFixture(t, storeConfig{cache: true, redis: r, dbName: db, prefix: prefix, mutate: seriesClock}).with(t)
	b := newFixture(t, storeConfig{cache: true, redis: r, dbName: db, prefix: prefix, mutate: seriesClock}).with(t)
	all := candleRange(0, 30)
	writeCandleRange(a, seriesKey, all)
	known(t, b, seriesKey)
	if err := a.rclient.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	assertJSON(t, "window after the flush", window(b, seriesKey, 20, 10), string(mustJSON(all[20:30])))
	assertJSON(t, "past the end after the flush", window(b, seriesKey, 25, 10), "null")
	more := candleRange(30, 3)
	writeCandleRange(a, seriesKey, more)
	all = append(all, more...)
	assertJSON(t, "the other replica's write", window(b, seriesKey, 25, 8), string(mustJSON(all[25:33])))
	known(t, b, seriesKey)
	more = candleRange(33, 1)
	writeCandleRange(a, seriesKey, more)
	all = append(all, more...)
	assertFromCache(t, b, "window after the rebuild", func() {
		assertJSON(t, "window", window(b, seriesKey, 0, 34), string(mustJSON(all)))
	})
}

// A replica whose update fails after the MongoDB commit: its token stays, so the
// other replica's reads of windows outside the coverage go to MongoDB and see the
// candle; a replica cut off before the mark writes nothing.
func TestCandleUpdateFailsAfterCommit(t *testing.T) {
	a, b, hook := replicas(t, seriesClock)
	a, b = a.with(t), b.with(t)
	all := candleRange(0, 10)
	writeCandleRange(a, seriesKey, all)
	known(t, b, seriesKey)
	assertJSON(t, "past the end", window(b, seriesKey, 8, 3), "null")

	next := candleRange(10, 1)
	next[0]["volume"] = 77.125 // travels to Redis only in the update
	hook.arm("77.125")
	err := a.doErr(Request{Kind: KindCandle, Op: OpWrite, Key: seriesKey, Value: mustJSON(next)})
	if !hook.isCut() {
		t.Fatal("the update was never sent")
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write whose update failed: %v, want ErrUnavailable", err)
	}
	all = append(all, next...)
	for i := 0; i < 3; i++ {
		assertJSON(t, "the other replica sees the committed candle", window(b, seriesKey, 8, 3), string(mustJSON(all[8:11])))
	}
	assertJSON(t, "the cut-off replica reads from MongoDB", window(a, seriesKey, 8, 3), string(mustJSON(all[8:11])))

	hook.cutAll()
	lost := candleRange(11, 1)
	if err := a.doErr(Request{Kind: KindCandle, Op: OpWrite, Key: seriesKey, Value: mustJSON(lost)}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write of a cut-off replica: %v, want ErrUnavailable", err)
	}
	g := newFixture(t, storeConfig{cache: false, dbName: a.db.Name()}).with(t)
	assertJSON(t, "MongoDB unchanged", window(g, seriesKey, 11, 1), "null")
	assertJSON(t, "the other replica", window(b, seriesKey, 11, 1), "null")
	hook.heal()
	eventually(t, "the cut-off replica writes again", 10*time.Second, func() bool {
		return a.doErr(Request{Kind: KindCandle, Op: OpWrite, Key: seriesKey, Value: mustJSON(lost)}) == nil
	})
	all = append(all, lost...)
	assertJSON(t, "the other replica after recovery", window(b, seriesKey, 0, 12), string(mustJSON(all)))
}

// A series longer than one load batch and one coverage step, with a gap, rebuilt
// while another replica keeps writing: every window is right, and the known series
// answers hits and misses without MongoDB.
func TestCandleSeriesRebuiltInSteps(t *testing.T) {
	a, b, _ := replicas(t, func(o *Options) {
		o.Now = func() time.Time { return time.UnixMilli(candleBase + 30_000*minute) }
	})
	a, b = a.with(t), b.with(t)
	n := int64(2*seriesLoadBatch + 1500)
	gap := int64(seriesWalkBatch + 7)
	var all []map[string]any
	for from := int64(0); from < n; from += 2000 {
		cs := candleRange(from, min(2000, n-from))
		var kept []map[string]any
		for i, c := range cs {
			if from+int64(i) != gap {
				kept = append(kept, c)
			}
		}
		writeCandleRange(a, seriesKey, kept)
		all = append(all, cs...)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var appended []map[string]any
	wg.Add(1)
	go func() { // a keeps appending while b rebuilds
		defer wg.Done()
		for i := n; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := a.store.Do(context.Background(), Request{Kind: KindCandle, Op: OpWrite, Key: seriesKey, Value: mustJSON(candleRange(i, 1))}); err != nil {
				t.Errorf("append %d: %v", i, err)
				return
			}
			appended = append(appended, candleRange(i, 1)...)
		}
	}()
	known(t, b, seriesKey)
	close(stop)
	wg.Wait()
	assertFromCache(t, b, "windows of the rebuilt series", func() {
		for _, from := range []int64{0, seriesLoadBatch - 3, seriesWalkBatch - 3, gap + 1, n - 5} {
			assertJSON(t, fmt.Sprintf("window at %d", from), window(b, seriesKey, from, 5), string(mustJSON(all[from:from+5])))
		}
		assertJSON(t, "window over the gap", window(b, seriesKey, gap-2, 5), "null")
		assertJSON(t, "window of 1000 before the gap", window(b, seriesKey, gap-1000, 1000), string(mustJSON(all[gap-1000:gap])))
	})
	// the appended candles (n, n+1, ...) were written during the rebuild
	all = append(all, appended...)
	assertJSON(t, "the appended candles", window(b, seriesKey, n-2, int64(len(appended))+2), string(mustJSON(all[n-2:])))
	t.Logf("%d candles appended during the rebuild", len(appended))
}

// Redis drops a series' set while a rebuild loads it (an eviction, the key's TTL),
// after the first load batch or after the last one (before the coverage walk): the
// rebuild must not end with a coverage that leaves out the dropped candles, whose
// windows would then be answered as misses without asking MongoDB.
func TestCandleSeriesEvictedDuringRebuild(t *testing.T) {
	n := int64(2*seriesLoadBatch + 100) // three load batches
	for _, dropAfter := range []int{1, 3} {
		t.Run(fmt.Sprintf("after load batch %d", dropAfter), func(t *testing.T) {
			f := newFixture(t, storeConfig{cache: true, mutate: func(o *Options) {
				o.Now = func() time.Time { return time.UnixMilli(candleBase + 30_000*minute) }
			}}).with(t)
			var all []map[string]any
			for from := int64(0); from < n; from += 2000 {
				cs := candleRange(from, min(2000, n-from))
				writeCandleRange(f, seriesKey, cs)
				all = append(all, cs...)
			}
			ctx := context.Background()
			z, _ := f.store.keys.candleSeries([]any{"binance", "BTC/USDT", "1m"})
			batches := 0
			dropped := make(chan struct{})
			f.store.afterSeriesLoad = func() { // runs in the one rebuild goroutine
				if batches++; batches == dropAfter {
					if err := f.rclient.Del(ctx, z).Err(); err != nil {
						t.Error(err)
					}
					close(dropped)
				}
			}
			before := f.store.seriesRebuilds.Load()
			assertJSON(t, "window of the unknown series", window(f, seriesKey, 0, 5), string(mustJSON(all[:5])))
			select {
			case <-dropped:
			case <-time.After(60 * time.Second):
				t.Fatal("the rebuild never loaded the batch")
			}
			known(t, f, seriesKey)
			if got := f.store.seriesRebuilds.Load() - before; got != 1 {
				t.Fatalf("%d rebuilds completed, want 1 (the one whose set was dropped ends unknown)", got)
			}
			assertFromCache(t, f, "windows of the rebuilt series", func() {
				for _, from := range []int64{0, seriesLoadBatch - 3, n - 5} {
					assertJSON(t, fmt.Sprintf("window at %d", from), window(f, seriesKey, from, 5), string(mustJSON(all[from:from+5])))
				}
				assertJSON(t, "past the end", window(f, seriesKey, n-2, 5), "null")
			})
		})
	}
}

// The series keys share the tenant's hash slot with the epoch (Redis Cluster runs
// each script on one node).
func TestCandleSeriesKeysShareTheSlot(t *testing.T) {
	k := newRedisKeys("btp:x:")
	z, cov := k.candleSeries([]any{"binance", "BTC/USDT", "1m"})
	tag := func(key string) string { return key[strings.IndexByte(key, '{'):strings.IndexByte(key, '}')] }
	for _, key := range []string{z, cov} {
		if tag(key) != tag(k.epoch()) || z == cov {
			t.Fatalf("%s is not in the epoch's slot (%s)", key, k.epoch())
		}
	}
}

// Candles a window read must not take for the window's: an unaligned candle inside
// it (writes accept those; the series cache ignores them), with the cache on and
// off and for an unaligned since; and stored open times no write could send (a
// fraction, a negative time), which must not be read as candles.
func TestCandleWindowSkipsForeignCandles(t *testing.T) {
	for _, cacheOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("cache=%v", cacheOn), func(t *testing.T) {
			f := newFixture(t, storeConfig{cache: cacheOn, mutate: seriesClock}).with(t)
			all := candleRange(0, 10)
			writeCandleRange(f, seriesKey, all)
			odd := candleRange(3, 1)
			odd[0]["timestamp"] = candleBase + 3*minute + 30_000
			writeCandleRange(f, seriesKey, odd)
			assertJSON(t, "window with an unaligned candle inside", window(f, seriesKey, 0, 10), string(mustJSON(all)))
			shifted := candleRange(3, 1)
			shifted[0]["timestamp"] = candleBase + 30_000
			writeCandleRange(f, seriesKey, shifted)
			got := f.do(Request{Kind: KindCandle, Op: OpRead, Key: seriesKey, Since: candleBase + 30_000, Limit: 1}).Value
			assertJSON(t, "window at an unaligned since", got, string(mustJSON(shifted)))
			got = f.do(Request{Kind: KindCandle, Op: OpRead, Key: seriesKey, Since: candleBase + 30_000, Limit: 4}).Value
			assertJSON(t, "unaligned window with aligned candles inside", got, "null")
		})
	}
	t.Run("stored open times no write sends", func(t *testing.T) {
		f := newFixture(t, storeConfig{cache: true, mutate: seriesClock}).with(t)
		spec, _ := Lookup(KindCandle)
		coll := f.db.Collection(spec.Collection)
		ctx := context.Background()
		// (Decimal128 too on a real MongoDB; FerretDB drops the connection on one)
		for _, ts := range []any{float64(candleBase) + 0.5, int64(-minute)} {
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "exchangeName", Value: "binance"}, {Key: "symbol", Value: "BTC/USDT"},
				{Key: "interval", Value: "1m"}, {Key: "timestamp", Value: ts}, {Key: "open", Value: 1}, {Key: "high", Value: 1},
				{Key: "low", Value: 1}, {Key: "close", Value: 1}, {Key: "volume", Value: 1}}); err != nil {
				t.Fatal(err)
			}
		}
		assertJSON(t, "window of foreign documents only", window(f, seriesKey, 0, 1), "null")
		known(t, f, seriesKey)
		assertJSON(t, "after the rebuild", window(f, seriesKey, 0, 1), "null")
		assertJSON(t, "at 0 after the rebuild", f.do(Request{Kind: KindCandle, Op: OpRead, Key: seriesKey, Since: 0, Limit: 1}).Value, "null")
		all := candleRange(0, 3)
		writeCandleRange(f, seriesKey, all)
		assertJSON(t, "written over them", window(f, seriesKey, 0, 3), string(mustJSON(all)))
	})
}

// A candle MongoDB refuses as a duplicate while the series holds none there (a
// unique index other than the store's: an adopted database's older one, before the
// migration dropped it) is an error, not a success that stores nothing; a value
// with more after its array is refused.
func TestCandleWriteRefusedElsewhere(t *testing.T) {
	f := newFixture(t, storeConfig{cache: false, mutate: func(o *Options) { seriesClock(o); o.SkipIndexes = true }}).with(t)
	spec, _ := Lookup(KindCandle)
	ctx := context.Background()
	if _, err := f.db.Collection(spec.Collection).Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "symbol", Value: 1}, {Key: "interval", Value: 1}, {Key: "timestamp", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
		t.Fatal(err)
	}
	cs := candleRange(0, 2)
	writeCandleRange(f, seriesKey, cs)
	other := keyOf("exchangeName", "kraken", "symbol", "BTC/USDT", "interval", "1m")
	err := f.doErr(Request{Kind: KindCandle, Op: OpWrite, Key: other, Value: mustJSON(cs)})
	if err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Fatalf("write refused by another unique index: %v, want an error", err)
	}
	err = f.doErr(Request{Kind: KindCandle, Op: OpWrite, Key: seriesKey, Value: []byte(string(mustJSON(cs)) + ` {"more":1}`)})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("value with more after its array: %v, want ErrInvalid", err)
	}
}
