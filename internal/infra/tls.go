package infra

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"slices"
)

// TLSMaterial is a TLS setting from the spec with its CA bundle read from a Secret.
type TLSMaterial struct {
	CAPEM              []byte
	ServerName         string
	InsecureSkipVerify bool
}

// Config builds the tls.Config; a CA bundle without any certificate is an *InvalidURIError.
func (m *TLSMaterial) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: m.ServerName, InsecureSkipVerify: m.InsecureSkipVerify} //nolint:gosec // opt-in from the spec
	if len(m.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(m.CAPEM) {
			return nil, &InvalidURIError{What: "TLS CA bundle", Reason: "no PEM certificate found"}
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// fingerprint identifies the material in pool keys.
func (m *TLSMaterial) fingerprint() string {
	if m == nil {
		return ""
	}
	h := sha256.New()
	h.Write(m.CAPEM)
	h.Write([]byte{0})
	h.Write([]byte(m.ServerName))
	if m.InsecureSkipVerify {
		h.Write([]byte{1})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func uniqueSorted(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}
