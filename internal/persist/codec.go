package persist

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// The payload codec turns request JSON into BSON and stored BSON back into JSON.
//
// Numbers: a JSON integer literal that fits int32 is stored as int32, one that fits
// int64 as int64 (so ids and epoch ms keep every digit); any other number is a double.
// Doubles are written back the way JavaScript's JSON.stringify writes them, so what a
// backtest-kit process reads equals what it wrote. Object key order is preserved.
//
// Some JSON cannot be stored verbatim: keys that are empty, contain "." or NUL, or
// start with "$" (FerretDB and older MongoDB refuse them; BSON cannot hold NUL in a
// key at all), and arrays directly inside arrays (FerretDB refuses them, and
// backtest-kit's RiskData is exactly that). Such a payload is stored in the escaped
// form and its document carries payloadEncoding: 1. In the escaped form every key is
// percent-escaped ("%" → "%25", "." → "%2E", NUL → "%00", a leading "$" → "%24", the
// empty key → "%") and an array inside an array is wrapped as {"%arr": [...]}; no
// escaped key can be "%arr", so decoding is unambiguous. Payloads that need no
// escaping (nearly all) are stored verbatim, exactly as @backtest-kit/mongo stores
// them, and documents without the flag (adopted ones) are read verbatim.

const (
	// encodingVerbatim: the payload is stored as the JSON says.
	encodingVerbatim = 0
	// encodingEscaped: keys are percent-escaped and nested arrays wrapped.
	encodingEscaped = 1
	// wrappedArrayKey marks an array that sat directly inside an array.
	wrappedArrayKey = "%arr"
)

// errNeedsEscape stops a verbatim encoding pass that met something only the escaped form can hold.
var errNeedsEscape = errors.New("payload needs the escaped encoding")

// encodedPayload is one JSON value converted to BSON.
type encodedPayload struct {
	Value    bsoncore.Value
	Encoding int
}

// encodePayload converts one JSON value (already checked with json.Valid) to BSON.
func encodePayload(src []byte) (encodedPayload, error) {
	for _, escape := range []bool{false, true} {
		p := jsonParser{src: src, escape: escape}
		idx, doc := bsoncore.AppendDocumentStart(nil)
		doc, err := p.element(doc, "v", false)
		if errors.Is(err, errNeedsEscape) {
			continue
		}
		if err != nil {
			return encodedPayload{}, err
		}
		p.skipSpace()
		if p.pos != len(p.src) {
			return encodedPayload{}, invalidf("trailing data after JSON value")
		}
		doc, _ = bsoncore.AppendDocumentEnd(doc, idx)
		el, _, ok := bsoncore.ReadElement(doc[4:])
		if !ok {
			return encodedPayload{}, errors.New("encode payload: malformed BSON")
		}
		enc := encodingVerbatim
		if escape {
			enc = encodingEscaped
		}
		return encodedPayload{Value: el.Value(), Encoding: enc}, nil
	}
	return encodedPayload{}, errors.New("encode payload: unreachable")
}

// jsonParser is a recursive-descent JSON reader that appends BSON as it goes.
// Its input has passed json.Valid, so it only has to be right, not forgiving.
type jsonParser struct {
	src    []byte
	pos    int
	escape bool
	depth  int
}

// maxDepth bounds nesting so a hostile payload cannot exhaust the stack.
const maxDepth = 200

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// element appends the next JSON value as a BSON element named key.
// inArray says the value is an element of an array (for the nested-array rule).
func (p *jsonParser) element(dst []byte, key string, inArray bool) ([]byte, error) {
	p.skipSpace()
	if p.pos >= len(p.src) {
		return dst, invalidf("unexpected end of JSON")
	}
	switch c := p.src[p.pos]; {
	case c == '{':
		return p.object(dst, key)
	case c == '[':
		if inArray {
			if !p.escape {
				return dst, errNeedsEscape
			}
			idx, out := bsoncore.AppendDocumentElementStart(dst, key)
			out, err := p.array(out, wrappedArrayKey)
			if err != nil {
				return out, err
			}
			return bsoncore.AppendDocumentEnd(out, idx)
		}
		return p.array(dst, key)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return dst, err
		}
		return bsoncore.AppendStringElement(dst, key, s), nil
	case c == 't':
		p.pos += 4
		return bsoncore.AppendBooleanElement(dst, key, true), nil
	case c == 'f':
		p.pos += 5
		return bsoncore.AppendBooleanElement(dst, key, false), nil
	case c == 'n':
		p.pos += 4
		return bsoncore.AppendNullElement(dst, key), nil
	default:
		return p.number(dst, key)
	}
}

func (p *jsonParser) object(dst []byte, key string) ([]byte, error) {
	if p.depth++; p.depth > maxDepth {
		return dst, invalidf("JSON nested deeper than %d levels", maxDepth)
	}
	defer func() { p.depth-- }()
	idx, dst := bsoncore.AppendDocumentElementStart(dst, key)
	p.pos++ // {
	p.skipSpace()
	if p.src[p.pos] == '}' {
		p.pos++
		return bsoncore.AppendDocumentEnd(dst, idx)
	}
	for {
		p.skipSpace()
		k, err := p.str()
		if err != nil {
			return dst, err
		}
		if p.escape {
			k = escapeDocKey(k)
		} else if keyNeedsEscape(k) {
			return dst, errNeedsEscape
		}
		p.skipSpace()
		p.pos++ // :
		if dst, err = p.element(dst, k, false); err != nil {
			return dst, err
		}
		p.skipSpace()
		c := p.src[p.pos]
		p.pos++
		if c == '}' {
			return bsoncore.AppendDocumentEnd(dst, idx)
		}
	}
}

func (p *jsonParser) array(dst []byte, key string) ([]byte, error) {
	if p.depth++; p.depth > maxDepth {
		return dst, invalidf("JSON nested deeper than %d levels", maxDepth)
	}
	defer func() { p.depth-- }()
	idx, dst := bsoncore.AppendArrayElementStart(dst, key)
	p.pos++ // [
	p.skipSpace()
	if p.src[p.pos] == ']' {
		p.pos++
		return bsoncore.AppendArrayEnd(dst, idx)
	}
	var num [20]byte
	for i := 0; ; i++ {
		var err error
		if dst, err = p.element(dst, string(strconv.AppendInt(num[:0], int64(i), 10)), true); err != nil {
			return dst, err
		}
		p.skipSpace()
		c := p.src[p.pos]
		p.pos++
		if c == ']' {
			return bsoncore.AppendArrayEnd(dst, idx)
		}
	}
}

// str reads a JSON string literal at p.pos.
func (p *jsonParser) str() (string, error) {
	start := p.pos
	p.pos++ // opening quote
	simple := true
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if c == '\\' {
			simple = false
			p.pos += 2
			continue
		}
		if c == '"' {
			break
		}
		if c >= utf8.RuneSelf {
			simple = false
		}
		p.pos++
	}
	if p.pos >= len(p.src) {
		return "", invalidf("unterminated JSON string")
	}
	p.pos++ // closing quote
	lit := p.src[start:p.pos]
	if simple || (!hasByte(lit, '\\') && utf8.Valid(lit)) {
		return string(lit[1 : len(lit)-1]), nil
	}
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return "", invalidf("bad JSON string: %v", err)
	}
	return s, nil
}

func hasByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

func (p *jsonParser) number(dst []byte, key string) ([]byte, error) {
	start := p.pos
	isInt := true
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if c >= '0' && c <= '9' || c == '-' || c == '+' {
			p.pos++
			continue
		}
		if c == '.' || c == 'e' || c == 'E' {
			isInt = false
			p.pos++
			continue
		}
		break
	}
	lit := string(p.src[start:p.pos])
	if lit == "" {
		return dst, invalidf("malformed JSON at offset %d", start)
	}
	if isInt {
		if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
			if n >= -1<<31 && n < 1<<31 {
				return bsoncore.AppendInt32Element(dst, key, int32(n)), nil
			}
			return bsoncore.AppendInt64Element(dst, key, n), nil
		}
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return dst, invalidf("number %s is out of range", lit)
		}
		return dst, invalidf("bad number %q", lit)
	}
	return bsoncore.AppendDoubleElement(dst, key, f), nil
}

// keyNeedsEscape reports whether a JSON object key cannot be stored verbatim.
func keyNeedsEscape(k string) bool {
	return k == "" || k[0] == '$' || strings.IndexByte(k, '.') >= 0 || strings.IndexByte(k, 0) >= 0
}

// escapeDocKey is the percent-escaping of keys in the escaped encoding.
func escapeDocKey(k string) string {
	if k == "" {
		return "%"
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c == '%':
			b.WriteString("%25")
		case c == '.':
			b.WriteString("%2E")
		case c == 0:
			b.WriteString("%00")
		case c == '$' && i == 0:
			b.WriteString("%24")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unescapeDocKey reverses escapeDocKey.
func unescapeDocKey(k string) string {
	if k == "%" {
		return ""
	}
	if strings.IndexByte(k, '%') < 0 {
		return k
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		if k[i] == '%' && i+2 < len(k) {
			if v, err := strconv.ParseUint(k[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(k[i])
	}
	return b.String()
}
