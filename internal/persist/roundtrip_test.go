package persist

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// Round trips per operation (R2), counted by the command monitor and the Redis hook.
func TestRoundTrips(t *testing.T) {
	f := newFixture(t, storeConfig{cache: true, mutate: func(o *Options) {
		o.Now = func() time.Time { return time.UnixMilli(candleBase + 2000*60_000) }
	}})
	key := keyOf("symbol", "BTCUSDT", "strategyName", "s1", "exchangeName", "binance")
	write := Request{Kind: KindSignal, Op: OpWrite, Key: key, Value: json.RawMessage(fxSignal)}
	read := Request{Kind: KindSignal, Op: OpRead, Key: key}
	f.do(write) // warm: collection, script

	t.Run("single write = 1 MongoDB + 2 Redis (mark, update)", func(t *testing.T) {
		c := f.counted(func() { f.do(write) })
		if c.Mongo != 1 || c.Redis != 2 {
			t.Fatalf("write cost %d MongoDB (%v) + %d Redis, want 1 + 2", c.Mongo, c.MongoByCmd, c.Redis)
		}
	})
	t.Run("soft delete = 1 MongoDB + 2 Redis (mark, update)", func(t *testing.T) {
		mk := keyOf("signalId", "s", "bucketName", "b", "memoryId", "m")
		f.do(Request{Kind: KindMemory, Op: OpWrite, Key: mk, Value: json.RawMessage(fxMemory)})
		c := f.counted(func() { f.do(Request{Kind: KindMemory, Op: OpRemove, Key: mk}) })
		if c.Mongo != 1 || c.Redis != 2 {
			t.Fatalf("soft delete cost %d MongoDB (%v) + %d Redis, want 1 + 2", c.Mongo, c.MongoByCmd, c.Redis)
		}
	})
	t.Run("cached read = 1 Redis + 0 MongoDB", func(t *testing.T) {
		f.do(read)
		c := f.counted(func() { assertJSON(t, "read", f.do(read).Value, fxSignal) })
		if c.Mongo != 0 || c.Redis != 1 {
			t.Fatalf("cached read cost %d MongoDB + %d Redis, want 0 + 1", c.Mongo, c.Redis)
		}
	})
	t.Run("uncached read = 1 MongoDB", func(t *testing.T) {
		if err := f.rclient.Del(t.Context(), f.store.keys.record(KindSignal, []any{"BTCUSDT", "s1", "binance"})).Err(); err != nil {
			t.Fatal(err)
		}
		c := f.counted(func() { assertJSON(t, "read", f.do(read).Value, fxSignal) })
		if c.Mongo != 1 || c.Redis != 2 {
			t.Fatalf("uncached read cost %d MongoDB + %d Redis, want 1 + 2 (lookup, fill)", c.Mongo, c.Redis)
		}
	})
	t.Run("absent read is cached too", func(t *testing.T) {
		absent := Request{Kind: KindSignal, Op: OpRead, Key: keyOf("symbol", "NONE", "strategyName", "s1", "exchangeName", "binance")}
		f.do(absent)
		c := f.counted(func() { assertJSON(t, "absent", f.do(absent).Value, "null") })
		if c.Mongo != 0 || c.Redis != 1 {
			t.Fatalf("absent cached read cost %d MongoDB + %d Redis", c.Mongo, c.Redis)
		}
	})
	t.Run("candle series: write, miss, rebuild, hit, miss past coverage", func(t *testing.T) {
		ck := keyOf("exchangeName", "binance", "symbol", "BTCUSDT", "interval", "1m")
		var cs []map[string]any
		for i := int64(0); i < 1000; i++ {
			cs = append(cs, candles(candleBase + i*60_000)[0])
		}
		write := Request{Kind: KindCandle, Op: OpWrite, Key: ck, Value: mustJSON(cs)}
		w := f.counted(func() { f.do(write) })
		if w.Mongo != 2 || w.Redis != 2 {
			t.Fatalf("write of 1000 candles cost %d MongoDB (%v) + %d Redis, want 2 inserts + 2 (mark, update)", w.Mongo, w.MongoByCmd, w.Redis)
		}
		win := Request{Kind: KindCandle, Op: OpRead, Key: ck, Since: candleBase, Limit: 1000}
		rebuilt := f.store.seriesRebuilds.Load()
		hold := make(chan struct{})
		f.store.beforeRebuild = func() { <-hold }
		c := f.counted(func() { assertJSON(t, "window", f.do(win).Value, string(mustJSON(cs))) })
		close(hold)
		if c.Mongo != 1 || c.Redis != 1 {
			t.Fatalf("window of an unknown series cost %d MongoDB (%v) + %d Redis, want 1 + 1 (and a rebuild)", c.Mongo, c.MongoByCmd, c.Redis)
		}
		eventually(t, "the series is rebuilt", 20*time.Second, func() bool { return f.store.seriesRebuilds.Load() > rebuilt })
		c = f.counted(func() { assertJSON(t, "window", f.do(win).Value, string(mustJSON(cs))) })
		if c.Mongo != 0 || c.Redis != 1 {
			t.Fatalf("window hit cost %d MongoDB + %d Redis, want 0 + 1", c.Mongo, c.Redis)
		}
		past := Request{Kind: KindCandle, Op: OpRead, Key: ck, Since: candleBase + 998*60_000, Limit: 5}
		c = f.counted(func() { assertJSON(t, "window past the coverage", f.do(past).Value, "null") })
		if c.Mongo != 0 || c.Redis != 1 {
			t.Fatalf("window past the coverage cost %d MongoDB (%v) + %d Redis, want 0 + 1", c.Mongo, c.MongoByCmd, c.Redis)
		}
		c = f.counted(func() { assertJSON(t, "rewrite", f.do(write).Value, string(mustJSON(cs))) })
		if c.Mongo != 0 || c.Redis != 1 {
			t.Fatalf("rewrite of held candles cost %d MongoDB (%v) + %d Redis, want 0 + 1 (mark)", c.Mongo, c.MongoByCmd, c.Redis)
		}
		next := Request{Kind: KindCandle, Op: OpWrite, Key: ck, Value: mustJSON(append(cs[996:], candles(candleBase + 1000*60_000)[0]))}
		c = f.counted(func() { f.do(next) })
		if c.Mongo != 1 || c.Redis != 2 {
			t.Fatalf("sliding write (4 held, 1 new) cost %d MongoDB (%v) + %d Redis, want 1 insert + 2", c.Mongo, c.MongoByCmd, c.Redis)
		}
		slid := Request{Kind: KindCandle, Op: OpRead, Key: ck, Since: candleBase + 996*60_000, Limit: 5}
		c = f.counted(func() {
			if got := f.do(slid).Value; jsonEqual(got, []byte("null")) {
				t.Fatal("window of the sliding write is a miss")
			}
		})
		if c.Mongo != 0 || c.Redis != 1 {
			t.Fatalf("window of the sliding write cost %d MongoDB + %d Redis, want 0 + 1", c.Mongo, c.Redis)
		}
	})
	t.Run("list write of 500 unchanged items = 0 MongoDB writes", func(t *testing.T) {
		var rows []any
		for i := int64(0); i < 500; i++ {
			rows = append(rows, fxStorageRow(fmt.Sprintf("sig-%03d", i), i, "opened"))
		}
		lk := keyOf("backtest", true)
		first := f.counted(func() { f.do(Request{Kind: KindStorage, Op: OpWrite, Key: lk, Value: mustJSON(rows)}) })
		// One upsert per row into the items (each returns the row's version, which
		// orders the head copies), 10 bulk calls of 50 into the head, and a trim of the
		// head to the window of 50 (one delete, one meta update).
		if first.MongoWrite != 512 || first.MongoByCmd["findAndModify"] != 500 {
			t.Fatalf("first write of 500 rows cost %d MongoDB writes (%v), want 500 upserts, 10 bulk calls of 50 and a trim", first.MongoWrite, first.MongoByCmd)
		}
		c := f.counted(func() { f.do(Request{Kind: KindStorage, Op: OpWrite, Key: lk, Value: mustJSON(rows)}) })
		if c.MongoWrite != 0 || c.Mongo != 0 || c.Redis != 1 {
			t.Fatalf("unchanged write cost %d MongoDB commands (%v) and %d Redis, want 0 and 1", c.Mongo, c.MongoByCmd, c.Redis)
		}
		rows[7] = fxStorageRow("sig-007", 10_000, "closed")
		c = f.counted(func() { f.do(Request{Kind: KindStorage, Op: OpWrite, Key: lk, Value: mustJSON(rows)}) })
		if c.MongoWrite != 2 || c.Mongo != 2 || c.Redis != 3 {
			t.Fatalf("one changed row cost %d MongoDB commands (%v) and %d Redis, want 2 writes (item upsert, head) and 3 Redis (hashes, mark, update)", c.Mongo, c.MongoByCmd, c.Redis)
		}
		got := listByID(t, f.do(Request{Kind: KindStorage, Op: OpRead, Key: lk}).Value)
		if len(got) != 50 || got["sig-007"]["status"] != "closed" {
			t.Fatalf("list after change: %d rows (want the window of 50), sig-007 %v", len(got), got["sig-007"])
		}
	})
	t.Run("list write without the cache = 1 MongoDB find, 0 writes when unchanged", func(t *testing.T) {
		g := newFixture(t, storeConfig{cache: false}).with(t)
		var rows []any
		for i := int64(0); i < 100; i++ {
			rows = append(rows, fxNotification(fmt.Sprintf("n-%03d", i), i%7 == 0))
		}
		lk := keyOf("backtest", false)
		g.do(Request{Kind: KindNotification, Op: OpWrite, Key: lk, Value: mustJSON(rows)})
		g.do(Request{Kind: KindNotification, Op: OpRead, Key: lk}) // builds the head
		c := g.counted(func() { g.do(Request{Kind: KindNotification, Op: OpWrite, Key: lk, Value: mustJSON(rows)}) })
		if c.MongoWrite != 0 || c.Mongo != 1 {
			t.Fatalf("unchanged write without cache cost %d MongoDB commands (%v), want 1 find", c.Mongo, c.MongoByCmd)
		}
	})
	t.Run("log of 1000 existing lines = 0 MongoDB writes", func(t *testing.T) {
		var lines []any
		for i := int64(0); i < 1000; i++ {
			lines = append(lines, fxLogEntry(fmt.Sprintf("l%04d", i), i))
		}
		f.do(Request{Kind: KindLog, Op: OpWrite, Value: mustJSON(lines)})
		lines = append(lines[1:], fxLogEntry("l-new", 5000))
		c := f.counted(func() { f.do(Request{Kind: KindLog, Op: OpWrite, Value: mustJSON(lines)}) })
		if c.MongoWrite != 2 {
			t.Fatalf("log write with one new line cost %d MongoDB writes (%v), want 2 (insert, head)", c.MongoWrite, c.MongoByCmd)
		}
	})
}
