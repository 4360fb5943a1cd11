package gateway

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/backtestpersistence/operator/internal/persist"
)

// Request decoding is fuzzed with the standard Go fuzzer. The suite runs the fuzz
// bodies over the seed corpus plus a bounded, deterministic mutation loop
// (TestDecodeFuzzBounded). Every body is checked with no spare capacity behind it
// (slices.Clip: the server hands the decoder exactly the bytes it read) and cut at
// each power-of-two length (bodies that end inside a string or an escape). `make
// test` runs each target for a few seconds; run the real fuzzer longer with, for example:
//
//	go test ./internal/gateway -run '^$' -fuzz '^FuzzDecodeOp$' -fuzztime 5m
//	go test ./internal/gateway -run '^$' -fuzz '^FuzzDecodeBatch$' -fuzztime 5m

// fuzzSeeds are bodies of every kind and op, plus known-bad shapes.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	for i := range persist.Kinds {
		spec := &persist.Kinds[i]
		for _, op := range spec.Ops {
			b, _ := json.Marshal(validRequest(spec, op))
			seeds = append(seeds, b)
		}
	}
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"kind":"signal"}`, `{"kind":"log","op":"write","key":{},"value":[{"id":"a"}]}`,
		`{"kind":"candle","op":"read","key":{"exchangeName":"e","symbol":"BTC/USDT","interval":"1m"},"limit":5,"since":0,"until":300000}`,
		`{"kind":"memory","op":"has","key":{"signalId":"s","bucketName":"b","memoryId":"m"}}`,
		`{"kind":"storage","op":"write","key":{"backtest":false},"value":[{"id":"x","n":1e308}]}`,
		`{"kind":"state","op":"write","key":{"signalId":"\u0000","bucketName":"$b.c"},"value":null,"when":-1}`,
		`{"ops":[{"kind":"log","op":"read","key":{}}]}`,
		`{"kind":"candle","op":"scan","limit":1000,"after":"BwABAgMEBQYHCAkKCw"}`,
		`{"ops":[{"kind":"signal","op":"scan","limit":1,"after":"AgIAAABhAA"},{"kind":"log","op":"read","key":{}}]}`,
		// Shapes at the edge of the fast path (decodefast.go) and past it.
		" \t{ \"kind\" : \"state\" ,\"op\":\"write\",\"key\":{ \"signalId\":\"s\" , \"bucketName\":\"b\"},\"value\": { \"a\" : [ 1 , 2.5e3 , \"x\\\"y\" ] } ,\"when\":-0 }\r\n",
		`{"kind":"state","kind":"signal","op":"read","key":{"signalId":"s","bucketName":"b"}}`,
		`{"KIND":"state","Op":"read","key":{"signalId":"s","bucketName":"b"}}`,
		`{"kind":"st\u0061te","op":"read","key":{"signalId":"s","bucketName":"b"}}`,
		`{"kind":"state","op":"read","key":{"signalId":"s","signalId":"t","bucketName":"b"}}`,
		`{"kind":"state","op":"write","key":{"signalId":"é","bucketName":"b"},"value":1,"when":1.0}`,
		`{"kind":"state","op":"write","key":{"signalId":"s","bucketName":"b"},"value":1,"when":01}`,
		`{"kind":"state","op":"write","key":{"signalId":"s","bucketName":"b"},"value":1,"when":9223372036854775808}`,
		`{"kind":"state","op":"write","key":{"signalId":"s","bucketName":"b"},"value":[[[[{"a":{"b":null}}]]]],"when":9223372036854775807}`,
		`{"kind":"state","op":"write","key":{"signalId":"s","bucketName":"b"},"value":{"a":1,},"when":1}`,
		`{"kind":"state","op":"write","key":{"signalId":"s","bucketName":"b"},"value":"\x","when":1}`,
		`{"kind":"state","op":"write","key":null,"value":1,"when":1}`,
		`{"kind":"state","op":"read","key":{"signalId":"s","bucketName":"b"}} {}`,
		// Bodies that end inside a string or an escape.
		`{"value":{"a":"\`,
		`{"kind":"state","op":"write","key":{"signalId":"a","bucketName":"b"},"value":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\`,
		`{"kind":"state","op":"write","key":{"signalId":"a","bucketName":"b"},"value":["\u00`,
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// checkDecodeOp is the property of the ops decoder: no panic; an accepted request
// is valid, and re-encoding it decodes to an equal request (nothing is lost or invented).
func checkDecodeOp(t *testing.T, body []byte) {
	// Wherever the fast path answers, the general decoder agrees with it.
	if fast, ok := fastDecodeOp(body); ok {
		var general persist.Request
		if err := strictUnmarshal(body, &general); err != nil {
			t.Fatalf("fast path accepted %q, the general decoder rejects it: %v", body, err)
		}
		if !reflect.DeepEqual(fast, general) {
			t.Fatalf("decoders disagree on %q:\nfast    %+v\ngeneral %+v", body, fast, general)
		}
	}
	req, err := DecodeOp(body)
	if err != nil {
		e := classify(err)
		if e.Code != CodeInvalidRequest && e.Code != CodeTooLarge {
			t.Fatalf("DecodeOp(%q): unexpected code %s", body, e.Code)
		}
		return
	}
	spec, ok := persist.Lookup(req.Kind)
	if !ok || !spec.Supports(req.Op) {
		t.Fatalf("DecodeOp(%q) accepted kind %q op %q", body, req.Kind, req.Op)
	}
	again, err := json.Marshal(req)
	if err != nil {
		t.Fatalf("re-encode %+v: %v", req, err)
	}
	req2, err := DecodeOp(again)
	if err != nil {
		t.Fatalf("re-encoded request rejected: %s: %v", again, err)
	}
	a, _ := json.Marshal(req2)
	if string(a) != string(again) {
		t.Fatalf("round trip changed the request:\n%s\n%s", again, a)
	}
}

// checkDecodeBatch: no panic, and every accepted operation passes DecodeOp alone.
func checkDecodeBatch(t *testing.T, body []byte) {
	reqs, err := DecodeBatch(body, 50)
	if err != nil {
		return
	}
	if len(reqs) > 50 {
		t.Fatalf("batch of %d accepted over the limit", len(reqs))
	}
	for _, r := range reqs {
		b, _ := json.Marshal(r)
		if _, err := DecodeOp(b); err != nil {
			t.Fatalf("batch accepted an op DecodeOp rejects: %s: %v", b, err)
		}
	}
}

// clipped returns b without spare capacity, and its prefixes of power-of-two
// lengths, each without spare capacity.
func clipped(b []byte) [][]byte {
	out := [][]byte{slices.Clip(slices.Clone(b))}
	for n := 1; n < len(b); n *= 2 {
		out = append(out, slices.Clip(slices.Clone(b[:n])))
	}
	return out
}

// checkClipped runs check on b and on its clipped forms.
func checkClipped(t *testing.T, b []byte, check func(*testing.T, []byte)) {
	check(t, b)
	for _, c := range clipped(b) {
		check(t, c)
	}
}

func FuzzDecodeOp(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkClipped(t, b, checkDecodeOp) })
}

func FuzzDecodeBatch(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(`{"ops":[` + string(s) + `]}`))
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkClipped(t, b, checkDecodeBatch) })
}

// TestDecodeFuzzBounded runs the fuzz properties over the seeds and a fixed number
// of deterministic mutations of them, so every test run exercises the decoder
// beyond the hand-written table within a bounded time.
func TestDecodeFuzzBounded(t *testing.T) {
	seeds := fuzzSeeds()
	rng := rand.New(rand.NewPCG(1, 2))
	const rounds = 6000
	alphabet := []byte(`{}[]":,0123456789.-+eEtrufalsn\ abkindopkeyvalue`)
	for _, s := range seeds {
		checkClipped(t, s, checkDecodeOp)
		checkClipped(t, s, checkDecodeBatch)
	}
	for i := 0; i < rounds; i++ {
		b := append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
		for m := rng.IntN(4) + 1; m > 0; m-- {
			switch rng.IntN(4) {
			case 0: // flip a byte
				if len(b) > 0 {
					b[rng.IntN(len(b))] = alphabet[rng.IntN(len(alphabet))]
				}
			case 1: // delete a span
				if len(b) > 1 {
					at := rng.IntN(len(b) - 1)
					n := rng.IntN(min(8, len(b)-at)) + 1
					b = append(b[:at], b[at+n:]...)
				}
			case 2: // insert a byte
				at := rng.IntN(len(b) + 1)
				b = append(b[:at], append([]byte{alphabet[rng.IntN(len(alphabet))]}, b[at:]...)...)
			case 3: // splice with another seed
				o := seeds[rng.IntN(len(seeds))]
				if len(o) > 0 && len(b) > 0 {
					at := rng.IntN(len(b))
					b = append(b[:at:at], o[rng.IntN(len(o)):]...)
				}
			}
		}
		checkClipped(t, b, checkDecodeOp)
		checkClipped(t, b, checkDecodeBatch)
		checkDecodeBatch(t, slices.Clip(append(append([]byte(`{"ops":[`), b...), ']', '}')))
	}
}

// The fast path takes the bodies clients send: every kind and op as encoding/json
// writes them, and the same with whitespace between tokens.
func TestFastDecodeOpTakesCommonBodies(t *testing.T) {
	for i := range persist.Kinds {
		spec := &persist.Kinds[i]
		for _, op := range spec.Ops {
			compact, _ := json.Marshal(validRequest(spec, op))
			indented, _ := json.MarshalIndent(validRequest(spec, op), "", "  ")
			for _, b := range [][]byte{compact, indented} {
				if _, ok := fastDecodeOp(b); !ok {
					t.Errorf("fast path declined %s", b)
				}
				checkDecodeOp(t, b)
			}
		}
	}
}
