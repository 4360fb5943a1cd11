package persist

import (
	"encoding/hex"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// appendJSON writes a stored BSON value as JSON, reversing the escaped encoding when
// escaped is set. Types JSON lacks are written as JavaScript would see them after
// @backtest-kit/mongo read them: dates as ISO-8601 strings, ObjectIds as hex strings,
// infinities and NaN as null (JSON.stringify's rule; contract section 1.6).
func appendJSON(dst []byte, v bsoncore.Value, escaped bool) []byte {
	switch v.Type {
	case bsoncore.TypeDouble:
		f, _ := v.DoubleOK()
		return appendJSNumber(dst, f)
	case bsoncore.TypeInt32:
		n, _ := v.Int32OK()
		return strconv.AppendInt(dst, int64(n), 10)
	case bsoncore.TypeInt64:
		n, _ := v.Int64OK()
		return strconv.AppendInt(dst, n, 10)
	case bsoncore.TypeString:
		s, _ := v.StringValueOK()
		return appendJSONString(dst, s)
	case bsoncore.TypeBoolean:
		if b, _ := v.BooleanOK(); b {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case bsoncore.TypeNull, bsoncore.TypeUndefined:
		return append(dst, "null"...)
	case bsoncore.TypeEmbeddedDocument:
		doc, _ := v.DocumentOK()
		return appendJSONDocument(dst, doc, escaped)
	case bsoncore.TypeArray:
		arr, _ := v.ArrayOK()
		return appendJSONArray(dst, bsoncore.Document(arr), escaped)
	case bsoncore.TypeDateTime:
		ms, _ := v.DateTimeOK()
		return appendJSONString(dst, time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z"))
	case bsoncore.TypeObjectID:
		id, _ := v.ObjectIDOK()
		return appendJSONString(dst, hex.EncodeToString(id[:]))
	case bsoncore.TypeDecimal128:
		h, l, _ := v.Decimal128OK()
		s := bson.NewDecimal128(h, l).String()
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return appendJSNumber(dst, f)
		}
		return append(dst, "null"...)
	default:
		return appendJSONString(dst, v.String())
	}
}

func appendJSONDocument(dst []byte, doc bsoncore.Document, escaped bool) []byte {
	if escaped {
		// A wrapped nested array: {"%arr": [...]} and nothing else.
		if el, rest, ok := bsoncore.ReadElement(doc[4:]); ok && len(rest) == 1 && el.Key() == wrappedArrayKey {
			if val := el.Value(); val.Type == bsoncore.TypeArray {
				return appendJSON(dst, val, escaped)
			}
		}
	}
	dst = append(dst, '{')
	rem := doc[4 : len(doc)-1]
	first := true
	for len(rem) > 0 {
		el, r, ok := bsoncore.ReadElement(rem)
		if !ok {
			break
		}
		rem = r
		if !first {
			dst = append(dst, ',')
		}
		first = false
		k := el.Key()
		if escaped {
			k = unescapeDocKey(k)
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		dst = appendJSON(dst, el.Value(), escaped)
	}
	return append(dst, '}')
}

func appendJSONArray(dst []byte, arr bsoncore.Document, escaped bool) []byte {
	dst = append(dst, '[')
	rem := arr[4 : len(arr)-1]
	first := true
	for len(rem) > 0 {
		el, r, ok := bsoncore.ReadElement(rem)
		if !ok {
			break
		}
		rem = r
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendJSON(dst, el.Value(), escaped)
	}
	return append(dst, ']')
}

// appendJSNumber formats a double as JavaScript's Number.prototype.toString does
// (the rule encoding/json follows too): plain digits between 1e-6 and 1e21, an
// exponent without leading zeros outside that range.
func appendJSNumber(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(dst) - start
		if n >= 4 && dst[len(dst)-4] == 'e' && dst[len(dst)-3] == '-' && dst[len(dst)-2] == '0' {
			dst[len(dst)-2] = dst[len(dst)-1]
			dst = dst[:len(dst)-1]
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string literal (invalid UTF-8 becomes U+FFFD).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
