package gateway

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// maxTokenBytes bounds the bearer tokens worth a TokenReview: service-account
// tokens are about 1 KiB, with many audiences and claims a few KiB.
const maxTokenBytes = 16 << 10

// wellFormedJWT reports whether token has the shape of a signed JWT: three
// non-empty base64url segments whose first decodes to a JSON object naming an
// "alg" other than "none". Service-account tokens always have it, so a bearer
// value without it is refused without asking the API server.
func wellFormedJWT(token string) bool {
	if len(token) > maxTokenBytes {
		return false
	}
	header, rest, ok := strings.Cut(token, ".")
	if !ok {
		return false
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || !base64URLSegment(header) || !base64URLSegment(payload) || !base64URLSegment(sig) {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		return false
	}
	var h struct {
		Alg *string `json:"alg"`
	}
	if json.Unmarshal(raw, &h) != nil || h.Alg == nil {
		return false
	}
	return *h.Alg != "" && !strings.EqualFold(*h.Alg, "none")
}

// base64URLSegment reports whether s is non-empty unpadded base64url.
func base64URLSegment(s string) bool {
	if len(s) == 0 || len(s)%4 == 1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
