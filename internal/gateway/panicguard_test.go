package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/backtestpersistence/operator/internal/persist"
)

// panickingStore panics on every call, standing in for any defect below the handler.
type panickingStore struct{}

func (panickingStore) Do(context.Context, persist.Request) (persist.Result, error) {
	panic("defect in the store")
}

func (panickingStore) Batch(context.Context, []persist.Request) ([]persist.Result, []error) {
	panic("defect in the store")
}

// panicTenants serves a/panic with a panicking store and everything else as fakeTenants.
type panicTenants struct{ *fakeTenants }

func (p panicTenants) Acquire(ns, name string) (Store, func(), error) {
	if ns+"/"+name == "a/panic" {
		return panickingStore{}, func() {}, nil
	}
	return p.fakeTenants.Acquire(ns, name)
}

// startTestServer serves h on a loopback port until the test ends and returns its URL.
func startTestServer(t *testing.T, h *Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan net.Addr, 1)
	srv := &Server{Listener: ln, Handler: h, Log: logr.Discard(), Started: started}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	addr := <-started
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server stopped with %v", err)
		}
	})
	return "http://" + addr.String()
}

// A panic while serving a request becomes a JSON 500 and a counted metric; the
// process keeps serving, on the same server.
func TestPanicGuard(t *testing.T) {
	h, tn := newTestHandler()
	h.o.Tenants = panicTenants{tn}
	h.o.Authorizer = fakeAuthz{"writer/get/a/panic": true, "writer/update/a/panic": true,
		"writer/get/a/t": true, "writer/update/a/t": true}
	base := startTestServer(t, h)
	client := &http.Client{Timeout: 10 * time.Second}
	post := func(path, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer writer")
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, raw
	}
	write := `{"kind":"state","op":"write",` + stateKey + `,"value":{"n":1},"when":1}`
	read := `{"kind":"state","op":"read",` + stateKey + `}`
	for i := range 3 {
		for _, path := range []string{"/v1/namespaces/a/persistences/panic/ops", "/v1/namespaces/a/persistences/panic/batch"} {
			body := write
			if strings.HasSuffix(path, "batch") {
				body = `{"ops":[` + read + `]}`
			}
			status, raw := post(path, body)
			var e Error
			if status != 500 || json.Unmarshal(raw, &e) != nil || e.Code != CodeInternal || e.Message == "" {
				t.Fatalf("round %d, panicking %s: %d %s, want 500 with a JSON Internal error", i, path, status, raw)
			}
		}
		if status, raw := post(opsPath, write); status != 200 || string(raw) != `{}` {
			t.Fatalf("round %d, write after a panic: %d %s", i, status, raw)
		}
		if status, raw := post(opsPath, read); status != 200 || string(raw) != `{"value":{"n":1}}` {
			t.Fatalf("round %d, read after a panic: %d %s", i, status, raw)
		}
	}
	if n := counterValue(t, h.o.Metrics.panics); n != 6 {
		t.Fatalf("panics counted: %v, want 6", n)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
