package gateway

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/backtestpersistence/operator/internal/persist"
)

// validKey returns a key of spec with every field set (item field too when wanted).
func validKey(spec *persist.KindSpec, withItem bool) map[string]any {
	k := map[string]any{}
	for _, f := range spec.Key {
		if f.Type == persist.FieldBool {
			k[f.Name] = true
		} else {
			k[f.Name] = "v-" + f.Name
		}
	}
	if withItem && spec.ItemField != nil && spec.Shape != persist.ShapeList {
		k[spec.ItemField.Name] = "item"
	}
	return k
}

// validRequest returns a well-formed request of each op of spec.
func validRequest(spec *persist.KindSpec, op persist.Op) persist.Request {
	r := persist.Request{Kind: spec.Kind, Op: op, Key: validKey(spec, op != persist.OpList)}
	if op == persist.OpWrite {
		r.Value = json.RawMessage(`{"a":1}`)
	}
	if spec.Shape == persist.ShapeCandles && op == persist.OpRead {
		r.Limit, r.Since, r.Until = 5, 60000, 360000
	}
	if op == persist.OpScan {
		r.Key, r.Limit = nil, 100
	}
	return r
}

func TestDecodeOpAcceptsEveryKindAndOp(t *testing.T) {
	for i := range persist.Kinds {
		spec := &persist.Kinds[i]
		for _, op := range spec.Ops {
			body, err := json.Marshal(validRequest(spec, op))
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeOp(body)
			if err != nil {
				t.Errorf("%s %s: %v (body %s)", spec.Kind, op, err, body)
				continue
			}
			if got.Kind != spec.Kind || got.Op != op {
				t.Errorf("%s %s: decoded %s %s", spec.Kind, op, got.Kind, got.Op)
			}
		}
	}
}

func TestDecodeOpRejects(t *testing.T) {
	cases := []struct {
		name, body string
		code       Code
	}{
		{"empty", ``, CodeInvalidRequest},
		{"not an object", `[1,2]`, CodeInvalidRequest},
		{"truncated", `{"kind":"signal","op":"read"`, CodeInvalidRequest},
		{"trailing data", `{"kind":"log","op":"read","key":{}} {}`, CodeInvalidRequest},
		{"unknown field", `{"kind":"log","op":"read","key":{},"extra":1}`, CodeInvalidRequest},
		{"unknown kind", `{"kind":"nope","op":"read","key":{}}`, CodeInvalidRequest},
		{"kind wrong type", `{"kind":1,"op":"read","key":{}}`, CodeInvalidRequest},
		{"unknown op", `{"kind":"log","op":"drop","key":{}}`, CodeInvalidRequest},
		{"op the kind lacks", `{"kind":"signal","op":"remove","key":{"symbol":"a","strategyName":"b","exchangeName":"c"}}`, CodeInvalidRequest},
		{"missing key field", `{"kind":"signal","op":"read","key":{"symbol":"a","strategyName":"b"}}`, CodeInvalidRequest},
		{"empty key field", `{"kind":"signal","op":"read","key":{"symbol":"","strategyName":"b","exchangeName":"c"}}`, CodeInvalidRequest},
		{"key field wrong type", `{"kind":"signal","op":"read","key":{"symbol":1,"strategyName":"b","exchangeName":"c"}}`, CodeInvalidRequest},
		{"bool field as string", `{"kind":"storage","op":"read","key":{"backtest":"true"}}`, CodeInvalidRequest},
		{"extra key field", `{"kind":"signal","op":"read","key":{"symbol":"a","strategyName":"b","exchangeName":"c","x":"y"}}`, CodeInvalidRequest},
		{"key not an object", `{"kind":"log","op":"read","key":"a"}`, CodeInvalidRequest},
		{"write without value", `{"kind":"log","op":"write","key":{}}`, CodeInvalidRequest},
		{"read with value", `{"kind":"log","op":"read","key":{},"value":[]}`, CodeInvalidRequest},
		{"missing item field", `{"kind":"measure","op":"read","key":{"bucket":"b"}}`, CodeInvalidRequest},
		{"item field on list", `{"kind":"measure","op":"list","key":{"bucket":"b","key":"k"}}`, CodeInvalidRequest},
		{"candle read without limit", `{"kind":"candle","op":"read","key":{"exchangeName":"e","symbol":"s","interval":"1m"},"since":0}`, CodeInvalidRequest},
		{"limit on a non-candle op", `{"kind":"log","op":"read","key":{},"limit":3}`, CodeInvalidRequest},
		{"when wrong type", `{"kind":"state","op":"write","key":{"signalId":"a","bucketName":"b"},"value":1,"when":"now"}`, CodeInvalidRequest},
		{"scan without limit", `{"kind":"signal","op":"scan"}`, CodeInvalidRequest},
		{"scan limit zero", `{"kind":"signal","op":"scan","limit":0}`, CodeInvalidRequest},
		{"scan limit negative", `{"kind":"signal","op":"scan","limit":-1}`, CodeInvalidRequest},
		{"scan page over the bound", `{"kind":"signal","op":"scan","limit":1001}`, CodeInvalidRequest},
		{"scan limit huge", `{"kind":"candle","op":"scan","limit":99999999999999999999}`, CodeInvalidRequest},
		{"scan with a key", `{"kind":"signal","op":"scan","limit":5,"key":{"symbol":"a","strategyName":"b","exchangeName":"c"}}`, CodeInvalidRequest},
		{"scan with an empty-named key field", `{"kind":"log","op":"scan","limit":5,"key":{"":"x"}}`, CodeInvalidRequest},
		{"scan with a value", `{"kind":"log","op":"scan","limit":5,"value":[]}`, CodeInvalidRequest},
		{"scan with since", `{"kind":"candle","op":"scan","limit":5,"since":1}`, CodeInvalidRequest},
		{"scan with when", `{"kind":"state","op":"scan","limit":5,"when":1}`, CodeInvalidRequest},
		{"scan cursor wrong type", `{"kind":"log","op":"scan","limit":5,"after":7}`, CodeInvalidRequest},
		{"after on a read", `{"kind":"log","op":"read","key":{},"after":"AQ"}`, CodeInvalidRequest},
		// encoding/json matches field names ignoring case: one field named twice
		{"field twice in two cases", `{"kind":"risk","Kind":"state","op":"read","key":{"signalId":"a","bucketName":"b"}}`, CodeInvalidRequest},
		{"key field twice under a capitalized key", `{"kind":"state","op":"read","Key":{"signalId":"a","signalId":"c","bucketName":"b"}}`, CodeInvalidRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeOp([]byte(c.body))
			e := classify(err)
			if e == nil || e.Code != c.code {
				t.Fatalf("DecodeOp(%s) = %v, want code %s", c.body, err, c.code)
			}
			if e.Message == "" {
				t.Fatal("empty message")
			}
		})
	}
}

func TestDecodeBatch(t *testing.T) {
	ok := `{"kind":"log","op":"read","key":{}}`
	if reqs, err := DecodeBatch([]byte(`{"ops":[`+ok+`,`+ok+`]}`), 10); err != nil || len(reqs) != 2 {
		t.Fatalf("good batch: %v %v", reqs, err)
	}
	if reqs, err := DecodeBatch([]byte(`{"ops":[]}`), 10); err != nil || len(reqs) != 0 {
		t.Fatalf("empty batch: %v %v", reqs, err)
	}
	for name, c := range map[string]struct {
		body string
		code Code
	}{
		"no ops":        {`{}`, CodeInvalidRequest},
		"ops not array": {`{"ops":{}}`, CodeInvalidRequest},
		"one bad op":    {`{"ops":[` + ok + `,{"kind":"x"}]}`, CodeInvalidRequest},
		"null op":       {`{"ops":[null]}`, CodeInvalidRequest},
		"too many":      {`{"ops":[` + strings.Repeat(ok+",", 10) + ok + `]}`, CodeTooLarge},
	} {
		_, err := DecodeBatch([]byte(c.body), 10)
		if e := classify(err); e == nil || e.Code != c.code {
			t.Errorf("%s: got %v, want %s", name, err, c.code)
		}
	}
}

// A batch with more operations than allowed is refused before its operations are
// decoded, which would hold about 20 times the body: an 8 MiB body of empty
// objects allocates a small multiple of the body at most, whatever the field
// name's case or the spacing. Batches within the bound decode as before.
func TestDecodeBatchCountsBeforeDecoding(t *testing.T) {
	ops := strings.Repeat(`{},`, 8<<20/3) + `{}`
	for _, body := range []string{`{"ops":[` + ops + `]}`, ` { "OPS" : [ ` + strings.ReplaceAll(ops[:3<<20], ",", " , ") + `{} ] }`, `{"\u006fps":[` + ops + `]}`} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := DecodeBatch([]byte(body), 500)
		runtime.ReadMemStats(&after)
		if e := classify(err); e == nil || e.Code != CodeTooLarge {
			t.Fatalf("batch of millions of operations: %v, want TooLarge", err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(2*len(body)) {
			t.Fatalf("refusing a %d-byte batch allocated %d bytes", len(body), alloc)
		}
	}
	ok := `{"kind":"log","op":"read","key":{}}`
	exactly := `{"ops":[` + strings.TrimSuffix(strings.Repeat(ok+",", 500), ",") + `]}`
	if reqs, err := DecodeBatch([]byte(exactly), 500); err != nil || len(reqs) != 500 {
		t.Fatalf("batch of exactly 500: %d %v", len(reqs), err)
	}
	for _, body := range []string{`{"ops":[` + ok + `,` + ok + `]}`, `{"ops":[[1,[2]],"x]"]}`, `{"ops":7}`, `{"x":[1,2,3]}`} {
		if _, err := DecodeBatch([]byte(body), 2); err != nil && classify(err).Code == CodeTooLarge {
			t.Fatalf("%s refused as too large: %v", body, err)
		}
	}
}
