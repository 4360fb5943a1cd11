package persist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// badRequests are requests every store must refuse without touching a server.
var badRequests = []struct {
	name string
	req  Request
	want error
}{
	{"unknown kind", Request{Kind: "dictionary", Op: OpRead}, ErrInvalid},
	{"unknown op", Request{Kind: KindSignal, Op: "drop", Key: sigKey}, ErrInvalid},
	{"op the kind lacks", Request{Kind: KindSignal, Op: OpRemove, Key: sigKey}, ErrInvalid},
	{"has on measure", Request{Kind: KindMeasure, Op: OpHas, Key: keyOf("bucket", "b", "key", "k")}, ErrInvalid},
	{"missing key field", Request{Kind: KindSignal, Op: OpRead, Key: keyOf("symbol", "BTC")}, ErrInvalid},
	{"extra key field", Request{Kind: KindSignal, Op: OpRead, Key: keyOf("symbol", "a", "strategyName", "b", "exchangeName", "c", "frameName", "")}, ErrInvalid},
	{"item field on list", Request{Kind: KindMeasure, Op: OpList, Key: keyOf("bucket", "b", "key", "k")}, ErrInvalid},
	{"bool as string", Request{Kind: KindStorage, Op: OpRead, Key: keyOf("backtest", "true")}, ErrInvalid},
	{"number as string field", Request{Kind: KindSignal, Op: OpRead, Key: keyOf("symbol", 5.0, "strategyName", "b", "exchangeName", "c")}, ErrInvalid},
	{"empty key", Request{Kind: KindSignal, Op: OpRead, Key: keyOf("symbol", "", "strategyName", "b", "exchangeName", "c")}, ErrInvalid},
	{"overlong key", Request{Kind: KindSignal, Op: OpRead, Key: keyOf("symbol", strings.Repeat("x", 513), "strategyName", "b", "exchangeName", "c")}, ErrTooLarge},
	{"invalid utf-8 key", Request{Kind: KindSignal, Op: OpRead, Key: keyOf("symbol", "\xff", "strategyName", "b", "exchangeName", "c")}, ErrInvalid},
	{"malformed JSON", Request{Kind: KindSignal, Op: OpWrite, Key: sigKey, Value: json.RawMessage(`{"a":`)}, ErrInvalid},
	{"missing value", Request{Kind: KindSignal, Op: OpWrite, Key: sigKey}, ErrInvalid},
	{"signal as array", Request{Kind: KindSignal, Op: OpWrite, Key: sigKey, Value: json.RawMessage(`[1]`)}, ErrInvalid},
	{"signal as string", Request{Kind: KindSignal, Op: OpWrite, Key: sigKey, Value: json.RawMessage(`"x"`)}, ErrInvalid},
	{"risk as object", Request{Kind: KindRisk, Op: OpWrite, Key: keyOf("riskName", "r", "exchangeName", "e"), Value: json.RawMessage(`{}`)}, ErrInvalid},
	{"state as null", Request{Kind: KindState, Op: OpWrite, Key: keyOf("signalId", "s", "bucketName", "b"), Value: json.RawMessage(`null`)}, ErrInvalid},
	{"dictionary as null", Request{Kind: KindDictionary, Op: OpWrite, Key: keyOf("signalId", "s", "dictionaryName", "d"), Value: json.RawMessage(`null`), When: ms(1)}, ErrInvalid},
	{"dictionary as array", Request{Kind: KindDictionary, Op: OpWrite, Key: keyOf("signalId", "s", "dictionaryName", "d"), Value: json.RawMessage(`[]`), When: ms(1)}, ErrInvalid},
	{"dictionary with the state key", Request{Kind: KindDictionary, Op: OpRead, Key: keyOf("signalId", "s", "bucketName", "d")}, ErrInvalid},
	{"dictionary without its name", Request{Kind: KindDictionary, Op: OpRead, Key: keyOf("signalId", "s")}, ErrInvalid},
	{"dictionary list", Request{Kind: KindDictionary, Op: OpList, Key: keyOf("signalId", "s", "dictionaryName", "d")}, ErrInvalid},
	{"number out of range", Request{Kind: KindState, Op: OpWrite, Key: keyOf("signalId", "s", "bucketName", "b"), Value: json.RawMessage(`{"a":1e400}`)}, ErrInvalid},
	{"oversized payload", Request{Kind: KindState, Op: OpWrite, Key: keyOf("signalId", "s", "bucketName", "b"), Value: json.RawMessage(`{"a":"` + strings.Repeat("x", DefaultMaxPayloadBytes) + `"}`)}, ErrTooLarge},
	{"value on read", Request{Kind: KindSignal, Op: OpRead, Key: sigKey, Value: json.RawMessage(`{}`)}, ErrInvalid},
	{"when on signal", Request{Kind: KindSignal, Op: OpWrite, Key: sigKey, Value: json.RawMessage(`{}`), When: ms(1)}, ErrInvalid},
	{"negative when", Request{Kind: KindState, Op: OpWrite, Key: keyOf("signalId", "s", "bucketName", "b"), Value: json.RawMessage(`{}`), When: ms(-1)}, ErrInvalid},
	{"limit on a record read", Request{Kind: KindSignal, Op: OpRead, Key: sigKey, Limit: 5}, ErrInvalid},
	{"list not an array", Request{Kind: KindStorage, Op: OpWrite, Key: keyOf("backtest", true), Value: json.RawMessage(`{"id":"a"}`)}, ErrInvalid},
	{"list item not an object", Request{Kind: KindStorage, Op: OpWrite, Key: keyOf("backtest", true), Value: json.RawMessage(`[1]`)}, ErrInvalid},
	{"list item without id", Request{Kind: KindNotification, Op: OpWrite, Key: keyOf("backtest", true), Value: json.RawMessage(`[{"type":"x"}]`)}, ErrInvalid},
	{"list item with numeric id", Request{Kind: KindLog, Op: OpWrite, Value: json.RawMessage(`[{"id":5}]`)}, ErrInvalid},
	{"list item with empty id", Request{Kind: KindLog, Op: OpWrite, Value: json.RawMessage(`[{"id":""}]`)}, ErrInvalid},
	{"log with a key", Request{Kind: KindLog, Op: OpRead, Key: keyOf("backtest", true)}, ErrInvalid},
	{"candle bad interval", Request{Kind: KindCandle, Op: OpRead, Key: keyOf("exchangeName", "e", "symbol", "s", "interval", "7m"), Limit: 5}, ErrInvalid},
	{"candle zero limit", Request{Kind: KindCandle, Op: OpRead, Key: keyOf("exchangeName", "e", "symbol", "s", "interval", "1m")}, ErrInvalid},
	{"candle without close", Request{Kind: KindCandle, Op: OpWrite, Key: keyOf("exchangeName", "e", "symbol", "s", "interval", "1m"),
		Value: json.RawMessage(`[{"timestamp":0,"open":1,"high":1,"low":1,"volume":1}]`)}, ErrInvalid},
	// since+limit*step overflowed int64: the series cache took the window for damage and dropped the series
	{"candle since past 2^53", Request{Kind: KindCandle, Op: OpRead, Key: keyOf("exchangeName", "e", "symbol", "s", "interval", "1m"), Limit: 2, Since: 9223372036854720000}, ErrInvalid},
	{"candle until past 2^53", Request{Kind: KindCandle, Op: OpRead, Key: keyOf("exchangeName", "e", "symbol", "s", "interval", "1m"), Limit: 2, Until: 1<<53 + 1}, ErrInvalid},
	{"candle timestamp past 2^53", Request{Kind: KindCandle, Op: OpWrite, Key: keyOf("exchangeName", "e", "symbol", "s", "interval", "1m"),
		Value: json.RawMessage(`[{"timestamp":9223372036854720000,"open":1,"high":1,"low":1,"close":1,"volume":1}]`)}, ErrInvalid},
	{"candle fractional timestamp", Request{Kind: KindCandle, Op: OpWrite, Key: keyOf("exchangeName", "e", "symbol", "s", "interval", "1m"),
		Value: json.RawMessage(`[{"timestamp":1.5,"open":1,"high":1,"low":1,"close":1,"volume":1}]`)}, ErrInvalid},
	{"list write over the item limit", Request{Kind: KindNotification, Op: OpWrite, Key: keyOf("backtest", true), Value: listOf(DefaultMaxListWriteItems + 1)}, ErrTooLarge},
	{"candle string price", Request{Kind: KindCandle, Op: OpWrite, Key: keyOf("exchangeName", "e", "symbol", "s", "interval", "1m"),
		Value: json.RawMessage(`[{"timestamp":0,"open":"1","high":1,"low":1,"close":1,"volume":1}]`)}, ErrInvalid},
}

// listOf is a list value of n small items.
func listOf(n int) json.RawMessage {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"i%d"}`, i)
	}
	b.WriteByte(']')
	return json.RawMessage(b.String())
}

// A whole-list write is bounded in items (each new one is an upsert under the
// list's lock), and the bound follows a raised window.
func TestListWriteItemBound(t *testing.T) {
	key := keyOf("backtest", true)
	s := offlineStore(t, nil)
	if _, err := s.validate(&Request{Kind: KindNotification, Op: OpWrite, Key: key, Value: listOf(DefaultMaxListWriteItems)}); err != nil {
		t.Fatalf("a write of exactly the limit: %v", err)
	}
	s = offlineStore(t, func(o *Options) { o.ListWindows = map[Kind]int{KindNotification: 8000} })
	if _, err := s.validate(&Request{Kind: KindNotification, Op: OpWrite, Key: key, Value: listOf(16000)}); err != nil {
		t.Fatalf("twice a raised window: %v", err)
	}
	_, err := s.validate(&Request{Kind: KindNotification, Op: OpWrite, Key: key, Value: listOf(16001)})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "16001 items, the limit is 16000") {
		t.Fatalf("over twice a raised window: %v", err)
	}
	if _, err := s.validate(&Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: listOf(DefaultMaxListWriteItems + 1)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("another kind keeps the default: %v", err)
	}
}

// offlineStore is a store whose client points nowhere: validation must not need it.
func offlineStore(t *testing.T, mutate func(*Options)) *Store {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1/"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	o := Options{Database: c.Database("x")}
	if mutate != nil {
		mutate(&o)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestValidateRefusesBadInput(t *testing.T) {
	s := offlineStore(t, nil)
	for _, c := range badRequests {
		_, err := s.Do(context.Background(), c.req)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestValidateAcceptsEdgeCases(t *testing.T) {
	s := offlineStore(t, nil)
	ok := []Request{
		{Kind: KindSession, Op: OpRead, Key: keyOf("strategyName", "s", "exchangeName", "e", "frameName", "", "symbol", "x", "backtest", false)},
		{Kind: KindSignal, Op: OpWrite, Key: sigKey, Value: json.RawMessage(`null`)},
		{Kind: KindSignal, Op: OpRead, Key: sigKey, Value: json.RawMessage(`null`)},
		{Kind: KindRisk, Op: OpRead, Key: keyOf("riskName", "r", "exchangeName", "e"), When: ms(5)},
		{Kind: KindLog, Op: OpRead},
		{Kind: KindCandle, Op: OpRead, Key: keyOf("exchangeName", "e", "symbol", "s", "interval", "1d"), Limit: 1000, Since: 0, Until: 5},
	}
	for _, r := range ok {
		if _, err := s.validate(&r); err != nil {
			t.Errorf("%s %s refused: %v", r.Kind, r.Op, err)
		}
	}
}

func TestUnservedKind(t *testing.T) {
	s := offlineStore(t, func(o *Options) { o.Kinds = []Kind{KindCandle} })
	if _, err := s.Do(context.Background(), Request{Kind: KindSignal, Op: OpRead, Key: sigKey}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unserved kind: %v", err)
	}
	if _, err := Open(Options{Database: s.opts.Database, Kinds: []Kind{"nope"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("open with unknown kind: %v", err)
	}
	if _, err := Open(Options{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("open without a database: %v", err)
	}
}

// Bad input sends nothing to either server.
func TestBadInputChangesNothing(t *testing.T) {
	f := newFixture(t, storeConfig{cache: true})
	c := f.counted(func() {
		for _, b := range badRequests {
			if err := f.doErr(b.req); !errors.Is(err, b.want) {
				t.Errorf("%s: got %v, want %v", b.name, err, b.want)
			}
		}
	})
	if c.Mongo != 0 || c.Redis != 0 {
		t.Fatalf("bad requests reached the servers: %d MongoDB, %d Redis", c.Mongo, c.Redis)
	}
}
