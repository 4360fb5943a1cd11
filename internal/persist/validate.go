package persist

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// call is a validated Request: everything the store needs, checked before any I/O.
type call struct {
	spec *KindSpec
	req  *Request
	// parts are the key values (string or bool) in KindSpec.Key order, followed by the
	// item key for record kinds that have one (Measure/Interval/Memory) unless the op is list.
	parts []any
	// fields are the key fields parts belong to.
	fields []KeyField
	// write payloads (one of them is set, by shape)
	payload *encodedPayload
	items   []listItem
	candles []candle
}

// maxCandleWindow bounds one window read (backtest-kit asks for at most 1000).
const maxCandleWindow = 50_000

// maxCandleTime bounds candle timestamps and window starts: 2^53 ms, the largest
// integer a JavaScript number (backtest-kit's timestamps) and a Redis score (a double)
// hold exactly. It keeps since+limit*step far from int64 overflow.
const maxCandleTime = 1 << 53

// validate checks a request against the table of kinds and the limits.
// It does no I/O, and an error from it wraps ErrInvalid or ErrTooLarge.
func (s *Store) validate(req *Request) (*call, error) {
	spec, ok := Lookup(req.Kind)
	if !ok {
		return nil, invalidf("unknown kind %q", req.Kind)
	}
	if !s.served[req.Kind] {
		return nil, invalidf("kind %q is not served by this store", req.Kind)
	}
	if !spec.Supports(req.Op) {
		return nil, invalidf("kind %q has no operation %q", req.Kind, req.Op)
	}
	c := &call{spec: spec, req: req}
	if err := s.validateKey(c); err != nil {
		return nil, err
	}
	if req.When != nil && !spec.HasWhen {
		return nil, invalidf("kind %q takes no \"when\"", req.Kind)
	}
	if req.When != nil && *req.When < 0 {
		return nil, invalidf("\"when\" must be epoch milliseconds, got %d", *req.When)
	}
	if req.Op == OpScan {
		if req.Limit < 1 || req.Limit > MaxScanPage {
			return nil, invalidf("scan needs 1 <= limit <= %d, got %d", MaxScanPage, req.Limit)
		}
		if req.Since != 0 || req.Until != 0 || req.When != nil || len(bytes.TrimSpace(req.Value)) != 0 {
			return nil, invalidf("scan takes only a limit and an after cursor")
		}
		if _, err := decodeScanCursor(req.After); err != nil {
			return nil, err
		}
		return c, nil
	}
	if req.After != "" {
		return nil, invalidf("after belongs to scans only")
	}
	candleRead := spec.Shape == ShapeCandles && req.Op == OpRead
	if !candleRead && (req.Limit != 0 || req.Since != 0 || req.Until != 0) {
		return nil, invalidf("limit, since and until belong to candle reads only")
	}
	if candleRead {
		if req.Limit < 1 || req.Limit > maxCandleWindow {
			return nil, invalidf("candle read needs 1 <= limit <= %d, got %d", maxCandleWindow, req.Limit)
		}
		if req.Since < 0 || req.Since > maxCandleTime {
			return nil, invalidf("candle read needs 0 <= since <= %d, got %d", int64(maxCandleTime), req.Since)
		}
		if req.Until < 0 || req.Until > maxCandleTime {
			return nil, invalidf("candle read needs 0 <= until <= %d, got %d", int64(maxCandleTime), req.Until)
		}
	}
	if req.Op != OpWrite {
		if v := bytes.TrimSpace(req.Value); len(v) != 0 && !bytes.Equal(v, []byte("null")) {
			return nil, invalidf("operation %q takes no value", req.Op)
		}
		return c, nil
	}
	if len(req.Value) > s.opts.MaxPayloadBytes {
		return nil, tooLargef("value is %d bytes, the limit is %d", len(req.Value), s.opts.MaxPayloadBytes)
	}
	value := bytes.TrimSpace(req.Value)
	if len(value) == 0 {
		return nil, invalidf("write of kind %q needs a value", req.Kind)
	}
	switch spec.Shape {
	case ShapeRecord:
		return c, s.validateRecordValue(c, value)
	case ShapeList:
		items, err := s.parseListItems(value, max(s.opts.MaxListWriteItems, 2*s.Window(spec.Kind)))
		if err != nil {
			return nil, err
		}
		c.items = items
	case ShapeCandles:
		candles, err := parseCandles(value)
		if err != nil {
			return nil, err
		}
		c.candles = candles
	}
	return c, nil
}

// mongoFilter is the MongoDB filter on the key: the unique index for a record, the
// context for lists and candles. Built on demand: a cache hit never needs it.
func (c *call) mongoFilter() bson.D {
	f := make(bson.D, len(c.parts), len(c.parts)+1)
	for i, p := range c.parts {
		f[i] = bson.E{Key: c.fields[i].Doc, Value: p}
	}
	return f
}

// validateKey checks the key fields and fills c.parts and c.fields.
func (s *Store) validateKey(c *call) error {
	fields := keyFieldsOf(c.spec, c.req.Op)
	for name := range c.req.Key {
		if !hasField(fields, name) {
			return invalidf("kind %q has no key field %q (want %s)", c.spec.Kind, name, fieldNames(fields))
		}
	}
	c.parts = make([]any, 0, len(fields))
	c.fields = fields
	for _, f := range fields {
		raw, ok := c.req.Key[f.Name]
		if !ok {
			return invalidf("kind %q needs key field %q (want %s)", c.spec.Kind, f.Name, fieldNames(fields))
		}
		switch f.Type {
		case FieldBool:
			if _, ok := raw.(bool); !ok {
				return invalidf("key field %q must be a boolean", f.Name)
			}
			c.parts = append(c.parts, raw)
		default:
			str, ok := raw.(string)
			if !ok {
				return invalidf("key field %q must be a string", f.Name)
			}
			if err := s.checkKeyString(f.Name, str, f.AllowEmpty); err != nil {
				return err
			}
			if f.Name == fInterval.Name && c.spec.Shape == ShapeCandles {
				if _, ok := candleIntervals[str]; !ok {
					return invalidf("unknown candle interval %q", str)
				}
			}
			c.parts = append(c.parts, raw) // raw holds str: reusing it saves an allocation
		}
	}
	return nil
}

// checkKeyString applies the rules every key string obeys.
func (s *Store) checkKeyString(name, v string, allowEmpty bool) error {
	if v == "" && !allowEmpty {
		return invalidf("key field %q must not be empty", name)
	}
	if len(v) > s.opts.MaxKeyBytes {
		return tooLargef("key field %q is %d bytes, the limit is %d", name, len(v), s.opts.MaxKeyBytes)
	}
	if !utf8.ValidString(v) {
		return invalidf("key field %q is not valid UTF-8", name)
	}
	return nil
}

// keyFields holds, per kind, the key fields of record operations (with the item
// field) and of the others, computed once from the table.
var keyFields = func() map[Kind][2][]KeyField {
	m := make(map[Kind][2][]KeyField, len(Kinds))
	for i := range Kinds {
		spec := &Kinds[i]
		withItem := spec.Key
		if spec.Shape == ShapeRecord && spec.ItemField != nil {
			withItem = append(append([]KeyField{}, spec.Key...), *spec.ItemField)
		}
		m[spec.Kind] = [2][]KeyField{spec.Key, withItem}
	}
	return m
}()

// keyFieldsOf returns the key fields a request of op on spec carries.
func keyFieldsOf(spec *KindSpec, op Op) []KeyField {
	if op == OpScan {
		return nil // a scan covers the whole kind
	}
	if op == OpList {
		return keyFields[spec.Kind][0]
	}
	return keyFields[spec.Kind][1]
}

func hasField(fields []KeyField, name string) bool {
	for _, f := range fields {
		if f.Name == name {
			return true
		}
	}
	return false
}

func fieldNames(fields []KeyField) string {
	if len(fields) == 0 {
		return "no key fields"
	}
	var b bytes.Buffer
	for i, f := range fields {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(f.Name)
	}
	return b.String()
}

// valueKind names the JSON type a kind's record value must have.
func (s *KindSpec) valueKind() string {
	switch s.Empty {
	case "[]":
		return "array"
	default:
		if s.NullWritable {
			return "object or null"
		}
		return "object"
	}
}

func (s *Store) validateRecordValue(c *call, value []byte) error {
	if !json.Valid(value) {
		return invalidf("value is not valid JSON")
	}
	ok := false
	switch c.spec.valueKind() {
	case "array":
		ok = value[0] == '['
	case "object or null":
		ok = value[0] == '{' || value[0] == 'n'
	default:
		ok = value[0] == '{'
	}
	if !ok {
		return invalidf("value of kind %q must be a JSON %s", c.spec.Kind, c.spec.valueKind())
	}
	p, err := encodePayload(value)
	if err != nil {
		return err
	}
	c.payload = &p
	return nil
}
