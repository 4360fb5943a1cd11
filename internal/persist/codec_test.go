package persist

import (
	"math"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

func roundTrip(t *testing.T, in string) (string, int) {
	t.Helper()
	p, err := encodePayload([]byte(in))
	if err != nil {
		t.Fatalf("encode %s: %v", in, err)
	}
	return string(appendJSON(nil, p.Value, p.Encoding == encodingEscaped)), p.Encoding
}

func TestCodecRoundTripExact(t *testing.T) {
	cases := []struct {
		in, want string
		enc      int
	}{
		{`null`, `null`, encodingVerbatim},
		{`{"a":1,"b":-2,"c":2147483648,"d":9007199254740993,"e":1.5,"f":0.1,"g":1e21,"h":1e-7,"i":123456789.125}`,
			`{"a":1,"b":-2,"c":2147483648,"d":9007199254740993,"e":1.5,"f":0.1,"g":1e+21,"h":1e-7,"i":123456789.125}`, encodingVerbatim},
		{`{"x":1.0,"y":100e0,"z":-0}`, `{"x":1,"y":100,"z":0}`, encodingVerbatim},
		{`{"z":1,"a":2,"m":{"q":[1,"two",true,null,{"k":[]}]}}`, `{"z":1,"a":2,"m":{"q":[1,"two",true,null,{"k":[]}]}}`, encodingVerbatim},
		{`{"u":"héllo ✓ 𝄞 \u0000 \"q\" \\ \n"}`, `{"u":"héllo ✓ 𝄞 \u0000 \"q\" \\ \n"}`, encodingVerbatim},
		{`{"0":"digit key","12":{"3":4}}`, `{"0":"digit key","12":{"3":4}}`, encodingVerbatim},
		{`{"a.b":1,"$set":2,"":3,"%":4,"%2E":5,"x\u0000y":6}`, `{"a.b":1,"$set":2,"":3,"%":4,"%2E":5,"x\u0000y":6}`, encodingEscaped},
		{`[["s1_binance_BTCUSDT",{"priceOpen":50000.5}],[["deep"]]]`, `[["s1_binance_BTCUSDT",{"priceOpen":50000.5}],[["deep"]]]`, encodingEscaped},
		{`{"%arr":[1]}`, `{"%arr":[1]}`, encodingVerbatim},
		{`{"a.b":{"%arr":[[1]]}}`, `{"a.b":{"%arr":[[1]]}}`, encodingEscaped},
		{`[]`, `[]`, encodingVerbatim},
		{`{}`, `{}`, encodingVerbatim},
		{` { "sp" : [ 1 , 2 ] } `, `{"sp":[1,2]}`, encodingVerbatim},
	}
	for _, c := range cases {
		got, enc := roundTrip(t, c.in)
		if got != c.want || enc != c.enc {
			t.Errorf("round trip %s:\n got %s (encoding %d)\nwant %s (encoding %d)", c.in, got, enc, c.want, c.enc)
		}
	}
}

func TestCodecIntegerTypes(t *testing.T) {
	p, err := encodePayload([]byte(`{"small":5,"big":1767225600000,"float":2.5}`))
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := p.Value.DocumentOK()
	for field, want := range map[string]bsoncore.Type{"small": bsoncore.TypeInt32, "big": bsoncore.TypeInt64, "float": bsoncore.TypeDouble} {
		if got := doc.Lookup(field).Type; got != want {
			t.Errorf("%s stored as %v, want %v", field, got, want)
		}
	}
}

func TestCodecRejectsOutOfRange(t *testing.T) {
	if _, err := encodePayload([]byte(`{"a":1e999}`)); err == nil {
		t.Fatal("1e999 accepted")
	}
	deep := strings.Repeat("[", maxDepth+5) + strings.Repeat("]", maxDepth+5)
	if _, err := encodePayload([]byte(deep)); err == nil {
		t.Fatal("over-deep JSON accepted")
	}
}

func TestDocKeyEscapingIsInjective(t *testing.T) {
	keys := []string{"", "%", "%%", ".", "%2E", "%2e", "$a", "a$", "%24a", "a.b", "a%2Eb", "\x00", "%00", "%arr", "arr", "%25"}
	seen := map[string]string{}
	for _, k := range keys {
		e := escapeDocKey(k)
		if keyNeedsEscape(e) {
			t.Errorf("escaped %q is %q, still unstorable", k, e)
		}
		if e == wrappedArrayKey {
			t.Errorf("escaped %q collides with the nested-array marker", k)
		}
		if other, ok := seen[e]; ok {
			t.Errorf("%q and %q both escape to %q", k, other, e)
		}
		seen[e] = k
		if back := unescapeDocKey(e); back != k {
			t.Errorf("unescape(escape(%q)) = %q", k, back)
		}
	}
}

func TestJSNumberFormat(t *testing.T) {
	cases := map[float64]string{0: "0", 1: "1", -1.5: "-1.5", 1e21: "1e+21", 1e20: "100000000000000000000",
		1e-6: "0.000001", 1e-7: "1e-7", 0.30000000000000004: "0.30000000000000004", 5e-324: "5e-324",
		math.Inf(1): "null", math.NaN(): "null", 1.7976931348623157e308: "1.7976931348623157e+308"}
	for f, want := range cases {
		if got := string(appendJSNumber(nil, f)); got != want {
			t.Errorf("format %v = %s, want %s", f, got, want)
		}
	}
}

func TestRedisKeyPartsNeverCollide(t *testing.T) {
	k := newRedisKeys("tenant:")
	tuples := [][]any{
		{"a:b", "c"}, {"a", "b:c"}, {"a%3Ab", "c"}, {"a", "b%3Ac"}, {"a:b:c", ""}, {"", "a:b:c"},
		{"a/b", "c"}, {"a", "b/c"}, {"a.b", "c"}, {"a b", "c"}, {"a", " b c"}, {"ü", "c"}, {"u", "̈c"},
		{"$a", "b"}, {"a%", "b"}, {"a", "%b"}, {"a%25", "b"},
	}
	seen := map[string][]any{}
	for _, p := range tuples {
		key := k.record(KindMeasure, p)
		if prev, ok := seen[key]; ok {
			t.Errorf("%q and %q share Redis key %q", p, prev, key)
		}
		seen[key] = p
		if !strings.HasPrefix(key, "tenant:") {
			t.Errorf("key %q lacks the tenant prefix", key)
		}
	}
	if a, b := k.record(KindStorage, []any{true}), k.record(KindStorage, []any{false}); a == b {
		t.Errorf("backtest and live share %q", a)
	}
	if newRedisKeys("a").epoch() == newRedisKeys("b").epoch() {
		t.Error("two prefixes share an epoch key")
	}
}

func TestParseEntry(t *testing.T) {
	e, ep, ok := parseEntry(`12|abc|p{"a":"|x|"}`)
	if !ok || e.version != 12 || ep != "abc" || e.flag != 'p' || string(e.json) != `{"a":"|x|"}` {
		t.Fatalf("parse: %+v %q %v", e, ep, ok)
	}
	for _, bad := range []string{"", "12", "12|abc", "x|abc|p", "12|abc|"} {
		if _, _, ok := parseEntry(bad); ok {
			t.Errorf("parseEntry(%q) accepted", bad)
		}
	}
}

func TestJSONScan(t *testing.T) {
	arr := []byte(` [ {"id":"a","x":[1,{"id":"inner"}],"s":"q\"}]"} , {"y":{"id":"no"},"id":"b\u0031"},{"id":5},{} ,"str",[1,2] ] `)
	parts := splitArray(arr)
	if len(parts) != 6 {
		t.Fatalf("split into %d: %q", len(parts), parts)
	}
	want := []struct {
		id string
		ok bool
	}{{"a", true}, {"b1", true}, {"", false}, {"", false}, {"", false}, {"", false}}
	for i, w := range want {
		lit, found := topLevelField(parts[i], "id")
		id, isStr := stringLiteral(lit)
		if (found && isStr) != w.ok || id != w.id {
			t.Errorf("item %d %s: id %q (found %v, string %v), want %q %v", i, parts[i], id, found, isStr, w.id, w.ok)
		}
	}
	if got := splitArray([]byte(`[]`)); len(got) != 0 {
		t.Errorf("empty array split into %q", got)
	}
}
