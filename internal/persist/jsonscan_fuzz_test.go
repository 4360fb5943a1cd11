package persist

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// The list item scanner and the payload codec are fuzzed with the standard Go
// fuzzer; the seed corpus runs with every `go test`. Every input is also checked
// with no spare capacity (slices.Clip) and cut at each power-of-two length, since
// the request bodies the gateway passes on end exactly where the client stopped.
// Run the fuzzer longer with, for example:
//
//	go test ./internal/persist -run '^$' -fuzz '^FuzzListItems$' -fuzztime 5m
//	go test ./internal/persist -run '^$' -fuzz '^FuzzCodecRoundTrip$' -fuzztime 5m

// clippedPrefixes returns b clipped, and its prefixes of power-of-two lengths, each clipped.
func clippedPrefixes(b []byte) [][]byte {
	out := [][]byte{slices.Clip(slices.Clone(b))}
	for n := 1; n < len(b); n *= 2 {
		out = append(out, slices.Clip(slices.Clone(b[:n])))
	}
	return out
}

var scanSeeds = []string{
	`[]`, `[{"id":"a"}]`, ` [ {"id":"a","x":[1,{"id":"inner"}],"s":"q\"}]"} , {"y":{"id":"no"},"id":"b\u0031"},{"id":5},{} ,"str",[1,2] ] `,
	`[{"id":"a","id":"b"}]`, `[{"id":"\\"},{"id":"\""}]`, `[{"id":"é✓𝄞"}]`, `[1e308,-0,true,false,null]`,
	`{"value":{"a":"\`, `[{"id":"a\`, `[{"id":"a","v":"\u12`, `[[[[[[[[[[]]]]]]]]]]`, `{"a":{"b":{"c":[1,2,{"d":"e"}]}}}`,
	`{"a.b":1,"$set":2,"":3,"%":4,"x\u0000y":6}`, `[["s1",{"p":1}],[["deep"]]]`, `{"n":123456789012345678901234567890}`,
}

// checkScan: the scanner never panics nor reads past the end; on valid JSON it
// agrees with encoding/json.
func checkScan(t *testing.T, b []byte) {
	for i := range b {
		if end, _ := SkipJSONValue(b, i); end < i || end > len(b) {
			t.Fatalf("SkipJSONValue(%q, %d) = %d, outside [%d, %d]", b, i, end, i, len(b))
		}
	}
	parts := splitArray(b)
	for _, p := range parts {
		lit, found := topLevelField(p, "id")
		if found {
			stringLiteral(lit)
		}
	}
	// Invalid UTF-8 passes json.Valid; encoding/json then decodes it to U+FFFD while
	// the scanner keeps the bytes (the store refuses such ids, the gateway such bodies).
	if !json.Valid(b) || !utf8.Valid(b) {
		return
	}
	if end, complete := SkipJSONValue(b, skipSpaceAt(b, 0)); !complete || len(bytes.TrimSpace(b[end:])) != 0 {
		t.Fatalf("SkipJSONValue(%q) = %d, %v: a valid document is one complete value", b, end, complete)
	}
	var items []json.RawMessage
	if json.Unmarshal(b, &items) != nil {
		return
	}
	if len(parts) != len(items) {
		t.Fatalf("splitArray(%q): %d items, encoding/json finds %d", b, len(parts), len(items))
	}
	for i, p := range parts {
		if compact(t, p) != compact(t, items[i]) {
			t.Fatalf("splitArray(%q) item %d = %q, encoding/json: %q", b, i, p, items[i])
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(p, &obj) != nil {
			continue
		}
		lit, found := topLevelField(p, "id")
		want, has := obj["id"] // encoding/json keeps the last of duplicate names, as topLevelField does
		if found != has || (found && compact(t, lit) != compact(t, want)) {
			t.Fatalf("topLevelField(%q, id) = %q %v, encoding/json: %q %v", p, lit, found, want, has)
		}
		if found {
			var s string
			isStr := json.Unmarshal(want, &s) == nil
			got, ok := stringLiteral(lit)
			if ok != isStr || got != s {
				t.Fatalf("stringLiteral(%q) = %q %v, encoding/json: %q %v", lit, got, ok, s, isStr)
			}
		}
	}
}

func compact(t *testing.T, b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compact %q: %v", b, err)
	}
	return buf.String()
}

// checkCodec: a valid payload either encodes, and decodes to valid JSON that is a
// fixed point of the round trip, or is refused with an error; never a panic.
func checkCodec(t *testing.T, b []byte) {
	if !json.Valid(b) {
		return
	}
	p, err := encodePayload(b)
	if err != nil {
		return
	}
	out := appendJSON(nil, p.Value, p.Encoding == encodingEscaped)
	if !json.Valid(out) {
		t.Fatalf("round trip of %q produced invalid JSON %q", b, out)
	}
	p2, err := encodePayload(slices.Clip(out))
	if err != nil {
		t.Fatalf("round trip of %q produced %q, which does not encode: %v", b, out, err)
	}
	if again := appendJSON(nil, p2.Value, p2.Encoding == encodingEscaped); !bytes.Equal(again, out) {
		t.Fatalf("round trip is not stable: %q -> %q -> %q", b, out, again)
	}
	if p2.Encoding != p.Encoding {
		t.Fatalf("encoding of %q changed from %d to %d on the round trip", b, p.Encoding, p2.Encoding)
	}
}

func FuzzListItems(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range clippedPrefixes(b) {
			checkScan(t, in)
		}
	})
}

func FuzzCodecRoundTrip(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(strings.Repeat("[", 300) + strings.Repeat("]", 300)))
	f.Add([]byte(`{"x":1.0,"y":100e0,"z":-0,"g":1e21,"h":1e-7,"i":9007199254740993,"j":-9223372036854775808}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range clippedPrefixes(b) {
			checkCodec(t, in)
		}
	})
}
