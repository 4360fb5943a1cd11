package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// countingAuthn counts the token checks per token.
type countingAuthn struct {
	inner Authenticator
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingAuthn) Authenticate(ctx context.Context, token string) (*Identity, error) {
	c.mu.Lock()
	c.calls[token]++
	c.mu.Unlock()
	return c.inner.Authenticate(ctx, token)
}

func (c *countingAuthn) count(token string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[token]
}

// rawExchange sends raw requests on one keep-alive connection and returns each
// answer's status and error code.
func rawExchange(t *testing.T, conn net.Conn, br *bufio.Reader, token, extraHeader, body string) (int, Code) {
	t.Helper()
	head := "POST " + opsPath + " HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
	if token != "" {
		head += "Authorization: Bearer " + token + "\r\n"
	}
	head += extraHeader
	if _, err := fmt.Fprintf(conn, "%sContent-Length: %d\r\n\r\n%s", head, len(body), body); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var e Error
	_ = json.Unmarshal(raw, &e)
	return res.StatusCode, e.Code
}

// A request is authenticated once, by the header hook, and its caller reaches the
// handler; what a client sends cannot stand in for that.
func TestRequestAuthenticatedOnce(t *testing.T) {
	h, tn := newTestHandler()
	ca := &countingAuthn{inner: h.o.Authenticator, calls: map[string]int{}}
	h.o.Authenticator = ca
	base := startTestServer(t, h)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	write := `{"kind":"state","op":"write",` + stateKey + `,"value":{"n":1},"when":1}`
	read := `{"kind":"state","op":"read",` + stateKey + `}`

	// One check per request on a keep-alive connection, not one per layer.
	for i := range 5 {
		if status, code := rawExchange(t, conn, br, "writer", "", read); status != 200 {
			t.Fatalf("read %d: %d %s", i, status, code)
		}
	}
	if n := ca.count("writer"); n != 5 {
		t.Fatalf("5 requests checked the token %d times, want 5", n)
	}

	// The next request on the same connection, with a token that is not accepted, is
	// refused: the previous request's caller does not carry over, with or without
	// a forged mark.
	for _, extra := range []string{"", callerHeader + ": 1\r\n"} {
		if status, code := rawExchange(t, conn, br, "forged", extra, write); status != 401 || code != CodeUnauthorized {
			t.Fatalf("forged token after an accepted one (extra %q): %d %s", extra, status, code)
		}
		// The refusal closes the connection (its body is unread); start another.
		conn.Close()
		if conn, err = net.Dial("tcp", strings.TrimPrefix(base, "http://")); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		br = bufio.NewReader(conn)
		if status, code := rawExchange(t, conn, br, "writer", "", read); status != 200 {
			t.Fatalf("accepted token on a new connection: %d %s", status, code)
		}
	}

	// A reader's request marked by the client as accepted is still the reader's: the
	// write is refused 403, not run as the previous request's writer.
	if status, code := rawExchange(t, conn, br, "reader", callerHeader+": 1\r\n", write); status != 403 || code != CodeForbidden {
		t.Fatalf("reader's write with a forged mark after a writer's request: %d %s", status, code)
	}
	// No token at all, with the mark: 401.
	if status, code := rawExchange(t, conn, br, "", callerHeader+": 1\r\n", write); status != 401 {
		t.Fatalf("no token with a forged mark: %d %s", status, code)
	}
	if n := len(tn.stores["a/t"].data); n != 0 {
		t.Fatalf("store holds %d records, want none: every write was refused", n)
	}
}

// Called without the server's hook (as the handler tests do), the handler checks
// the token itself; a forged mark is not an identity.
func TestHandlerWithoutHookAuthenticates(t *testing.T) {
	h, _ := newTestHandler()
	var rc fasthttp.RequestCtx
	rc.Request.Header.SetMethod("POST")
	rc.Request.SetRequestURI(opsPath)
	rc.Request.Header.Set(callerHeader, "1")
	rc.Request.SetBodyString(`{"kind":"state","op":"read",` + stateKey + `}`)
	h.Serve(context.Background(), &rc)
	if rc.Response.StatusCode() != 401 {
		t.Fatalf("no token, forged mark, no hook: %d %s", rc.Response.StatusCode(), rc.Response.Body())
	}
}

// The table of accepted callers is bounded: entries whose requests never reach a
// handler do not accumulate.
func TestCallersBounded(t *testing.T) {
	var c callers
	id := &Identity{User: "w"}
	hdrs := make([]fasthttp.RequestHeader, maxCallers+10)
	for i := range hdrs {
		c.accepted(&hdrs[i], id)
	}
	if n := len(c.m); n > maxCallers {
		t.Fatalf("%d entries, bound %d", n, maxCallers)
	}
	last := &hdrs[len(hdrs)-1]
	if got, ok := c.take(last); !ok || got != id {
		t.Fatal("the newest entry is gone")
	}
	if _, ok := c.take(last); ok {
		t.Fatal("an entry was taken twice")
	}
}
