package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

func TestGatewayFlags(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	o := bindGatewayFlags(fs)
	if err := fs.Parse([]string{"--gateway-insecure", "--gateway-token-audiences=a, b,,", "--gateway-bind-address=:1"}); err != nil {
		t.Fatal(err)
	}
	if !o.insecure || o.bindAddress != ":1" || len(splitList(o.audiences)) != 2 || splitList(o.audiences)[1] != "b" {
		t.Fatalf("parsed: %+v", o)
	}
	if o.maxBodyBytes <= 0 || o.maxBatchOps <= 0 || o.opTimeout <= 0 || o.authCacheTTL <= 0 {
		t.Fatalf("defaults missing: %+v", o)
	}
}

// The certificate source follows the flags: none when insecure, the watched files of
// --gateway-tls-cert-dir (which must exist), otherwise a generated self-signed one.
func TestGatewayCerts(t *testing.T) {
	// The manager is never started: no API server is contacted.
	mgr, err := ctrl.NewManager(&rest.Config{Host: "https://127.0.0.1:1"}, ctrl.Options{
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	info := func(string, ...any) {}
	if c, err := gatewayCerts(mgr, &gatewayOptions{insecure: true}, "ns", info); err != nil || c != nil {
		t.Fatalf("insecure: %v %v", c, err)
	}
	if _, err := gatewayCerts(mgr, &gatewayOptions{tlsCertDir: t.TempDir()}, "ns", info); err == nil {
		t.Fatal("a cert dir without tls.crt/tls.key was accepted")
	}
	if _, err := gatewayCerts(mgr, &gatewayOptions{tlsSecret: "no-slash"}, "ns", info); err == nil {
		t.Fatal("a malformed --gateway-tls-secret was accepted")
	}
	c, err := gatewayCerts(mgr, &gatewayOptions{serviceName: "gw"}, "ns", info)
	if err != nil || c == nil {
		t.Fatalf("self-signed: %v", err)
	}
	crt, err := c.GetCertificate(nil)
	if err != nil || len(crt.Certificate) == 0 {
		t.Fatalf("self-signed certificate: %v", err)
	}
	dir := t.TempDir()
	writePair(t, dir)
	if c, err := gatewayCerts(mgr, &gatewayOptions{tlsCertDir: dir}, "ns", info); err != nil || c == nil {
		t.Fatalf("cert dir: %v", err)
	}
}

func writePair(t *testing.T, dir string) {
	t.Helper()
	certPEM, keyPEM := genPair(t)
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

// genPair generates a throwaway self-signed pair as PEM.
func genPair(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
