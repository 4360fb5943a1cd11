package persist

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Two tenants with the same logical keys, different database and prefix, one Redis.
func TestTenantsAreIsolated(t *testing.T) {
	a := newFixture(t, storeConfig{cache: true})
	b := newFixture(t, storeConfig{cache: true})
	key := keyOf("symbol", "BTCUSDT", "strategyName", "s1", "exchangeName", "binance")
	a.do(Request{Kind: KindSignal, Op: OpWrite, Key: key, Value: []byte(`{"tenant":"a"}`)})
	assertJSON(t, "b before its write", b.do(Request{Kind: KindSignal, Op: OpRead, Key: key}).Value, `null`)
	b.do(Request{Kind: KindSignal, Op: OpWrite, Key: key, Value: []byte(`{"tenant":"b"}`)})
	for i := 0; i < 2; i++ {
		assertJSON(t, "a", a.do(Request{Kind: KindSignal, Op: OpRead, Key: key}).Value, `{"tenant":"a"}`)
		assertJSON(t, "b", b.do(Request{Kind: KindSignal, Op: OpRead, Key: key}).Value, `{"tenant":"b"}`)
	}
	a.do(Request{Kind: KindLog, Op: OpWrite, Value: mustJSON([]any{fxLogEntry("only-a", 1)})})
	assertJSON(t, "b log", b.do(Request{Kind: KindLog, Op: OpRead}).Value, `[]`)
	// every Redis key of a tenant starts with its prefix
	keys, err := a.rclient.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !hasPrefix(k, a.opts.KeyPrefix) && !hasPrefix(k, b.opts.KeyPrefix) {
			continue // another test's tenant
		}
		ttl, err := a.rclient.PTTL(context.Background(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if k != a.store.keys.epoch() && k != b.store.keys.epoch() && (ttl <= 0 || ttl > DefaultCacheTTL) {
			t.Errorf("cache key %q has TTL %v", k, ttl)
		}
	}
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// Distinct keys never share a document or a cache entry, however their parts are spelled.
func TestKeyCollisions(t *testing.T) {
	f := newFixture(t, storeConfig{cache: true})
	pairs := [][2]string{
		{"a:b", "c"}, {"a", "b:c"}, {"a:b:c", "x"}, {"a/b", "c"}, {"a", "b/c"}, {"a.b", "c"}, {"a", "b.c"},
		{"$a", "b"}, {"a b", "c"}, {"a", " b c"}, {"ü", "c"}, {"u\u0308", "c"}, {"a%3Ab", "c"}, {"a%", "b"},
		{"a", "%b"}, {"日本", "語"}, {"日", "本語"}, {"a\\b", "c"}, {"a", "b\\c"}, {"{a}", "b"},
	}
	for i, p := range pairs {
		f.do(Request{Kind: KindMeasure, Op: OpWrite, Key: keyOf("bucket", p[0], "key", p[1]), When: ms(1),
			Value: mustJSON(map[string]any{"id": p[1], "data": i, "removed": false})})
	}
	for round := 0; round < 2; round++ { // the second round is served by the cache
		for i, p := range pairs {
			got := f.do(Request{Kind: KindMeasure, Op: OpRead, Key: keyOf("bucket", p[0], "key", p[1])}).Value
			assertJSON(t, fmt.Sprintf("%q/%q", p[0], p[1]), got, string(mustJSON(map[string]any{"id": p[1], "data": i, "removed": false})))
		}
	}
	n, err := f.db.Collection("measure-items").CountDocuments(context.Background(), bson.D{})
	if err != nil || int(n) != len(pairs) {
		t.Fatalf("%d documents (%v), want %d", n, err, len(pairs))
	}
}

// Documents written in @backtest-kit/mongo's layout (mongoose: payload subdocument,
// createDate/updatedDate, when as a number, no version) are read and then updated in place.
func TestAdoptPublicLayout(t *testing.T) {
	f := newFixture(t, storeConfig{cache: true, mutate: func(o *Options) {
		o.Now = func() time.Time { return time.UnixMilli(candleBase + 10*60_000) }
	}})
	ctx := context.Background()
	now := time.UnixMilli(1767225600000).UTC()
	insert := func(coll string, docs ...bson.D) {
		for _, d := range docs {
			d = append(d, bson.E{Key: "createDate", Value: now}, bson.E{Key: "updatedDate", Value: now}, bson.E{Key: "__v", Value: int32(0)})
			if _, err := f.db.Collection(coll).InsertOne(ctx, d); err != nil {
				t.Fatalf("insert into %s: %v", coll, err)
			}
		}
	}
	// Node's driver stores integral numbers that fit int32 as int32, others as double.
	insert("signal-items", bson.D{{Key: "symbol", Value: "BTCUSDT"}, {Key: "strategyName", Value: "s1"}, {Key: "exchangeName", Value: "binance"},
		{Key: "payload", Value: bson.D{{Key: "id", Value: "sig"}, {Key: "priceOpen", Value: 50000.5}, {Key: "timestamp", Value: float64(1767225600000)},
			{Key: "minuteEstimatedTime", Value: int32(1440)}, {Key: "note", Value: nil}}}})
	insert("measure-items",
		bson.D{{Key: "bucket", Value: "b"}, {Key: "entryKey", Value: "live"}, {Key: "removed", Value: false}, {Key: "when", Value: float64(1767225600000)},
			{Key: "payload", Value: bson.D{{Key: "id", Value: "live"}, {Key: "data", Value: int32(1)}, {Key: "removed", Value: false}}}},
		bson.D{{Key: "bucket", Value: "b"}, {Key: "entryKey", Value: "gone"}, {Key: "removed", Value: true},
			{Key: "payload", Value: bson.D{{Key: "id", Value: "gone"}, {Key: "data", Value: int32(2)}, {Key: "removed", Value: true}}}})
	insert("interval-items", bson.D{{Key: "bucket", Value: "iv"}, {Key: "entryKey", Value: "k"}, {Key: "removed", Value: false},
		{Key: "payload", Value: bson.D{{Key: "id", Value: "k"}, {Key: "data", Value: true}, {Key: "when", Value: now}, {Key: "removed", Value: false}}}})
	insert("storage-items", bson.D{{Key: "backtest", Value: false}, {Key: "signalId", Value: "r1"},
		{Key: "payload", Value: bson.D{{Key: "id", Value: "r1"}, {Key: "status", Value: "closed"}, {Key: "minuteEstimatedTime", Value: nil}}}})
	// @backtest-kit/mongo 20.1.0: findOneAndUpdate({signalId, dictionaryName}, {$set: {payload, when: when.getTime()}}).
	insert("dictionary-items", bson.D{{Key: "signalId", Value: "sig"}, {Key: "dictionaryName", Value: "levels"},
		{Key: "payload", Value: bson.D{{Key: "id", Value: "sig_levels"}, {Key: "data", Value: bson.D{
			{Key: "tp", Value: bson.D{{Key: "value", Value: 52000.5}, {Key: "when", Value: float64(1767225600000)}}}}},
			{Key: "when", Value: float64(1767225600000)}}},
		{Key: "when", Value: float64(1767225600000)}})
	for i := int64(0); i < 3; i++ {
		insert("candle-items", bson.D{{Key: "exchangeName", Value: "binance"}, {Key: "symbol", Value: "BTCUSDT"}, {Key: "interval", Value: "1m"},
			{Key: "timestamp", Value: float64(candleBase + i*60_000)}, {Key: "open", Value: 1.5}, {Key: "high", Value: int32(2)},
			{Key: "low", Value: 1.25}, {Key: "close", Value: 1.75}, {Key: "volume", Value: 100.125}})
	}
	sig := keyOf("symbol", "BTCUSDT", "strategyName", "s1", "exchangeName", "binance")
	want := `{"id":"sig","priceOpen":50000.5,"timestamp":1767225600000,"minuteEstimatedTime":1440,"note":null}`
	assertJSON(t, "adopted signal", f.do(Request{Kind: KindSignal, Op: OpRead, Key: sig}).Value, want)
	if got := string(f.do(Request{Kind: KindSignal, Op: OpRead, Key: sig}).Value); got != want {
		t.Fatalf("adopted signal text = %s, want %s", got, want)
	}
	assertJSON(t, "adopted measure", f.do(Request{Kind: KindMeasure, Op: OpRead, Key: keyOf("bucket", "b", "key", "live")}).Value, `{"id":"live","data":1,"removed":false}`)
	assertJSON(t, "adopted tombstone", f.do(Request{Kind: KindMeasure, Op: OpRead, Key: keyOf("bucket", "b", "key", "gone")}).Value, `null`)
	assertJSON(t, "adopted list", f.do(Request{Kind: KindMeasure, Op: OpList, Key: keyOf("bucket", "b")}).Value, `["live"]`)
	assertJSON(t, "adopted interval (BSON date)", f.do(Request{Kind: KindInterval, Op: OpRead, Key: keyOf("bucket", "iv", "key", "k")}).Value,
		`{"id":"k","data":true,"when":"2026-01-01T00:00:00.000Z","removed":false}`)
	assertJSON(t, "adopted storage", f.do(Request{Kind: KindStorage, Op: OpRead, Key: keyOf("backtest", false)}).Value,
		`[{"id":"r1","status":"closed","minuteEstimatedTime":null}]`)
	assertJSON(t, "adopted candles", f.do(Request{Kind: KindCandle, Op: OpRead, Key: keyOf("exchangeName", "binance", "symbol", "BTCUSDT", "interval", "1m"), Since: candleBase, Limit: 3}).Value,
		`[{"timestamp":1767225600000,"open":1.5,"high":2,"low":1.25,"close":1.75,"volume":100.125},{"timestamp":1767225660000,"open":1.5,"high":2,"low":1.25,"close":1.75,"volume":100.125},{"timestamp":1767225720000,"open":1.5,"high":2,"low":1.25,"close":1.75,"volume":100.125}]`)
	dict := keyOf("signalId", "sig", "dictionaryName", "levels")
	assertJSON(t, "adopted dictionary", f.do(Request{Kind: KindDictionary, Op: OpRead, Key: dict}).Value,
		`{"id":"sig_levels","data":{"tp":{"value":52000.5,"when":1767225600000}},"when":1767225600000}`)
	assertJSON(t, "absent dictionary", f.do(Request{Kind: KindDictionary, Op: OpRead, Key: keyOf("signalId", "sig", "dictionaryName", "other")}).Value, `null`)
	// writes update the adopted documents in place
	f.do(Request{Kind: KindSignal, Op: OpWrite, Key: sig, Value: []byte(`{"id":"sig2"}`)})
	assertJSON(t, "signal after write", f.do(Request{Kind: KindSignal, Op: OpRead, Key: sig}).Value, `{"id":"sig2"}`)
	f.do(Request{Kind: KindStorage, Op: OpWrite, Key: keyOf("backtest", false), Value: []byte(`[{"id":"r1","status":"cancelled"}]`)})
	f.do(Request{Kind: KindDictionary, Op: OpWrite, Key: dict, When: ms(1767225660000), Value: []byte(`{"id":"sig_levels","data":{},"when":1767225660000}`)})
	assertJSON(t, "dictionary after write", f.do(Request{Kind: KindDictionary, Op: OpRead, Key: dict}).Value, `{"id":"sig_levels","data":{},"when":1767225660000}`)
	for coll, want := range map[string]int64{"signal-items": 1, "storage-items": 1, "dictionary-items": 1} {
		n, err := f.db.Collection(coll).CountDocuments(ctx, bson.D{})
		if err != nil || n != want {
			t.Fatalf("%s has %d documents (%v), want %d", coll, n, err, want)
		}
	}
	var doc bson.M
	if err := f.db.Collection("signal-items").FindOne(ctx, bson.D{}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc["createDate"] == nil || doc["updatedDate"] == nil || doc["payload"] == nil {
		t.Fatalf("document after write lost the public layout: %v", doc)
	}
}

// The documents this store writes follow the public layout (what another reader expects).
func TestWrittenLayout(t *testing.T) {
	f := newFixture(t, storeConfig{cache: false})
	ctx := context.Background()
	f.do(Request{Kind: KindRisk, Op: OpWrite, Key: keyOf("riskName", "r", "exchangeName", "e"), When: ms(1767225600000), Value: []byte(`[]`)})
	f.do(Request{Kind: KindMemory, Op: OpWrite, Key: keyOf("signalId", "s", "bucketName", "b", "memoryId", "m"), When: ms(5), Value: []byte(fxMemory)})
	var risk, mem bson.M
	if err := f.db.Collection("risk-items").FindOne(ctx, bson.D{}).Decode(&risk); err != nil {
		t.Fatal(err)
	}
	if risk["riskName"] != "r" || risk["exchangeName"] != "e" || risk["when"] != int64(1767225600000) || risk["positions"] == nil ||
		risk["createDate"] == nil || risk["updatedDate"] == nil {
		t.Fatalf("risk document: %v", risk)
	}
	if err := f.db.Collection("memory-items").FindOne(ctx, bson.D{}).Decode(&mem); err != nil {
		t.Fatal(err)
	}
	if mem["signalId"] != "s" || mem["bucketName"] != "b" || mem["memoryId"] != "m" || mem["removed"] != false || mem["payload"] == nil {
		t.Fatalf("memory document: %v", mem)
	}
	f.do(Request{Kind: KindDictionary, Op: OpWrite, Key: keyOf("signalId", "s", "dictionaryName", "d"), When: ms(1767225600000), Value: []byte(fxDictionary)})
	var dict bson.M
	if err := f.db.Collection("dictionary-items").FindOne(ctx, bson.D{}).Decode(&dict); err != nil {
		t.Fatal(err)
	}
	if dict["signalId"] != "s" || dict["dictionaryName"] != "d" || dict["when"] != int64(1767225600000) || dict["payload"] == nil ||
		dict["createDate"] == nil || dict["updatedDate"] == nil {
		t.Fatalf("dictionary document: %v", dict)
	}
}
