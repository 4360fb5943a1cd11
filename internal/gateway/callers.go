package gateway

import (
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// A request is authenticated once: the server's header hook checks the bearer
// token (preauth.go), and the caller it accepted reaches the handler through
// callers instead of a second check of the same token.
//
// The hook records the caller under a fresh number and marks the request with it
// in callerHeader (after removing any value a client sent under that name); the
// handler (or the server's error handler) takes the entry named by the mark, at
// most once. An entry also holds the address of the request's header, which must
// match: fasthttp calls the hook with the header of the RequestCtx it then passes
// to the handler, and serves a connection's requests one after another. The table
// holds numbers and identities only, never a request: an entry whose request never
// reached a handler (its connection broke after the hook) keeps nothing alive but a
// shared identity, and the table starts over past maxCallers entries. An entry is
// honoured for callerMaxAge after the hook accepted it; a request whose body took
// longer is authenticated again from its headers, so a slow body does not stretch
// the life of a cached decision. A request without a usable entry is authenticated
// from its headers as before: the table only saves work, it never decides.
const callerHeader = "X-Btp-Gateway-Caller"

const (
	maxCallers   = 1 << 14
	callerMaxAge = time.Second
)

type callerEntry struct {
	id  *Identity
	hdr uintptr // the address of the request's header, compared, never followed
	at  time.Time
}

type callers struct {
	mu   sync.Mutex
	next uint64
	m    map[uint64]callerEntry
	now  func() time.Time // time.Now; tests replace it
}

func headerAddr(hdr *fasthttp.RequestHeader) uintptr { return uintptr(unsafe.Pointer(hdr)) }

// accepted records the caller the hook accepted for the request of hdr and marks
// the request with the entry's number.
func (c *callers) accepted(hdr *fasthttp.RequestHeader, id *Identity) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCallers {
		c.m = make(map[uint64]callerEntry)
	}
	c.next++
	n := c.next
	c.m[n] = callerEntry{id: id, hdr: headerAddr(hdr), at: c.clock()}
	c.mu.Unlock()
	var buf [20]byte
	hdr.SetBytesV(callerHeader, strconv.AppendUint(buf[:0], n, 10))
}

// take returns and removes the caller the hook accepted for the request of hdr.
func (c *callers) take(hdr *fasthttp.RequestHeader) (*Identity, bool) {
	n, ok := markOf(hdr)
	if !ok {
		return nil, false
	}
	c.mu.Lock()
	e, found := c.m[n]
	delete(c.m, n)
	c.mu.Unlock()
	if !found || e.id == nil || e.hdr != headerAddr(hdr) || c.clock().Sub(e.at) > callerMaxAge {
		return nil, false
	}
	return e.id, true
}

// forget drops the entry of the request of hdr, if it has one (a route that did not
// authenticate, a request the server could not read).
func (c *callers) forget(hdr *fasthttp.RequestHeader) {
	if n, ok := markOf(hdr); ok {
		c.mu.Lock()
		delete(c.m, n)
		c.mu.Unlock()
	}
}

func (c *callers) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// markOf reads a request's mark: a decimal number, as accepted writes it.
func markOf(hdr *fasthttp.RequestHeader) (uint64, bool) {
	v := hdr.Peek(callerHeader)
	if len(v) == 0 || len(v) > 20 {
		return 0, false
	}
	var n uint64
	for _, ch := range v {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + uint64(ch-'0')
	}
	return n, true
}
