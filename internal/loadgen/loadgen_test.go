package loadgen

import (
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSummarizePercentiles(t *testing.T) {
	lat := make([]time.Duration, 1000)
	for i := range lat {
		lat[len(lat)-1-i] = time.Duration(i+1) * time.Microsecond // unsorted on purpose
	}
	r := summarize(lat, 2*time.Second, time.Second)
	if r.Requests != 1000 || r.RPS != 500 {
		t.Fatalf("requests %d rps %v", r.Requests, r.RPS)
	}
	for name, c := range map[string]struct{ got, want time.Duration }{
		"p50": {r.P50, 501 * time.Microsecond}, "p90": {r.P90, 901 * time.Microsecond},
		"p99": {r.P99, 991 * time.Microsecond}, "p999": {r.P999, 1000 * time.Microsecond}, "max": {r.Max, 1000 * time.Microsecond},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", name, c.got, c.want)
		}
	}
}

// serve answers every request with handler on a loopback HTTP server.
func serve(t *testing.T, handler http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func TestRunSendsRequestsAndChecksResponses(t *testing.T) {
	var seen atomic.Int64
	var badSeq atomic.Value
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != "POST" || r.URL.Path != "/p" || r.Header.Get("Authorization") != "Bearer tok" ||
			!strings.HasPrefix(string(body), `{"n":`) || strings.Contains(string(body), SeqPlaceholder) {
			badSeq.Store(string(body))
		}
		seen.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	res, err := Run(Config{Addr: addr, Path: "/p", Token: "tok", Bodies: []string{`{"n":` + SeqPlaceholder + `}`},
		Want: `{"ok":true}`, Workers: 4, Requests: 200, Warmup: 2})
	if err != nil {
		t.Fatal(err)
	}
	if b := badSeq.Load(); b != nil {
		t.Fatalf("server saw a malformed request: %v", b)
	}
	if res.Requests != 200 || seen.Load() != 200+4*2 || res.P50 <= 0 || res.Max < res.P99 {
		t.Fatalf("result %+v, server saw %d", res, seen.Load())
	}
}

func TestRunFailsOnUnexpectedResponses(t *testing.T) {
	for name, c := range map[string]struct {
		handler http.HandlerFunc
		want    string
	}{
		"status": {func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }, "got 503"},
		"body":   {func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("other")) }, "got 200 other"},
		"chunked": {func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("a"))
			w.(http.Flusher).Flush()
		}, "Transfer-Encoding"},
	} {
		t.Run(name, func(t *testing.T) {
			addr := serve(t, c.handler)
			_, err := Run(Config{Addr: addr, Path: "/", Bodies: []string{"{}"}, Want: "expected", Workers: 2, Requests: 10})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := Run(Config{Addr: "127.0.0.1:1", Path: "/", Bodies: []string{"{}"}, Workers: 1, Requests: 1}); err == nil {
		t.Fatal("no error for a closed port")
	}
}

func TestWatchReadsOwnCPU(t *testing.T) {
	got := watchCPU(map[string]int{"self": os.Getpid(), "gone": 1 << 30})
	if _, ok := got["gone"]; ok {
		t.Fatal("a missing process was reported")
	}
	if _, ok := got["self"]; !ok {
		t.Fatal("own process not readable")
	}
}
