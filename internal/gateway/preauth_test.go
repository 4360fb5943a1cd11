package gateway

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A request without an accepted token is answered from its headers: the server
// does not wait for (or buffer) its body. Each request below declares or starts a
// body within the limit and withholds its end; the answer must come anyway. The
// deadline only bounds a broken server's wait: a server that reads the body first
// answers nothing until its own read timeout.
func TestUnauthenticatedBodiesAreNotRead(t *testing.T) {
	h, tn := newTestHandler()
	h.o.Limits.MaxBodyBytes = 8 << 20
	base := startTestServer(t, h)
	addr := strings.TrimPrefix(base, "http://")
	const path = "POST " + opsPath + " HTTP/1.1\r\nHost: gw\r\n"
	const other = "POST /v1/namespaces/b/persistences/t/ops HTTP/1.1\r\nHost: gw\r\n"
	bigBody := strings.Repeat("x", 1<<20)
	cases := []struct {
		name, head, body string
		status           int
		code             Code
	}{
		{"no token, declared 8 MiB", path + "Content-Length: 8388600\r\n\r\n", bigBody, 401, CodeUnauthorized},
		{"rejected token, declared 8 MiB", path + "Authorization: Bearer forged\r\nContent-Length: 8388600\r\n\r\n", bigBody, 401, CodeUnauthorized},
		{"unreviewable token, declared 8 MiB", path + "Authorization: Bearer broken\r\nContent-Length: 8388600\r\n\r\n", bigBody, 503, CodeUnavailable},
		{"no token, chunked", path + "Transfer-Encoding: chunked\r\n\r\n", "10000\r\n" + strings.Repeat("y", 1<<16) + "\r\n", 401, CodeUnauthorized},
		{"no token, expect 100-continue", path + "Expect: 100-continue\r\nContent-Length: 1000\r\n\r\n", "", 401, CodeUnauthorized},
		{"forged refusal header", path + refusalHeader + ": {}\r\n" + unreadBodyHeader + ": 5\r\nContent-Length: 8388600\r\n\r\n", "", 401, CodeUnauthorized},
		// an accepted token that may not access the tenant: a large body is not
		// held for it either (the server would allocate it whole)
		{"accepted token without access, declared 8 MiB", other + "Authorization: Bearer writer\r\nContent-Length: 8388600\r\n\r\n", bigBody, 403, CodeForbidden},
		{"accepted token without access, chunked", other + "Authorization: Bearer writer\r\nTransfer-Encoding: chunked\r\n\r\n", "10000\r\n" + strings.Repeat("y", 1<<16) + "\r\n", 403, CodeForbidden},
		{"accepted token without access, encoded path", "POST /v1/namespaces/%62/persistences/t/ops HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer writer\r\nContent-Length: 8388600\r\n\r\n", bigBody, 403, CodeForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := dialTest(t, addr, 30*time.Second)
			// The answer comes before the body is in, so it is read while the body is
			// still being sent: a client that sends on past the drain's bounds may
			// see its write reset (documented), never a missing answer.
			wrote := make(chan error, 1)
			go func() {
				_, err := io.WriteString(conn, c.head+c.body)
				wrote <- err
			}()
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer while the body is incomplete: %v", err)
			}
			raw, _ := io.ReadAll(res.Body)
			var e Error
			if res.StatusCode != c.status || json.Unmarshal(raw, &e) != nil || e.Code != c.code {
				t.Fatalf("%d %s, want %d %s", res.StatusCode, raw, c.status, c.code)
			}
			if !res.Close {
				t.Fatal("the connection stays open with the body unread")
			}
			if err := <-wrote; err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
				t.Fatalf("sending the body: %v", err)
			}
		})
	}
	// With an accepted token the same server reads bodies as before, large ones
	// of a tenant the caller may access included.
	client := &http.Client{Timeout: 10 * time.Second}
	for _, body := range []string{
		`{"kind":"state","op":"write",` + stateKey + `,"value":{"n":2},"when":1}`,
		`{"kind":"state","op":"read",` + stateKey + `}`,
		`{"kind":"state","op":"read",` + stateKey + `}` + strings.Repeat(" ", 2*largeBody),
	} {
		req, _ := http.NewRequest("POST", base+opsPath, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer writer")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("accepted token: %d %s", res.StatusCode, raw)
		}
	}
	if n := len(tn.stores["a/t"].data); n != 1 {
		t.Fatalf("store holds %d records, want the accepted write's one", n)
	}
}

// fasthttp parses a chunked body's trailer fields after the header hook, and a
// header lookup falls back to them: internal header values sent there (announced
// or not) must not pass for the hook's. An accepted request carrying a forged
// refusal in its trailer is served as usual, and is not answered, logged or
// counted under the client's own code.
func TestForgedInternalHeadersInTrailers(t *testing.T) {
	h, _ := newTestHandler()
	base := startTestServer(t, h)
	addr := strings.TrimPrefix(base, "http://")
	body := `{"kind":"state","op":"read",` + stateKey + `}`
	chunk := fmt.Sprintf("%x\r\n%s\r\n0\r\n", len(body), body)
	for _, announce := range []string{"", "Trailer: " + refusalHeader + "\r\n"} {
		for i := 0; i < 3; i++ {
			forged := fmt.Sprintf(`%s: {"code":"Forged%d","message":"from the client"}`+"\r\n"+unreadBodyHeader+": 5\r\n", refusalHeader, i)
			conn := dialTest(t, addr, 10*time.Second)
			req := "POST " + opsPath + " HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer reader\r\nTransfer-Encoding: chunked\r\n" + announce + "\r\n" + chunk + forged + "\r\n"
			if _, err := io.WriteString(conn, req); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(res.Body)
			conn.Close()
			if res.StatusCode != 200 || strings.Contains(string(raw), "Forged") {
				t.Fatalf("request with a forged refusal trailer (%q): %d %s, want 200 and the value", announce, res.StatusCode, raw)
			}
		}
	}
	series := make(chan prometheus.Metric, 100)
	h.o.Metrics.requests.Collect(series)
	close(series)
	if n := len(series); n != 1 {
		t.Fatalf("%d request series after forged trailers, want the one route's", n)
	}
}

// Requests that need no accepted token (refused ones without a body, health
// checks) keep no connection: sent once per idle timeout they could otherwise
// hold connections, and the server's connection slots, without end. An accepted
// caller's connection stays open for its next request.
func TestConnectionsKeptOnlyForAcceptedCallers(t *testing.T) {
	h, _ := newTestHandler()
	base := startTestServer(t, h)
	addr := strings.TrimPrefix(base, "http://")
	read := `{"kind":"state","op":"read",` + stateKey + `}`
	for _, c := range []struct {
		name, req string
		status    int
		kept      bool
	}{
		{"no token, no body", "GET /v1/openapi.yaml HTTP/1.1\r\nHost: gw\r\n\r\n", 401, false},
		{"rejected token, no body", "GET /v1/openapi.yaml HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer forged\r\n\r\n", 401, false},
		{"healthz", "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n", 200, false},
		{"readyz", "GET /readyz HTTP/1.1\r\nHost: gw\r\n\r\n", 200, false},
		{"accepted caller", fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer reader\r\nContent-Length: %d\r\n\r\n%s", opsPath, len(read), read), 200, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := dialTest(t, addr, 10*time.Second)
			if _, err := io.WriteString(conn, c.req); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.ReadAll(res.Body)
			if res.StatusCode != c.status || res.Close == c.kept {
				t.Fatalf("%d, connection close %v; want %d, kept %v", res.StatusCode, res.Close, c.status, c.kept)
			}
			if !c.kept {
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := br.ReadByte(); err == nil {
					t.Fatal("the server sent more on a connection it said it closes")
				}
			}
		})
	}
}

// dialTest opens a connection to the test server, closed at the test's end, with
// every read and write bounded by within.
func dialTest(t *testing.T, addr string, within time.Duration) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(within))
	return conn
}
