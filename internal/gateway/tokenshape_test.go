package gateway

import (
	"encoding/base64"
	"strings"
	"testing"
)

// jwtShaped returns a token with the shape of a signed JWT whose payload names sub.
func jwtShaped(sub string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","kid":"k"}`)) + "." + enc([]byte(`{"sub":"`+sub+`"}`)) + "." + enc([]byte("signature-"+sub))
}

func TestWellFormedJWT(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	sig := enc([]byte("sig"))
	payload := enc([]byte(`{"sub":"x"}`))
	for tok, want := range map[string]bool{
		jwtShaped("a"): true,
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln": true,
		"":                    false,
		"random-opaque-token": false,
		"a.b":                 false,
		"a.b.c.d":             false,
		"..":                  false,
		enc([]byte(`{"alg":"RS256"}`)) + "." + payload + ".":                                            false, // unsigned
		enc([]byte(`{"alg":"none"}`)) + "." + payload + "." + sig:                                       false,
		enc([]byte(`{"typ":"JWT"}`)) + "." + payload + "." + sig:                                        false, // no alg
		enc([]byte(`{"alg":""}`)) + "." + payload + "." + sig:                                           false,
		enc([]byte(`{"alg":7}`)) + "." + payload + "." + sig:                                            false,
		enc([]byte(`not json`)) + "." + payload + "." + sig:                                             false,
		base64.URLEncoding.EncodeToString([]byte(`{"alg":"RS256","x":12}`)) + "." + payload + "." + sig: false, // padded
		enc([]byte(`{"alg":"RS256"}`)) + "." + payload + "." + sig + "+/":                               false, // standard alphabet
		enc([]byte(`{"alg":"RS256"}`)) + "." + strings.Repeat("A", maxTokenBytes) + "." + sig:           false,
	} {
		if got := wellFormedJWT(tok); got != want {
			t.Errorf("wellFormedJWT(%.60q) = %v, want %v", tok, got, want)
		}
	}
}
