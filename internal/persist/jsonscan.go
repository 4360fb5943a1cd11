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

// skipString returns the index after the string literal starting at i, and
// whether the literal is closed. An unclosed literal (the input ends inside the
// string or inside an escape) ends at len(b): the result never points past the end.
func skipString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return len(b), false
}

// SkipJSONSpace returns the index of the first byte at or after i that is not JSON space.
func SkipJSONSpace(b []byte, i int) int { return skipSpaceAt(b, i) }

// SkipJSONValue returns the index after the JSON value starting at b[i] and
// whether the value is complete (every string and container it opens is closed
// within b). It never returns an index past len(b), whatever b holds. Callers
// check the value's text with json.Valid (the gateway's request decoder).
func SkipJSONValue(b []byte, i int) (int, bool) { return skipValue(b, i) }

// skipValue returns the index after the JSON value starting at i, and whether it
// is complete; see SkipJSONValue.
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return len(b), false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, ok := skipString(b, i)
				if !ok {
					return end, false
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
		}
		return len(b), false
	default:
		for ; i < len(b); i++ {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i, true
			}
		}
		return i, true
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
		end, _ := skipValue(b, i)
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
		kend, closed := skipString(obj, i)
		if !closed {
			break
		}
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
		if i >= len(obj) {
			break
		}
		vend, _ := skipValue(obj, i)
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
