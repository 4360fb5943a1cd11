package persist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

type scanPage struct {
	Keys []struct {
		Key     map[string]any `json:"key"`
		Removed bool           `json:"removed"`
	} `json:"keys"`
	Unreadable []struct {
		ID    string         `json:"id"`
		Key   map[string]any `json:"key"`
		Error string         `json:"error"`
	} `json:"unreadable"`
	Next *string `json:"next"`
}

// scanAll pages through a kind with pages of size limit.
func (f *fixture) scanAll(kind Kind, limit int64) (keys []string, unreadable []string, pages int) {
	f.t.Helper()
	after := ""
	for {
		res := f.do(Request{Kind: kind, Op: OpScan, Limit: limit, After: after})
		var p scanPage
		if err := json.Unmarshal(res.Value, &p); err != nil {
			f.t.Fatalf("scan page %s: %v", res.Value, err)
		}
		pages++
		for _, k := range p.Keys {
			b, _ := json.Marshal(k.Key)
			s := string(b)
			if k.Removed {
				s += " removed"
			}
			keys = append(keys, s)
		}
		for _, u := range p.Unreadable {
			b, _ := json.Marshal(u.Key)
			unreadable = append(unreadable, fmt.Sprintf("%s %s: %s", u.ID, b, u.Error))
		}
		if p.Next == nil {
			sort.Strings(keys)
			sort.Strings(unreadable)
			return keys, unreadable, pages
		}
		after = *p.Next
	}
}

// A scan returns every document's key in pages, documents of an adopted database
// (the @backtest-kit/mongo layout, written behind the store's back) included; a
// document no request could name is reported with its _id, never skipped silently.
func TestScanPagesThroughEveryDocument(t *testing.T) {
	f := newFixture(t, storeConfig{cache: true})
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		f.do(Request{Kind: KindSignal, Op: OpWrite, Key: keyOf("symbol", fmt.Sprintf("S%d/USDT", i), "strategyName", "s", "exchangeName", "e"), Value: json.RawMessage(`{"id":"x"}`)})
	}
	f.do(Request{Kind: KindStorage, Op: OpWrite, Key: keyOf("backtest", true), Value: json.RawMessage(`[{"id":"a"},{"id":"b"}]`)})
	f.do(Request{Kind: KindMeasure, Op: OpWrite, Key: keyOf("bucket", "b", "key", "k"), Value: json.RawMessage(`{"id":"k","data":1,"removed":false}`)})
	f.do(Request{Kind: KindMeasure, Op: OpRemove, Key: keyOf("bucket", "b", "key", "k")})
	f.do(Request{Kind: KindCandle, Op: OpWrite, Key: keyOf("exchangeName", "e", "symbol", "s", "interval", "1m"),
		Value: json.RawMessage(fmt.Sprintf(`[{"timestamp":%d,"open":1,"high":1,"low":1,"close":1,"volume":1}]`, candleBase))})
	// Written by @backtest-kit/mongo: one readable, one without exchangeName, one with a numeric symbol.
	sig := f.db.Collection("signal-items")
	if _, err := sig.InsertMany(ctx, []any{
		bson.D{{Key: "symbol", Value: "ADOPTED"}, {Key: "strategyName", Value: "s"}, {Key: "exchangeName", Value: "e"}, {Key: "payload", Value: bson.D{{Key: "id", Value: "y"}}}},
		bson.D{{Key: "symbol", Value: "BROKEN"}, {Key: "strategyName", Value: "s"}, {Key: "payload", Value: bson.D{}}},
		bson.D{{Key: "_id", Value: "text-id"}, {Key: "symbol", Value: int32(7)}, {Key: "strategyName", Value: "s"}, {Key: "exchangeName", Value: "e"}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Collection("storage-items").InsertOne(ctx, bson.D{{Key: "backtest", Value: "yes"}, {Key: "signalId", Value: "c"}}); err != nil {
		t.Fatal(err)
	}

	keys, bad, pages := f.scanAll(KindSignal, 2)
	want := []string{`{"exchangeName":"e","strategyName":"s","symbol":"ADOPTED"}`}
	for i := 0; i < 5; i++ {
		want = append(want, fmt.Sprintf(`{"exchangeName":"e","strategyName":"s","symbol":"S%d/USDT"}`, i))
	}
	sort.Strings(want)
	if strings.Join(keys, "\n") != strings.Join(want, "\n") {
		t.Fatalf("signal keys:\n%s\nwant:\n%s", strings.Join(keys, "\n"), strings.Join(want, "\n"))
	}
	if pages != 5 { // 8 documents, 2 a page (each full page has a next), and the empty last page
		t.Fatalf("%d pages", pages)
	}
	if len(bad) != 2 || !strings.Contains(bad[0]+bad[1], `field "exchangeName" is missing`) ||
		!strings.Contains(bad[0]+bad[1], `text-id {"exchangeName":"e","strategyName":"s","symbol":7}: field "symbol" is a 32-bit integer, not a string`) {
		t.Fatalf("unreadable signals: %q", bad)
	}
	keys, bad, _ = f.scanAll(KindStorage, MaxScanPage)
	if strings.Join(keys, " ") != `{"backtest":true,"id":"a"} {"backtest":true,"id":"b"}` || len(bad) != 1 || !strings.Contains(bad[0], `"backtest" is a string`) {
		t.Fatalf("storage: %q %q", keys, bad)
	}
	keys, _, _ = f.scanAll(KindMeasure, 10)
	if strings.Join(keys, " ") != `{"bucket":"b","key":"k"} removed` {
		t.Fatalf("measure: %q", keys)
	}
	keys, _, _ = f.scanAll(KindCandle, 10)
	if strings.Join(keys, " ") != fmt.Sprintf(`{"exchangeName":"e","interval":"1m","symbol":"s","timestamp":%d}`, candleBase) {
		t.Fatalf("candle: %q", keys)
	}
	keys, bad, _ = f.scanAll(KindSession, 10)
	if len(keys)+len(bad) != 0 {
		t.Fatalf("empty kind: %q %q", keys, bad)
	}
}

// Hostile cursors and pages are refused as bad input and read nothing.
func TestScanRefusesBadInput(t *testing.T) {
	f := newFixture(t, storeConfig{})
	for _, c := range []struct {
		name string
		req  Request
	}{
		{"no limit", Request{Kind: KindLog, Op: OpScan}},
		{"page over the bound", Request{Kind: KindLog, Op: OpScan, Limit: MaxScanPage + 1}},
		{"not base64", Request{Kind: KindLog, Op: OpScan, Limit: 1, After: "!!!"}},
		{"type only", Request{Kind: KindLog, Op: OpScan, Limit: 1, After: "Bw"}},
		{"object id cut short", Request{Kind: KindLog, Op: OpScan, Limit: 1, After: "BwABAgM"}},
		{"string with a lying length", Request{Kind: KindLog, Op: OpScan, Limit: 1, After: "Av___wBh"}},
		{"document type", Request{Kind: KindLog, Op: OpScan, Limit: 1, After: "AwUAAAAA"}},
		{"too long", Request{Kind: KindLog, Op: OpScan, Limit: 1, After: strings.Repeat("A", maxScanCursor+1)}},
		{"with a key", Request{Kind: KindLog, Op: OpScan, Limit: 1, Key: keyOf("id", "x")}},
		{"with a value", Request{Kind: KindLog, Op: OpScan, Limit: 1, Value: json.RawMessage(`[]`)}},
		{"with when", Request{Kind: KindState, Op: OpScan, Limit: 1, When: ms(1)}},
		{"after on a read", Request{Kind: KindLog, Op: OpRead, After: "x"}},
	} {
		if err := f.doErr(c.req); !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v, want bad input", c.name, err)
		}
	}
}
