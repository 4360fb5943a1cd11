package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// The Server serves TLS (HTTP/1.1 and HTTP/2) or plain HTTP, and stops when its context ends.
func TestServerTLSAndShutdown(t *testing.T) {
	cert, certPEM, err := SelfSignedCert([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	h, _ := newTestHandler()
	for _, c := range []struct {
		name  string
		certs CertSource
		h2    bool
	}{
		{"tls http/1.1", NewStaticCertSource(cert), false},
		{"tls http/2", NewStaticCertSource(cert), true},
		{"plain", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			started := make(chan net.Addr, 1)
			srv := &Server{Listener: ln, Handler: h, Certs: c.certs, Log: logr.Discard(), Started: started}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Start(ctx) }()
			addr := <-started
			scheme := "http"
			tr := &http.Transport{}
			if c.certs != nil {
				scheme = "https"
				tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
				tr.ForceAttemptHTTP2 = c.h2
			}
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			res, err := client.Get(scheme + "://" + addr.String() + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || string(body) != "ok" {
				t.Fatalf("healthz: %d %s", res.StatusCode, body)
			}
			if wantMajor := map[bool]int{true: 2, false: 1}[c.h2]; res.ProtoMajor != wantMajor {
				t.Fatalf("protocol %s, want HTTP/%d", res.Proto, wantMajor)
			}
			tr.CloseIdleConnections()
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("server stopped with %v", err)
			}
			if _, err := client.Get(scheme + "://" + addr.String() + "/healthz"); err == nil {
				t.Fatal("server still answers after stop")
			}
		})
	}
}
