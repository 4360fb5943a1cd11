package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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

// The table of accepted callers is bounded, an entry is taken once, only by the
// request it was made for, and only soon after the hook accepted it.
func TestCallersEntries(t *testing.T) {
	now := time.Unix(0, 0)
	c := callers{now: func() time.Time { return now }}
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
	// Another request's header carrying a copied mark does not get the entry.
	var a, b fasthttp.RequestHeader
	c.accepted(&a, id)
	b.SetBytesV(callerHeader, a.Peek(callerHeader))
	if _, ok := c.take(&b); ok {
		t.Fatal("a mark copied onto another request's header named the entry's caller")
	}
	// Past callerMaxAge the handler authenticates again.
	c.accepted(&a, id)
	now = now.Add(callerMaxAge + time.Millisecond)
	if _, ok := c.take(&a); ok {
		t.Fatal("an entry older than callerMaxAge was honoured")
	}
}

func heapInUse() uint64 {
	for range 4 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A request the hook accepted but no handler served (its client sent
// "Expect: 100-continue" and reset the connection before the interim answer) must
// not keep its request, and the body buffer its connection grew, in memory. Each
// connection below first grows its buffer with a 1 MiB write, then does that.
func TestAbandonedRequestsDoNotPinMemory(t *testing.T) {
	h, _ := newTestHandler()
	h.o.Limits.MaxBodyBytes = 2 << 20
	base := startTestServer(t, h)
	addr := strings.TrimPrefix(base, "http://")
	head := "POST " + opsPath + " HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer writer\r\nContent-Type: application/json\r\n"
	big := `{"kind":"state","op":"write",` + stateKey + `,"value":{"s":"` + strings.Repeat("x", 1<<20) + `"},"when":1}`
	before := heapInUse()
	const n = 100
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmt.Fprintf(c, "%sContent-Length: %d\r\n\r\n%s", head, len(big), big)
			if res, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}()
	}
	wg.Wait()
	for _, c := range conns {
		_ = c.(*net.TCPConn).SetLinger(0)
		fmt.Fprintf(c, "%sContent-Length: 100\r\nExpect: 100-continue\r\n\r\n", head)
		c.Close()
	}
	time.Sleep(time.Second)
	h.callers.mu.Lock()
	stale := len(h.callers.m)
	h.callers.mu.Unlock()
	grown := int64(heapInUse()) - int64(before)
	t.Logf("%d abandoned requests left in the table; heap grew %d MiB", stale, grown>>20)
	if grown > 40<<20 {
		t.Fatalf("after %d abandoned requests (%d still in the table) the heap holds %d MiB more", n, stale, grown>>20)
	}
}

// A request whose body arrives long after its headers is authenticated again when
// its handler runs: a token revoked meanwhile, whose cached decision expired, is
// refused, as it was before the hook's caller reached the handler.
func TestSlowBodyAuthenticatedAgain(t *testing.T) {
	var revoked atomic.Bool
	good := jwtShaped("worker")
	h, tn := newTestHandler()
	h.o.Authenticator = authnFunc(func(_ context.Context, token string) (*Identity, error) {
		if token == good && !revoked.Load() {
			return &Identity{User: "writer"}, nil
		}
		return nil, ErrUnauthenticated
	})
	base := startTestServer(t, h)
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"kind":"state","op":"write",` + stateKey + `,"value":{"n":1},"when":1}`
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		opsPath, good, len(body))
	time.Sleep(callerMaxAge + 200*time.Millisecond)
	revoked.Store(true)
	fmt.Fprint(c, body)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("a write whose token was revoked while its body was in flight got %d, want 401", res.StatusCode)
	}
	if n := len(tn.stores["a/t"].data); n != 0 {
		t.Fatalf("store holds %d records, want none", n)
	}
}

// authnFunc is an Authenticator from a function (no cache of its own).
type authnFunc func(context.Context, string) (*Identity, error)

func (f authnFunc) Authenticate(ctx context.Context, token string) (*Identity, error) {
	return f(ctx, token)
}
