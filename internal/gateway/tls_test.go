package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestSelfSignedCert(t *testing.T) {
	cert, certPEM, err := SelfSignedCert([]string{"gw.ns.svc", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("PEM not usable as a trust anchor")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"gw.ns.svc", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
}

// SecretCertSource serves the Secret's pair and picks up a rotation on the next load.
func TestSecretCertSource(t *testing.T) {
	certA, keyA, err := selfSignedPEM([]string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	certB, keyB, err := selfSignedPEM([]string{"b"})
	if err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: certA, corev1.TLSPrivateKeyKey: keyA}}
	c := fake.NewClientBuilder().WithObjects(sec).Build()
	src := &SecretCertSource{Reader: c, Secret: types.NamespacedName{Namespace: "ns", Name: "tls"}}
	if _, err := src.GetCertificate(nil); err == nil {
		t.Fatal("certificate served before load")
	}
	ctx := context.Background()
	if err := src.Load(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := src.GetCertificate(&tls.ClientHelloInfo{})
	if leafName(t, got) != "a" {
		t.Fatalf("serves %q", leafName(t, got))
	}
	sec.Data = map[string][]byte{corev1.TLSCertKey: certB, corev1.TLSPrivateKeyKey: keyB}
	if err := c.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	if err := src.Load(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ = src.GetCertificate(&tls.ClientHelloInfo{})
	if leafName(t, got) != "b" {
		t.Fatalf("rotation not picked up: serves %q", leafName(t, got))
	}
	sec.Data = map[string][]byte{corev1.TLSCertKey: []byte("junk")}
	_ = c.Update(ctx, sec)
	if err := src.Load(ctx); err == nil {
		t.Fatal("a broken Secret was accepted")
	}
	got, _ = src.GetCertificate(&tls.ClientHelloInfo{})
	if leafName(t, got) != "b" {
		t.Fatal("a broken Secret replaced the working certificate")
	}
}

func leafName(t *testing.T, c *tls.Certificate) string {
	t.Helper()
	if c == nil {
		return ""
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.DNSNames[0]
}
