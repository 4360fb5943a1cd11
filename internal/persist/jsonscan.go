package persist

import (
	"encoding/json"
)

// A small scanner over JSON that json.Valid has accepted: list writes split the
// array and pick each item's "id" without decoding the items (R10's unchanged path
// should cost little more than hashing the bytes).

// skipSpaceAt returns the index of the first non-space byte at or after i.
func skipSpaceAt(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string literal starting at i.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// SkipJSONValue returns the index after the JSON value starting at b[i] (i <
// len(b)), for callers that then check the value's text with json.Valid (the
// gateway's request decoder).
func SkipJSONValue(b []byte, i int) int { return skipValue(b, i) }

// skipValue returns the index after the JSON value starting at i.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default:
		for ; i < len(b); i++ {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
		}
		return i
	}
}

// splitArray returns the elements of a valid JSON array.
func splitArray(b []byte) [][]byte {
	i := skipSpaceAt(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil
	}
	out := [][]byte{}
	i = skipSpaceAt(b, i+1)
	if i < len(b) && b[i] == ']' {
		return out
	}
	for i < len(b) {
		i = skipSpaceAt(b, i)
		end := skipValue(b, i)
		out = append(out, b[i:end])
		i = skipSpaceAt(b, end)
		if i >= len(b) || b[i] == ']' {
			break
		}
		i++ // comma
	}
	return out
}

// stringLiteral decodes a JSON string literal.
func stringLiteral(lit []byte) (string, bool) {
	if len(lit) < 2 || lit[0] != '"' {
		return "", false
	}
	if !hasByte(lit, '\\') {
		return string(lit[1 : len(lit)-1]), true
	}
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return "", false
	}
	return s, true
}

// topLevelField returns the raw value of a top-level field of a valid JSON object
// (the last occurrence, as JSON.parse keeps it).
func topLevelField(obj []byte, name string) ([]byte, bool) {
	i := skipSpaceAt(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false
	}
	var found []byte
	ok := false
	i = skipSpaceAt(obj, i+1)
	for i < len(obj) && obj[i] == '"' {
		kend := skipString(obj, i)
		lit := obj[i:kend]
		var match bool
		if hasByte(lit, '\\') {
			key, _ := stringLiteral(lit)
			match = key == name
		} else {
			match = string(lit[1:len(lit)-1]) == name
		}
		i = skipSpaceAt(obj, kend)
		i = skipSpaceAt(obj, i+1) // colon
		vend := skipValue(obj, i)
		if match {
			found, ok = obj[i:vend], true
		}
		i = skipSpaceAt(obj, vend)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpaceAt(obj, i+1)
		}
	}
	return found, ok
}
