package gateway

import (
	"sync"

	"github.com/valyala/fasthttp"
)

// A request is authenticated once: the server's header hook checks the bearer
// token (preauth.go), and the caller it accepted reaches the handler through
// callers instead of a second check of the same token.
//
// fasthttp calls the hook with the header of the RequestCtx it then passes to the
// handler (or its error handler), and serves a connection's requests one after
// another on one RequestCtx, so the header's address names the request in flight on
// that connection. The hook marks a request it accepted with callerHeader (after
// removing any value a client sent under that name) and records the caller under the
// header's address; the handler takes the entry only when the mark is there, and
// each entry is taken at most once. A request without an entry, or with a mark but
// no entry, is authenticated from its headers as before: the table only saves work,
// it never decides.
const callerHeader = "X-Btp-Gateway-Caller"

// maxCallers bounds the table. An entry whose request never reached a handler (its
// connection broke while the body was read) stays until the hook runs again on its
// RequestCtx; past the bound the table starts over, and requests in flight then are
// authenticated again by their handlers.
const maxCallers = 1 << 14

type callers struct {
	mu sync.Mutex
	m  map[*fasthttp.RequestHeader]*Identity
}

// accepted records the caller the hook accepted for the request of hdr and marks
// the request.
func (c *callers) accepted(hdr *fasthttp.RequestHeader, id *Identity) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCallers {
		c.m = make(map[*fasthttp.RequestHeader]*Identity)
	}
	c.m[hdr] = id
	c.mu.Unlock()
	hdr.Set(callerHeader, "1")
}

// forget drops the entry of hdr, if any (a request the hook refused).
func (c *callers) forget(hdr *fasthttp.RequestHeader) {
	c.mu.Lock()
	delete(c.m, hdr)
	c.mu.Unlock()
}

// take returns and removes the caller the hook accepted for the request of hdr.
func (c *callers) take(hdr *fasthttp.RequestHeader) (*Identity, bool) {
	marked := len(hdr.Peek(callerHeader)) > 0
	c.mu.Lock()
	id, ok := c.m[hdr]
	if ok {
		delete(c.m, hdr)
	}
	c.mu.Unlock()
	if !marked || id == nil {
		return nil, false
	}
	return id, ok
}
