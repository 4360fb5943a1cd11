package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// The Server serves TLS or plain HTTP/1.1, refuses what it cannot read with the
// gateway's JSON errors, and stops when its context ends.
func TestServerTLSAndShutdown(t *testing.T) {
	cert, certPEM, err := SelfSignedCert([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	h, tn := newTestHandler() // MaxBodyBytes 1024
	for _, c := range []struct {
		name  string
		certs CertSource
	}{
		{"tls", NewStaticCertSource(cert)},
		{"plain", nil},
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
			base := "http://" + (<-started).String()
			tr := &http.Transport{}
			if c.certs != nil {
				base = "https" + strings.TrimPrefix(base, "http")
				tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			}
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			call := func(method, path, token string, body []byte) (int, string, map[string]any) {
				t.Helper()
				req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				res, err := client.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", method, path, err)
				}
				raw, _ := io.ReadAll(res.Body)
				res.Body.Close()
				var out map[string]any
				if res.Header.Get("Content-Type") == "application/json" {
					if err := json.Unmarshal(raw, &out); err != nil {
						t.Fatalf("%s %s: body is not JSON: %q", method, path, raw)
					}
				}
				return res.StatusCode, string(raw), out
			}

			if status, raw, _ := call("GET", "/healthz", "", nil); status != 200 || raw != "ok" {
				t.Fatalf("healthz: %d %s", status, raw)
			}
			write := []byte(`{"kind":"state","op":"write",` + stateKey + `,"value":{"n":1},"when":1}`)
			if status, raw, _ := call("POST", opsPath, "writer", write); status != 200 || raw != "{}" {
				t.Fatalf("write: %d %s", status, raw)
			}
			read := []byte(`{"kind":"state","op":"read",` + stateKey + `}`)
			if status, raw, _ := call("POST", opsPath, "writer", read); status != 200 || raw != `{"value":{"n":1}}` {
				t.Fatalf("read: %d %s", status, raw)
			}
			// A body over the limit is refused by the server before the handler runs:
			// still 401 without a valid token, 413 with one, and nothing is written.
			big := []byte(`{"kind":"state","op":"write","key":{"signalId":"big","bucketName":"b"},"value":"` + strings.Repeat("x", 2000) + `","when":2}`)
			if status, _, body := call("POST", opsPath, "", big); status != 401 || body["code"] != string(CodeUnauthorized) {
				t.Fatalf("oversized body without a token: %d %v", status, body)
			}
			if status, _, body := call("POST", opsPath, "writer", big); status != 413 || body["code"] != string(CodeTooLarge) {
				t.Fatalf("oversized body: %d %v", status, body)
			}
			want413 := func(what string, req *http.Request) {
				t.Helper()
				req.Header.Set("Authorization", "Bearer writer")
				res, err := client.Do(req)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				raw, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 413 || !strings.Contains(string(raw), string(CodeTooLarge)) {
					t.Fatalf("%s: %d %s", what, res.StatusCode, raw)
				}
			}
			// The same with a chunked body (no Content-Length).
			chunked, _ := http.NewRequest("POST", base+opsPath, io.MultiReader(bytes.NewReader(big)))
			chunked.ContentLength = -1
			want413("oversized chunked body", chunked)
			// Headers larger than the read buffer get a JSON 413 as well.
			padded, _ := http.NewRequest("POST", base+opsPath, bytes.NewReader(read))
			padded.Header.Set("X-Padding", strings.Repeat("p", maxHeaderBytes))
			want413("oversized headers", padded)
			tr.CloseIdleConnections()
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("server stopped with %v", err)
			}
			if _, err := client.Get(base + "/healthz"); err == nil {
				t.Fatal("server still answers after stop")
			}
		})
	}
	if n := len(tn.stores["a/t"].data); n != 1 {
		t.Fatalf("store holds %d records, want only the small write's one", n)
	}
}
