package persist

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Candle series benchmarks (docs/performance.md): a 5-candle window of a series of
// 10,000 candles alternated with the same window of a series of 1,000,000, hit and
// miss; "ratio" is large/small. The setup reports how long the store took to rebuild
// the large series from MongoDB and what Redis holds for it.

const benchLargeSeries = 1_000_000

func benchSeriesFixture(b *testing.B) *fixture {
	return newFixture(b, storeConfig{cache: true, mutate: func(o *Options) {
		o.Now = func() time.Time { return time.UnixMilli(candleBase + 2*benchLargeSeries*minute) }
		o.HealthInterval = time.Hour
	}})
}

// fillSeries stores n candles of a series: as the store writes them, but straight
// into MongoDB, 5,000 per insertMany (the setup is not what is measured, and the
// store's writes would take minutes on a loaded FerretDB).
func fillSeries(b *testing.B, f *fixture, key map[string]any, n int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	filter := bson.D{{Key: "exchangeName", Value: key["exchangeName"]}, {Key: "symbol", Value: key["symbol"]}, {Key: "interval", Value: key["interval"]}}
	coll := f.db.Collection("candle-items")
	stamp := time.Now().UTC()
	for from := int64(0); from < n; from += 5000 {
		cs, err := parseCandles(mustJSON(candleRange(from, min(5000, n-from))))
		if err != nil {
			b.Fatal(err)
		}
		docs := make([]any, len(cs))
		for i, cd := range cs {
			docs[i] = cd.document(filter, stamp)
		}
		if _, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil {
			b.Fatal(err)
		}
	}
}

// waitKnown reads the series once, which starts its rebuild (the read itself may time
// out: on FerretDB a range query scans the whole collection), waits for the rebuild,
// and returns how long it took.
func waitKnown(b *testing.B, f *fixture, key map[string]any) time.Duration {
	start := time.Now()
	before := f.store.seriesRebuilds.Load()
	read := Request{Kind: KindCandle, Op: OpRead, Key: key, Since: candleBase, Limit: 1}
	if _, err := f.store.Do(context.Background(), read); err != nil {
		b.Logf("the read that starts the rebuild: %v", err)
	}
	for f.store.seriesRebuilds.Load() == before {
		if time.Since(start) > 20*time.Minute {
			b.Fatal("series not rebuilt after 20 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	c := f.counter.Snapshot()
	benchDo(b, f.store, read)
	if d := f.counter.Snapshot().Sub(c); d.Mongo != 0 {
		b.Fatalf("a read of the rebuilt series cost %d MongoDB commands", d.Mongo)
	}
	return took
}

func BenchmarkCandleWindowFlat(b *testing.B) {
	f := benchSeriesFixture(b)
	ctx := context.Background()
	small := keyOf("exchangeName", "binance", "symbol", "SMALL", "interval", "1m")
	large := keyOf("exchangeName", "binance", "symbol", "LARGE", "interval", "1m")
	fillSeries(b, f, small, 10_000)
	t0 := time.Now()
	fillSeries(b, f, large, benchLargeSeries)
	b.Logf("stored %d candles in %v", benchLargeSeries, time.Since(t0))
	waitKnown(b, f, small)
	b.Logf("rebuilt the series of %d candles in %v", benchLargeSeries, waitKnown(b, f, large))
	z, cov := f.store.keys.candleSeries([]any{"binance", "LARGE", "1m"})
	zb, err := f.rclient.MemoryUsage(ctx, z, 0).Result()
	if err != nil {
		b.Fatal(err)
	}
	cb, err := f.rclient.MemoryUsage(ctx, cov, 0).Result()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("Redis MEMORY USAGE for %d candles: set %d bytes, coverage %d bytes (%.1f bytes per candle)",
		benchLargeSeries, zb, cb, float64(zb+cb)/benchLargeSeries)
	read := func(key map[string]any, since int64) func() {
		req := Request{Kind: KindCandle, Op: OpRead, Key: key, Since: since, Limit: 5}
		return func() { benchDo(b, f.store, req) }
	}
	b.Run("hit", func(b *testing.B) {
		pairedAs(b, "10k", read(small, candleBase+5_000*minute), "1M", read(large, candleBase+500_000*minute))
	})
	b.Run("miss", func(b *testing.B) {
		pairedAs(b, "10k", read(small, candleBase+9_998*minute), "1M", read(large, candleBase+(benchLargeSeries-2)*minute))
	})
}

// BenchmarkCandleWriteSliding is a live bot's write: the newest 5 candles, 4 of them
// stored already. The baseline is what the store sent before the series cache: one
// unordered insertMany of the 5, 4 of which fail as duplicates.
func BenchmarkCandleWriteSliding(b *testing.B) {
	f := benchSeriesFixture(b)
	ctx := context.Background()
	key := keyOf("exchangeName", "binance", "symbol", "BTCUSDT", "interval", "1m")
	fillSeries(b, f, key, 1000)
	waitKnown(b, f, key)
	raw := f.db.Collection("raw-candles")
	if _, err := raw.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "timestamp", Value: 1}},
		Options: options.Index().SetUnique(true)}); err != nil {
		b.Fatal(err)
	}
	rawDocs := func(from int64) []any {
		var docs []any
		for _, c := range candleRange(from, 5) {
			docs = append(docs, bson.D{{Key: "timestamp", Value: c["timestamp"]}, {Key: "open", Value: c["open"]},
				{Key: "high", Value: c["high"]}, {Key: "low", Value: c["low"]}, {Key: "close", Value: c["close"]}, {Key: "volume", Value: c["volume"]}})
		}
		return docs
	}
	if _, err := raw.InsertMany(ctx, rawDocs(996)); err != nil {
		b.Fatal(err)
	}
	i, j := int64(997), int64(997)
	pairedAs(b, "insertMany", func() {
		_, err := raw.InsertMany(ctx, rawDocs(i-4), options.InsertMany().SetOrdered(false))
		if err != nil && !onlyDuplicates(err) {
			b.Fatal(err)
		}
		i++
	}, "store", func() {
		benchDo(b, f.store, Request{Kind: KindCandle, Op: OpWrite, Key: key, Value: mustJSON(candleRange(j-4, 5))})
		j++
	})
}
