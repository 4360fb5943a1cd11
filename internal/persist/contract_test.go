package persist

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"
)

// recordCase is one record kind of the contract suite: a key, two payloads.
type recordCase struct {
	kind   Kind
	key    map[string]any
	value  string
	value2 string
}

var sigKey = keyOf("symbol", "BTC/USDT", "strategyName", "s1", "exchangeName", "binance")

var recordCases = []recordCase{
	{KindSignal, sigKey, fxSignal, `{"id":"x","priceOpen":1.25,"minuteEstimatedTime":1440}`},
	{KindSchedule, sigKey, fxSignal, `{"id":"y","_isScheduled":true}`},
	{KindStrategy, sigKey, fxStrategy, `{"pendingSignalId":null,"isPaused":true}`},
	{KindRisk, keyOf("riskName", "r1", "exchangeName", "binance"), fxRisk, `[]`},
	{KindPartial, keyOf("symbol", "BTCUSDT", "strategyName", "s1", "exchangeName", "binance", "signalId", "7f1c2a9e"), fxPartial, `{}`},
	{KindBreakeven, keyOf("symbol", "BTCUSDT", "strategyName", "s1", "exchangeName", "binance", "signalId", "7f1c2a9e"), fxBreakeven, `{}`},
	{KindMeasure, keyOf("bucket", "rsi_1m_0", "key", "BTCUSDT_1767225600000"), fxMeasure, `{"id":"BTCUSDT_1767225600000","data":1,"removed":false}`},
	{KindInterval, keyOf("bucket", "iv_1h_0", "key", "BTCUSDT_1767225600000"), fxInterval, `{"id":"BTCUSDT_1767225600000","data":[[0]],"removed":false}`},
	{KindMemory, keyOf("signalId", "7f1c", "bucketName", "notes", "memoryId", "m1"), fxMemory, `{"priority":2,"data":{},"removed":false,"index":"","when":2}`},
	{KindRecent, keyOf("symbol", "BTCUSDT", "strategyName", "s1", "exchangeName", "binance", "frameName", "", "backtest", false), fxRecent, `{"id":"z"}`},
	{KindState, keyOf("signalId", "7f1c", "bucketName", "bucket"), fxState, `{"id":"7f1c_bucket","data":{},"when":5}`},
	{KindSession, keyOf("strategyName", "s1", "exchangeName", "binance", "frameName", "", "symbol", "BTCUSDT", "backtest", true), fxSession, `{"id":"s","data":{"k":"v"},"when":6}`},
	{KindDictionary, keyOf("signalId", "7f1c", "dictionaryName", "prices"), fxDictionary, `{"id":"7f1c_prices","data":{},"when":7}`},
}

func TestContract(t *testing.T) {
	for _, cacheOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("cache=%v", cacheOn), func(t *testing.T) {
			f := newFixture(t, storeConfig{cache: cacheOn, mutate: func(o *Options) {
				o.Now = func() time.Time { return time.UnixMilli(candleBase + 100*60_000) }
			}})
			for _, rc := range recordCases {
				t.Run(string(rc.kind), func(t *testing.T) { contractRecord(t, f, rc) })
			}
			t.Run("measure-list", func(t *testing.T) { contractBucketList(t, f, KindMeasure) })
			t.Run("interval-list", func(t *testing.T) { contractBucketList(t, f, KindInterval) })
			t.Run("memory-list", func(t *testing.T) { contractMemoryList(t, f) })
			t.Run("storage", func(t *testing.T) { contractUpsertList(t, f, KindStorage) })
			t.Run("notification", func(t *testing.T) { contractUpsertList(t, f, KindNotification) })
			t.Run("log", func(t *testing.T) { contractLog(t, f) })
			t.Run("candle", func(t *testing.T) { contractCandles(t, f) })
		})
	}
}

// Every record kind of the table has a case in the suite (a new kind cannot be left out).
func TestContractCoversEveryRecordKind(t *testing.T) {
	covered := map[Kind]bool{}
	for _, rc := range recordCases {
		covered[rc.kind] = true
	}
	for i := range Kinds {
		if k := Kinds[i].Kind; Kinds[i].Shape == ShapeRecord && !covered[k] {
			t.Errorf("record kind %s has no case in recordCases", k)
		}
	}
}

func contractRecord(t *testing.T, f *fixture, rc recordCase) {
	f = f.with(t)
	spec, _ := Lookup(rc.kind)
	read := Request{Kind: rc.kind, Op: OpRead, Key: rc.key}
	write := func(v string) {
		req := Request{Kind: rc.kind, Op: OpWrite, Key: rc.key, Value: json.RawMessage(v)}
		if spec.HasWhen {
			req.When = ms(1767225600000)
		}
		f.do(req)
	}
	assertJSON(t, "empty read", f.do(read).Value, spec.Empty)
	write(rc.value)
	assertJSON(t, "read after write", f.do(read).Value, rc.value)
	assertJSON(t, "second read", f.do(read).Value, rc.value)
	write(rc.value2)
	assertJSON(t, "read after overwrite", f.do(read).Value, rc.value2)
	assertJSON(t, "second read after overwrite", f.do(read).Value, rc.value2)
	if spec.NullWritable {
		write(`null`)
		assertJSON(t, "read after null write", f.do(read).Value, `null`)
		write(rc.value)
		assertJSON(t, "read after rewrite", f.do(read).Value, rc.value)
	}
	if spec.SoftDelete {
		f.do(Request{Kind: rc.kind, Op: OpRemove, Key: rc.key})
		assertJSON(t, "read of tombstone", f.do(read).Value, `null`)
		assertJSON(t, "second read of tombstone", f.do(read).Value, `null`)
		if spec.Supports(OpHas) {
			if h := f.do(Request{Kind: rc.kind, Op: OpHas, Key: rc.key}).Has; h == nil || !*h {
				t.Fatalf("has of a tombstone = %v, want true", h)
			}
		}
		write(rc.value)
		assertJSON(t, "resurrected", f.do(read).Value, rc.value)
		// removing an absent record is a no-op
		absent := map[string]any{}
		for k, v := range rc.key {
			absent[k] = v
		}
		absent[spec.ItemField.Name] = "never-written"
		f.do(Request{Kind: rc.kind, Op: OpRemove, Key: absent})
		assertJSON(t, "read of absent after remove", f.do(Request{Kind: rc.kind, Op: OpRead, Key: absent}).Value, `null`)
		if spec.Supports(OpHas) {
			if h := f.do(Request{Kind: rc.kind, Op: OpHas, Key: absent}).Has; h == nil || *h {
				t.Fatalf("has of an absent record = %v, want false", h)
			}
		}
	}
}

func contractBucketList(t *testing.T, f *fixture, kind Kind) {
	f = f.with(t)
	bucket := "list_" + string(kind)
	key := func(k string) map[string]any { return keyOf("bucket", bucket, "key", k) }
	list := func() []string {
		var keys []string
		if err := json.Unmarshal(f.do(Request{Kind: kind, Op: OpList, Key: keyOf("bucket", bucket)}).Value, &keys); err != nil {
			t.Fatal(err)
		}
		return keys
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("empty list = %v", got)
	}
	for _, k := range []string{"b:2", "a/1", "c.3"} {
		f.do(Request{Kind: kind, Op: OpWrite, Key: key(k), When: ms(1), Value: mustJSON(map[string]any{"id": k, "data": k, "removed": false})})
	}
	f.do(Request{Kind: kind, Op: OpWrite, Key: keyOf("bucket", bucket+"x", "key", "other"), Value: json.RawMessage(`{"id":"other","data":1,"removed":false}`)})
	if got := fmt.Sprint(list()); got != "[a/1 b:2 c.3]" {
		t.Fatalf("list = %s", got)
	}
	f.do(Request{Kind: kind, Op: OpRemove, Key: key("b:2")})
	if got := fmt.Sprint(list()); got != "[a/1 c.3]" {
		t.Fatalf("list after remove = %s", got)
	}
}

func contractMemoryList(t *testing.T, f *fixture) {
	f = f.with(t)
	ctx := keyOf("signalId", "sig-list", "bucketName", "b")
	key := func(id string) map[string]any {
		return keyOf("signalId", "sig-list", "bucketName", "b", "memoryId", id)
	}
	for _, id := range []string{"m2", "m1", "m3"} {
		f.do(Request{Kind: KindMemory, Op: OpWrite, Key: key(id), When: ms(5), Value: json.RawMessage(fmt.Sprintf(`{"priority":1,"data":{"id":%q},"removed":false,"index":"x","when":5}`, id))})
	}
	f.do(Request{Kind: KindMemory, Op: OpRemove, Key: key("m2")})
	want := `[{"memoryId":"m1","data":{"priority":1,"data":{"id":"m1"},"removed":false,"index":"x","when":5}},` +
		`{"memoryId":"m3","data":{"priority":1,"data":{"id":"m3"},"removed":false,"index":"x","when":5}}]`
	assertJSON(t, "memory list", f.do(Request{Kind: KindMemory, Op: OpList, Key: ctx}).Value, want)
}

// listByID decodes a list read into items by id.
func listByID(t *testing.T, raw []byte) map[string]map[string]any {
	var items []map[string]any
	if err := json.Unmarshal(raw, &items); err != nil {
		t.Fatalf("list read %s: %v", short(string(raw)), err)
	}
	out := map[string]map[string]any{}
	for _, it := range items {
		out[it["id"].(string)] = it
	}
	if len(out) != len(items) {
		t.Fatalf("list read has repeated ids: %s", short(string(raw)))
	}
	return out
}

func contractUpsertList(t *testing.T, f *fixture, kind Kind) {
	f = f.with(t)
	item := func(id string, v int64) map[string]any {
		if kind == KindStorage {
			return fxStorageRow(id, v, "opened")
		}
		m := fxNotification(id, v == 0)
		m["seq"] = v
		return m
	}
	for _, bt := range []bool{true, false} {
		key := keyOf("backtest", bt)
		read := Request{Kind: kind, Op: OpRead, Key: key}
		assertJSON(t, "empty list", f.do(read).Value, `[]`)
		a, b := item(fmt.Sprintf("a-%v", bt), 1), item("b", 0)
		f.do(Request{Kind: kind, Op: OpWrite, Key: key, Value: mustJSON([]any{a, b})})
		got := listByID(t, f.do(read).Value)
		if len(got) != 2 || !jsonEqual(mustJSON(got["b"]), mustJSON(b)) {
			t.Fatalf("after first write: %v", got)
		}
		a2, c := item(fmt.Sprintf("a-%v", bt), 2), item("c", 3)
		if kind == KindStorage {
			a2["status"] = "closed"
			a2["closeReason"] = "take_profit"
		}
		f.do(Request{Kind: kind, Op: OpWrite, Key: key, Value: mustJSON([]any{a2, c})})
		got = listByID(t, f.do(read).Value)
		if len(got) != 3 {
			t.Fatalf("after second write want 3 items (no deletes), got %d", len(got))
		}
		if !jsonEqual(mustJSON(got[a2["id"].(string)]), mustJSON(a2)) {
			t.Fatalf("changed item not updated: %v", got[a2["id"].(string)])
		}
	}
	// backtest and live are separate lists
	bt := listByID(t, f.do(Request{Kind: kind, Op: OpRead, Key: keyOf("backtest", true)}).Value)
	if _, ok := bt["a-false"]; ok {
		t.Fatal("live item visible in the backtest list")
	}
}

func contractLog(t *testing.T, f *fixture) {
	f = f.with(t)
	read := Request{Kind: KindLog, Op: OpRead}
	assertJSON(t, "empty log", f.do(read).Value, `[]`)
	l1, l2 := fxLogEntry("l1", 1), fxLogEntry("l2", 2)
	f.do(Request{Kind: KindLog, Op: OpWrite, Value: mustJSON([]any{l1, l2})})
	l1b := fxLogEntry("l1", 99)
	l3 := fxLogEntry("l3", 3)
	f.do(Request{Kind: KindLog, Op: OpWrite, Value: mustJSON([]any{l1b, l2, l3})})
	got := listByID(t, f.do(read).Value)
	if len(got) != 3 {
		t.Fatalf("log has %d entries, want 3", len(got))
	}
	if !jsonEqual(mustJSON(got["l1"]), mustJSON(l1)) {
		t.Fatalf("insert-only log rewrote l1: %v", got["l1"])
	}
}

// candleBase is an aligned minute; the fixture's clock is candleBase + 100 minutes.
const candleBase = int64(1767225600000)

func candles(ts ...int64) []map[string]any {
	out := []map[string]any{}
	for i, t := range ts {
		out = append(out, map[string]any{"timestamp": t, "open": 50000 + float64(i) + 0.5, "high": 50010, "low": 49990.25, "close": 50001, "volume": 12.345})
	}
	return out
}

func contractCandles(t *testing.T, f *fixture) {
	f = f.with(t)
	key := keyOf("exchangeName", "binance", "symbol", "BTC/USDT", "interval", "1m")
	window := func(since, limit int64) []byte {
		return f.do(Request{Kind: KindCandle, Op: OpRead, Key: key, Since: since, Limit: limit, Until: since + limit*60_000}).Value
	}
	m := int64(60_000)
	assertJSON(t, "empty window", window(candleBase, 5), `null`)
	// 100 closed candles plus the forming one (open time = now - 0: not closed)
	var ts []int64
	for i := int64(0); i <= 100; i++ {
		ts = append(ts, candleBase+i*m)
	}
	all := candles(ts...)
	assertJSON(t, "write result: the closed candles", f.do(Request{Kind: KindCandle, Op: OpWrite, Key: key, Value: mustJSON(all)}).Value,
		string(mustJSON(all[:100])))
	assertJSON(t, "window of 5", window(candleBase, 5), string(mustJSON(all[:5])))
	assertJSON(t, "window of 5 again", window(candleBase, 5), string(mustJSON(all[:5])))
	assertJSON(t, "window of 100", window(candleBase, 100), string(mustJSON(all[:100])))
	assertJSON(t, "window including the forming candle", window(candleBase+96*m, 5), `null`)
	assertJSON(t, "unaligned window", window(candleBase+1, 5), `null`)
	// first write wins
	changed := candles(candleBase)
	changed[0]["open"] = 1
	assertJSON(t, "rewrite result: the stored candle", f.do(Request{Kind: KindCandle, Op: OpWrite, Key: key, Value: mustJSON(changed)}).Value,
		string(mustJSON(all[:1])))
	assertJSON(t, "after rewrite", window(candleBase, 1), string(mustJSON(all[:1])))
	// a gap makes the window a miss
	gapKey := keyOf("exchangeName", "binance", "symbol", "ETH/USDT", "interval", "1m")
	f.do(Request{Kind: KindCandle, Op: OpWrite, Key: gapKey, Value: mustJSON(candles(candleBase, candleBase+m, candleBase+3*m))})
	if got := f.do(Request{Kind: KindCandle, Op: OpRead, Key: gapKey, Since: candleBase, Limit: 4}).Value; string(got) != "null" {
		t.Fatalf("window with a gap = %s", got)
	}
	if got := f.do(Request{Kind: KindCandle, Op: OpRead, Key: gapKey, Since: candleBase, Limit: 2}).Value; jsonEqual(got, []byte("null")) {
		t.Fatal("window before the gap is a miss")
	}
	// another exchange is another series
	other := keyOf("exchangeName", "bybit", "symbol", "BTC/USDT", "interval", "1m")
	if got := f.do(Request{Kind: KindCandle, Op: OpRead, Key: other, Since: candleBase, Limit: 1}).Value; string(got) != "null" {
		t.Fatalf("bybit sees binance candles: %s", got)
	}
	_ = sort.Strings
}
