package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/backtestpersistence/operator/internal/persist"
)

// Limits bound what one HTTP request may carry, and how many connections the
// server holds.
type Limits struct {
	// MaxBodyBytes caps the request body; a larger body is rejected with 413 before it is parsed.
	MaxBodyBytes int64
	// MaxBatchOps caps the operations of one batch call (413 beyond it).
	MaxBatchOps int
	// MaxConns caps the connections served at once, MaxConnsPerIP those of one
	// client address; a connection beyond either is answered 503 and closed.
	MaxConns, MaxConnsPerIP int
}

// DefaultLimits are the limits used when a field of Limits is zero.
var DefaultLimits = Limits{MaxBodyBytes: 8 << 20, MaxBatchOps: 500, MaxConns: 4096, MaxConnsPerIP: 512}

func (l Limits) withDefaults() Limits {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultLimits.MaxBodyBytes
	}
	if l.MaxBatchOps <= 0 {
		l.MaxBatchOps = DefaultLimits.MaxBatchOps
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultLimits.MaxConns
	}
	if l.MaxConnsPerIP <= 0 {
		l.MaxConnsPerIP = DefaultLimits.MaxConnsPerIP
	}
	return l
}

// errNotUTF8: encoding/json would replace the invalid bytes with U+FFFD and the
// store would keep something other than what the client sent.
var errNotUTF8 = apiErrorf(CodeInvalidRequest, "body is not valid UTF-8")

// batchBody is the JSON body of the batch call.
type batchBody struct {
	Ops []json.RawMessage `json:"ops"`
}

// DecodeOp parses and validates the body of the ops call: one persist.Request.
// It never returns a request the store would have to reject for its shape
// (unknown kind or op, missing, unknown or mistyped key fields, a missing or
// unexpected value); limits on lengths and payloads are the store's.
func DecodeOp(body []byte) (persist.Request, error) {
	if !utf8.Valid(body) {
		return persist.Request{}, errNotUTF8
	}
	req, ok := fastDecodeOp(body)
	if !ok {
		req = persist.Request{}
		if err := strictUnmarshal(body, &req); err != nil {
			return persist.Request{}, err
		}
	}
	if err := validateRequest(&req); err != nil {
		return persist.Request{}, err
	}
	return req, nil
}

// DecodeBatch parses and validates the body of the batch call. Every operation is
// validated before any is executed, so one bad operation rejects the whole batch
// and nothing is written.
func DecodeBatch(body []byte, maxOps int) ([]persist.Request, error) {
	if !utf8.Valid(body) {
		return nil, errNotUTF8
	}
	// Decoding holds every operation at once (about 20 times the body for tiny
	// ones), so an array with more than maxOps elements is refused before that.
	if n := leadingArrayLen(body, maxOps+1); n > maxOps {
		return nil, apiErrorf(CodeTooLarge, "batch has more than %d operations", maxOps)
	}
	var b batchBody
	if err := strictUnmarshal(body, &b); err != nil {
		return nil, err
	}
	if b.Ops == nil {
		return nil, apiErrorf(CodeInvalidRequest, `body must be {"ops":[...]}`)
	}
	if len(b.Ops) > maxOps {
		return nil, apiErrorf(CodeTooLarge, "batch has %d operations, at most %d are allowed", len(b.Ops), maxOps)
	}
	reqs := make([]persist.Request, len(b.Ops))
	for i, raw := range b.Ops {
		req, err := DecodeOp(raw)
		if err != nil {
			e := classify(err)
			return nil, &Error{Code: e.Code, Message: fmt.Sprintf("ops[%d]: %s", i, e.Message)}
		}
		reqs[i] = req
	}
	return reqs, nil
}

// leadingArrayLen counts, up to max, the elements of the array that is the value
// of the first member of the JSON object body when that member is "ops"
// ({"ops":[...]}, the name in any case or escaped); 0 when body does not start
// that way (the strict decoder then answers).
func leadingArrayLen(body []byte, max int) int {
	i := persist.SkipJSONSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return 0
	}
	if i = persist.SkipJSONSpace(body, i+1); i >= len(body) || body[i] != '"' {
		return 0
	}
	end, ok := persist.SkipJSONValue(body, i)
	var name string
	if !ok || json.Unmarshal(body[i:end], &name) != nil || !strings.EqualFold(name, "ops") {
		return 0 // names as encoding/json matches them to the field ("OPS", "\u006fps")
	}
	if i = persist.SkipJSONSpace(body, end); i >= len(body) || body[i] != ':' {
		return 0
	}
	if i = persist.SkipJSONSpace(body, i+1); i >= len(body) || body[i] != '[' {
		return 0
	}
	n := 0
	for i = persist.SkipJSONSpace(body, i+1); i < len(body) && body[i] != ']' && n < max; n++ {
		if i, ok = persist.SkipJSONValue(body, i); !ok {
			return n
		}
		if i = persist.SkipJSONSpace(body, i); i < len(body) && body[i] == ',' {
			i = persist.SkipJSONSpace(body, i+1)
		}
	}
	return n
}

// strictUnmarshal decodes exactly one JSON object, rejecting unknown fields and trailing data.
func strictUnmarshal(body []byte, v any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return apiErrorf(CodeInvalidRequest, "body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiErrorf(CodeInvalidRequest, "malformed JSON: %s", jsonErrorMessage(err))
	}
	if dec.More() {
		return apiErrorf(CodeInvalidRequest, "malformed JSON: data after the object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return apiErrorf(CodeInvalidRequest, "malformed JSON: data after the object")
	}
	// encoding/json keeps the last of repeated names; a request that names a field
	// twice is ambiguous (other parsers keep the first), so it is refused.
	if name, dup := duplicateName(trimmed, "key"); dup {
		return apiErrorf(CodeInvalidRequest, "field %q appears more than once", name)
	}
	return nil
}

// duplicateName reports a name that appears twice in the JSON object obj (valid
// JSON), or in its member named nested when that is an object. At the top level
// (nested set) names are compared as encoding/json matches them to the request's
// fields, ignoring case ("kind" and "Kind" are one field); inside nested (a key's
// fields, decoded into a map) exactly.
func duplicateName(obj []byte, nested string) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", false
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", false
		}
		name, _ := t.(string)
		folded := name
		if nested != "" {
			folded = strings.ToLower(name)
		}
		if seen[folded] {
			return name, true
		}
		seen[folded] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", false
		}
		if nested != "" && folded == nested && len(raw) > 0 && raw[0] == '{' {
			if inner, dup := duplicateName(raw, ""); dup {
				return name + "." + inner, true
			}
		}
	}
	return "", false
}

// jsonErrorMessage shortens decoder errors to what a client needs.
func jsonErrorMessage(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Sprintf("field %q must be %s, not %s", typeErr.Field, typeErr.Type, typeErr.Value)
	}
	return err.Error()
}

// validateRequest checks a decoded request against the table of kinds.
func validateRequest(req *persist.Request) error {
	spec, ok := persist.Lookup(req.Kind)
	if !ok {
		return apiErrorf(CodeInvalidRequest, "unknown kind %q", req.Kind)
	}
	if !spec.Supports(req.Op) {
		return apiErrorf(CodeInvalidRequest, "kind %q has no operation %q (it has %v)", req.Kind, req.Op, spec.Ops)
	}
	if err := validateKey(spec, req); err != nil {
		return err
	}
	switch {
	case req.Op == persist.OpWrite && len(req.Value) == 0:
		return apiErrorf(CodeInvalidRequest, "%s write needs a value", req.Kind)
	case req.Op != persist.OpWrite && len(req.Value) != 0:
		return apiErrorf(CodeInvalidRequest, "%s %s takes no value", req.Kind, req.Op)
	}
	if req.Op == persist.OpScan {
		switch {
		case req.Limit < 1 || req.Limit > persist.MaxScanPage:
			return apiErrorf(CodeInvalidRequest, "scan needs 1 <= limit <= %d", persist.MaxScanPage)
		case req.Since != 0 || req.Until != 0:
			return apiErrorf(CodeInvalidRequest, "since and until belong to candle reads only")
		case req.When != nil:
			return apiErrorf(CodeInvalidRequest, "scan takes no when")
		}
		return nil
	}
	if req.After != "" {
		return apiErrorf(CodeInvalidRequest, "after belongs to scans only")
	}
	candleRead := spec.Shape == persist.ShapeCandles && req.Op == persist.OpRead
	switch {
	case candleRead && req.Limit <= 0:
		return apiErrorf(CodeInvalidRequest, "candle read needs a positive limit")
	case candleRead && req.Since < 0:
		return apiErrorf(CodeInvalidRequest, "candle read needs a non-negative since")
	case !candleRead && (req.Limit != 0 || req.Since != 0 || req.Until != 0):
		return apiErrorf(CodeInvalidRequest, "limit, since and until belong to candle reads only")
	}
	return nil
}

// validateKey checks that the key holds exactly the kind's fields with their JSON types.
// The item field of keyed kinds (Measure/Interval "key", Memory "memoryId") is part
// of the key for single-record operations and absent for list; list kinds carry
// their item ids inside the value.
func validateKey(spec *persist.KindSpec, req *persist.Request) error {
	fields := spec.Key
	if req.Op == persist.OpScan {
		fields = nil // a scan covers the whole kind: no key
	}
	wantItem := spec.ItemField != nil && spec.Shape != persist.ShapeList && req.Op != persist.OpList && req.Op != persist.OpScan
	expected := len(fields)
	if wantItem {
		expected++
	}
	check := func(f persist.KeyField) error {
		v, present := req.Key[f.Name]
		if !present {
			return apiErrorf(CodeInvalidRequest, "key field %q is missing", f.Name)
		}
		switch f.Type {
		case persist.FieldBool:
			if _, ok := v.(bool); !ok {
				return apiErrorf(CodeInvalidRequest, "key field %q must be a boolean", f.Name)
			}
		default:
			s, ok := v.(string)
			if !ok {
				return apiErrorf(CodeInvalidRequest, "key field %q must be a string", f.Name)
			}
			if s == "" && !f.AllowEmpty {
				return apiErrorf(CodeInvalidRequest, "key field %q must not be empty", f.Name)
			}
		}
		return nil
	}
	for _, f := range fields {
		if err := check(f); err != nil {
			return err
		}
	}
	if wantItem {
		if err := check(*spec.ItemField); err != nil {
			return err
		}
	}
	if len(req.Key) != expected {
		for name := range req.Key {
			if req.Op == persist.OpScan {
				return apiErrorf(CodeInvalidRequest, "scan takes no key (key field %q)", name)
			}
			if !keyFieldKnown(spec, name, wantItem) {
				return apiErrorf(CodeInvalidRequest, "key field %q is not part of a %s key", name, spec.Kind)
			}
		}
	}
	return nil
}

func keyFieldKnown(spec *persist.KindSpec, name string, withItem bool) bool {
	for _, f := range spec.Key {
		if f.Name == name {
			return true
		}
	}
	return withItem && spec.ItemField.Name == name
}
