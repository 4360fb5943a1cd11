package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CertSource provides the serving certificate. Implementations reload rotated
// certificates without a restart.
type CertSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// staticCert is a fixed certificate.
type staticCert struct{ cert *tls.Certificate }

func (s staticCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert, nil
}

// SelfSignedCert generates an ECDSA certificate for hosts (DNS names or IPs),
// valid for a year, and returns it with its PEM. It is what the gateway serves when
// no certificate is configured; clients then pin it (or, for local runs only, skip
// verification).
func SelfSignedCert(hosts []string) (*tls.Certificate, []byte, error) {
	certPEM, keyPEM, err := selfSignedPEM(hosts)
	if err != nil {
		return nil, nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("load generated pair: %w", err)
	}
	return &cert, certPEM, nil
}

// selfSignedPEM generates the PEM of a self-signed certificate and its key.
func selfSignedPEM(hosts []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "backtest-persistence-gateway"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// NewStaticCertSource serves one certificate.
func NewStaticCertSource(cert *tls.Certificate) CertSource { return staticCert{cert: cert} }

// SecretCertSource serves tls.crt/tls.key of a kubernetes.io/tls Secret (as
// cert-manager writes them), read through the API and refreshed every Interval,
// so a rotated certificate is picked up without a restart. Start must run (it is
// a manager Runnable) for refreshes; the first load happens in Load.
type SecretCertSource struct {
	Reader   client.Reader
	Secret   types.NamespacedName
	Interval time.Duration
	cert     atomic.Pointer[tls.Certificate]
	version  atomic.Value // resourceVersion of the loaded Secret
}

// Load reads the Secret once.
func (s *SecretCertSource) Load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var sec corev1.Secret
	if err := s.Reader.Get(ctx, s.Secret, &sec); err != nil {
		return fmt.Errorf("read TLS secret %s: %w", s.Secret, err)
	}
	if v, _ := s.version.Load().(string); v != "" && v == sec.ResourceVersion {
		return nil
	}
	cert, err := tls.X509KeyPair(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return fmt.Errorf("parse TLS secret %s: %w", s.Secret, err)
	}
	s.cert.Store(&cert)
	s.version.Store(sec.ResourceVersion)
	return nil
}

// GetCertificate implements CertSource.
func (s *SecretCertSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := s.cert.Load()
	if c == nil {
		return nil, errors.New("TLS secret not loaded yet")
	}
	return c, nil
}

// Start refreshes the certificate until ctx ends; a failed refresh keeps the old one.
func (s *SecretCertSource) Start(ctx context.Context) error {
	interval := s.Interval
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = s.Load(ctx) // a transient error keeps serving the previous certificate
		}
	}
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica serves.
func (s *SecretCertSource) NeedLeaderElection() bool { return false }
