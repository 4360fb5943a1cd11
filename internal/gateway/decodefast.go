package gateway

import (
	"encoding/json"
	"strconv"

	"github.com/backtestpersistence/operator/internal/persist"
)

// fastDecodeOp decodes the common form of an ops body without reflection: one
// object of the fields "kind", "op" (plain strings), "key" (an object of plain
// strings and booleans), "value" (any JSON) and "when", "limit", "since", "until"
// (integers), each at most once and spelled exactly so. It reports ok=false for
// anything else (escapes, non-ASCII text, null, floats, duplicates, unknown fields,
// malformed JSON) and DecodeOp then takes the strict general path, which accepts the
// same documents with the same result and explains any error. The result never
// aliases body.
func fastDecodeOp(body []byte) (req persist.Request, ok bool) {
	d := fastDecoder{b: body}
	d.space()
	if !d.byte('{') {
		return req, false
	}
	var seen uint8
	d.space()
	if d.peek() == '}' {
		d.i++
	} else {
		for {
			name, ok := d.plainString()
			if !ok {
				return req, false
			}
			d.space()
			if !d.byte(':') {
				return req, false
			}
			d.space()
			var bit uint8
			var str string
			var n int64
			switch name {
			case "kind":
				bit = 1
				str, ok = d.plainString()
				req.Kind = persist.Kind(str)
			case "op":
				bit = 2
				str, ok = d.plainString()
				req.Op = persist.Op(str)
			case "key":
				bit = 4
				req.Key, ok = d.keyObject()
			case "value":
				bit = 8
				req.Value, ok = d.rawValue()
			case "when":
				bit = 16
				n, ok = d.integer()
				req.When = &n
			case "limit":
				bit = 32
				req.Limit, ok = d.integer()
			case "since":
				bit = 64
				req.Since, ok = d.integer()
			case "until":
				bit = 128
				req.Until, ok = d.integer()
			default:
				ok = false
			}
			if !ok {
				return req, false
			}
			if seen&bit != 0 {
				return req, false
			}
			seen |= bit
			d.space()
			if d.byte('}') {
				break
			}
			if !d.byte(',') {
				return req, false
			}
			d.space()
		}
	}
	d.space()
	return req, d.i == len(d.b)
}

// fastDecoder walks a JSON document; every method reports false rather than guess.
type fastDecoder struct {
	b []byte
	i int
}

func (d *fastDecoder) peek() byte {
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *fastDecoder) byte(c byte) bool {
	if d.peek() == c {
		d.i++
		return true
	}
	return false
}

func (d *fastDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// plainString reads a string of printable ASCII without escapes.
func (d *fastDecoder) plainString() (string, bool) {
	if !d.byte('"') {
		return "", false
	}
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := string(d.b[start:d.i])
			d.i++
			return s, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return "", false
		}
		d.i++
	}
	return "", false
}

// keyObject reads an object of plain strings and booleans with distinct names.
func (d *fastDecoder) keyObject() (map[string]any, bool) {
	if !d.byte('{') {
		return nil, false
	}
	key := make(map[string]any, 4)
	d.space()
	if d.byte('}') {
		return key, true
	}
	for {
		name, ok := d.plainString()
		if !ok {
			return nil, false
		}
		if _, dup := key[name]; dup {
			return nil, false
		}
		d.space()
		if !d.byte(':') {
			return nil, false
		}
		d.space()
		switch d.peek() {
		case '"':
			s, ok := d.plainString()
			if !ok {
				return nil, false
			}
			key[name] = s
		case 't', 'f':
			v, ok := d.boolean()
			if !ok {
				return nil, false
			}
			key[name] = v
		default:
			return nil, false
		}
		d.space()
		if d.byte('}') {
			return key, true
		}
		if !d.byte(',') {
			return nil, false
		}
		d.space()
	}
}

func (d *fastDecoder) literal(lit string) bool {
	if len(d.b)-d.i >= len(lit) && string(d.b[d.i:d.i+len(lit)]) == lit {
		d.i += len(lit)
		return true
	}
	return false
}

func (d *fastDecoder) boolean() (bool, bool) {
	switch {
	case d.literal("true"):
		return true, true
	case d.literal("false"):
		return false, true
	}
	return false, false
}

// rawValue returns a copy of the next value, which must not be null (null takes
// the general path) and must be valid JSON. The store's scanner finds its end (a
// value cut off inside a string, an escape or a container is declined), and
// json.Valid then checks exactly that text.
func (d *fastDecoder) rawValue() (json.RawMessage, bool) {
	start := d.i
	if start >= len(d.b) || d.b[start] == 'n' {
		return nil, false
	}
	end, complete := persist.SkipJSONValue(d.b, start)
	if !complete {
		return nil, false
	}
	d.i = end
	raw := d.b[start:end]
	if !json.Valid(raw) {
		return nil, false
	}
	return append(json.RawMessage(nil), raw...), true
}

// integer reads -?(0|[1-9][0-9]*) that fits an int64 and is not followed by a
// fraction or exponent.
func (d *fastDecoder) integer() (int64, bool) {
	start := d.i
	d.byte('-')
	digits := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	if d.i == digits || (d.b[digits] == '0' && d.i > digits+1) {
		return 0, false
	}
	if c := d.peek(); c == '.' || c == 'e' || c == 'E' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
	return n, err == nil
}
