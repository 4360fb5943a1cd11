package infra

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

func TestTLSMaterialConfig(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})

	cfg, err := (&TLSMaterial{CAPEM: caPEM, ServerName: "db.internal"}).Config()
	if err != nil || cfg.RootCAs == nil || cfg.ServerName != "db.internal" || cfg.InsecureSkipVerify {
		t.Fatalf("config %+v, %v", cfg, err)
	}
	if _, err := (&TLSMaterial{CAPEM: []byte("not pem")}).Config(); !IsInvalidURI(err) {
		t.Fatalf("bad CA bundle: %v", err)
	}
	a := (&TLSMaterial{CAPEM: caPEM}).fingerprint()
	if a == (&TLSMaterial{CAPEM: caPEM, InsecureSkipVerify: true}).fingerprint() || a == (*TLSMaterial)(nil).fingerprint() {
		t.Fatal("distinct TLS settings share a pool key")
	}
}
