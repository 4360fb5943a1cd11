package persist

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Each benchmark alternates a raw driver baseline and the store's operation in the
// same loop, so machine load affects both alike, and reports raw-ns/op, store-ns/op
// and their ratio (docs/store.md lists the figures). FerretDB scans instead of using
// indexes, so only ratios mean anything, never absolute MongoDB speed.

func benchFixture(b *testing.B, cache bool) *fixture {
	b.Helper()
	return newFixture(b, storeConfig{cache: cache, mutate: func(o *Options) {
		o.Now = func() time.Time { return time.UnixMilli(candleBase + 5000*60_000) }
		o.HealthInterval = time.Hour
	}})
}

func benchDo(b *testing.B, s *Store, req Request) {
	if _, err := s.Do(context.Background(), req); err != nil {
		b.Fatal(err)
	}
}

// paired runs raw and store b.N times each, interleaved, and reports both and the ratio.
func paired(b *testing.B, raw, store func()) { pairedAs(b, "raw", "store", raw, store) }

// pairedAs is paired with the names of the two sides' metrics.
func pairedAs(b *testing.B, rawName, storeName string, raw, store func()) {
	raw()
	store()
	var rawD, storeD time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		raw()
		t1 := time.Now()
		store()
		storeD += time.Since(t1)
		rawD += t1.Sub(t0)
	}
	b.StopTimer()
	b.ReportMetric(float64(rawD.Nanoseconds())/float64(b.N), rawName+"-ns/op")
	b.ReportMetric(float64(storeD.Nanoseconds())/float64(b.N), storeName+"-ns/op")
	b.ReportMetric(float64(storeD)/float64(rawD), "ratio")
}

var (
	benchSigKey = keyOf("symbol", "BTCUSDT", "strategyName", "s1", "exchangeName", "binance")
	rawFilter   = bson.D{{Key: "symbol", Value: "BTCUSDT"}, {Key: "strategyName", Value: "s1"}, {Key: "exchangeName", Value: "binance"}}
)

func signalBSON(b *testing.B) bson.D {
	var payload bson.D
	if err := bson.UnmarshalExtJSON([]byte(fxSignal), false, &payload); err != nil {
		b.Fatal(err)
	}
	return payload
}

// rawUpsert is what a hand-written adapter sends: one findOneAndUpdate upsert on the unique key.
func rawUpsert(b *testing.B, coll *mongo.Collection, payload bson.D) {
	update := bson.D{{Key: "$set", Value: bson.D{{Key: "payload", Value: payload}, {Key: "updatedDate", Value: time.Now()}}}}
	opts := options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)
	if err := coll.FindOneAndUpdate(context.Background(), rawFilter, update, opts).Err(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkCachedReadVsRedisGet(b *testing.B) {
	f := benchFixture(b, true)
	ctx := context.Background()
	benchDo(b, f.store, Request{Kind: KindSignal, Op: OpWrite, Key: benchSigKey, Value: json.RawMessage(fxSignal)})
	k := f.opts.KeyPrefix + "raw"
	if err := f.rclient.Set(ctx, k, fxSignal, 0).Err(); err != nil {
		b.Fatal(err)
	}
	read := Request{Kind: KindSignal, Op: OpRead, Key: benchSigKey}
	paired(b, func() {
		if _, err := f.rclient.Get(ctx, k).Bytes(); err != nil {
			b.Fatal(err)
		}
	}, func() { benchDo(b, f.store, read) })
}

func BenchmarkUncachedReadVsFindOne(b *testing.B) {
	f := benchFixture(b, false)
	benchDo(b, f.store, Request{Kind: KindSignal, Op: OpWrite, Key: benchSigKey, Value: json.RawMessage(fxSignal)})
	raw := f.db.Collection("raw-items")
	rawUpsert(b, raw, signalBSON(b))
	read := Request{Kind: KindSignal, Op: OpRead, Key: benchSigKey}
	paired(b, func() {
		if _, err := raw.FindOne(context.Background(), rawFilter).Raw(); err != nil {
			b.Fatal(err)
		}
	}, func() { benchDo(b, f.store, read) })
}

func BenchmarkWriteVsUpsertAndSet(b *testing.B) {
	f := benchFixture(b, true)
	ctx := context.Background()
	raw := f.db.Collection("raw-items")
	payload := signalBSON(b)
	write := Request{Kind: KindSignal, Op: OpWrite, Key: benchSigKey, Value: json.RawMessage(fxSignal)}
	paired(b, func() {
		rawUpsert(b, raw, payload)
		if err := f.rclient.Set(ctx, f.opts.KeyPrefix+"raw", fxSignal, time.Hour).Err(); err != nil {
			b.Fatal(err)
		}
	}, func() { benchDo(b, f.store, write) })
}

// benchCandles compares a window read with a raw range find of the same candles
// (miss) or a raw GET of the same bytes (hit).
func benchCandles(b *testing.B, limit int64, cache bool) {
	f := benchFixture(b, cache)
	ctx := context.Background()
	key := keyOf("exchangeName", "binance", "symbol", "BTCUSDT", "interval", "1m")
	var cs []map[string]any
	for i := int64(0); i < limit; i++ {
		cs = append(cs, candles(candleBase + i*60_000)[0])
	}
	benchDo(b, f.store, Request{Kind: KindCandle, Op: OpWrite, Key: key, Value: mustJSON(cs)})
	read := Request{Kind: KindCandle, Op: OpRead, Key: key, Since: candleBase, Limit: limit}
	var raw func()
	if cache {
		k := f.opts.KeyPrefix + "rawwindow"
		if err := f.rclient.Set(ctx, k, []byte(mustJSON(cs)), 0).Err(); err != nil {
			b.Fatal(err)
		}
		raw = func() {
			if _, err := f.rclient.Get(ctx, k).Bytes(); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		filter := bson.D{{Key: "exchangeName", Value: "binance"}, {Key: "symbol", Value: "BTCUSDT"}, {Key: "interval", Value: "1m"},
			{Key: "timestamp", Value: bson.D{{Key: "$gte", Value: candleBase}, {Key: "$lt", Value: candleBase + limit*60_000}}}}
		opts := options.Find().SetSort(bson.D{{Key: "timestamp", Value: 1}}).SetLimit(-limit).SetBatchSize(int32(limit))
		coll := f.db.Collection("candle-items")
		raw = func() {
			cur, err := coll.Find(ctx, filter, opts)
			if err != nil {
				b.Fatal(err)
			}
			var docs []bson.Raw
			if err := cur.All(ctx, &docs); err != nil || int64(len(docs)) != limit {
				b.Fatalf("raw find: %d docs, %v", len(docs), err)
			}
		}
	}
	paired(b, raw, func() { benchDo(b, f.store, read) })
}

func BenchmarkCandles5Miss(b *testing.B)    { benchCandles(b, 5, false) }
func BenchmarkCandles5Hit(b *testing.B)     { benchCandles(b, 5, true) }
func BenchmarkCandles1000Miss(b *testing.B) { benchCandles(b, 1000, false) }
func BenchmarkCandles1000Hit(b *testing.B)  { benchCandles(b, 1000, true) }

// benchList writes 500 storage rows of which changed differ each time. The baseline
// is one raw upsert + SET (the cost of a single write), and for the all-changed case
// 500 raw upserts in bulk calls of 50.
func benchList(b *testing.B, changed int) {
	f := benchFixture(b, true)
	ctx := context.Background()
	key := keyOf("backtest", true)
	rows := make([]map[string]any, 500)
	for i := range rows {
		rows[i] = fxStorageRow(fmt.Sprintf("sig-%03d", i), int64(i), "opened")
	}
	benchDo(b, f.store, Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: mustJSON(rows)})
	raw := f.db.Collection("raw-items")
	payload := signalBSON(b)
	n := 0
	rawBulk := func() {
		models := make([]mongo.WriteModel, 0, 500)
		n++
		for i := 0; i < 500; i++ {
			models = append(models, mongo.NewUpdateOneModel().SetUpsert(true).
				SetFilter(bson.D{{Key: "backtest", Value: true}, {Key: "signalId", Value: fmt.Sprintf("sig-%03d", i)}}).
				SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "payload", Value: bson.D{{Key: "n", Value: n}}}}}}))
		}
		for s := 0; s < len(models); s += bulkChunk {
			if _, err := raw.BulkWrite(ctx, models[s:s+bulkChunk], options.BulkWrite().SetOrdered(false)); err != nil {
				b.Fatal(err)
			}
		}
	}
	rawSingle := func() {
		rawUpsert(b, raw, payload)
		if err := f.rclient.Set(ctx, f.opts.KeyPrefix+"raw", fxSignal, time.Hour).Err(); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	store := func() {
		i++
		for j := 0; j < changed; j++ {
			rows[j]["priority"] = int64(i*1000 + j + 1000)
		}
		benchDo(b, f.store, Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: mustJSON(rows)})
	}
	if changed == len(rows) {
		paired(b, rawBulk, store)
	} else {
		paired(b, rawSingle, store)
	}
}

func BenchmarkList500Unchanged(b *testing.B)  { benchList(b, 0) }
func BenchmarkList500OneChanged(b *testing.B) { benchList(b, 1) }
func BenchmarkList500AllChanged(b *testing.B) { benchList(b, 500) }
