package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// Authentication happens as soon as a request's headers are in, before its body
// is read (the server's HeaderReceived hook): a request whose bearer token is not
// accepted costs its headers and nothing more. Its body is never buffered: the
// hook declares it empty, so the server goes straight to the handler, which
// answers with the refusal (401, or 503 when the token could not be checked);
// once the answer is sent, the server discards what the client still sends
// within tight bounds and closes the connection. This keeps 401 before 413 for
// every body, declared or chunked.

// Internal request headers by which the hook tells the handler that it refused a
// request (the JSON error) and left its body unread (the declared length, -1 for
// chunked). Values a client sends under these names are removed first; and as
// fasthttp parses a chunked body's trailer fields after the hook, and Peek falls
// back to them, each value the hook sets starts with the handler's tag, a random
// string no client sees, and a value without it is ignored: a forged refusal could
// otherwise answer with the client's own code and message and grow the metrics'
// code label without bound.
const (
	refusalHeader    = "X-Btp-Gateway-Refusal"
	unreadBodyHeader = "X-Btp-Gateway-Unread-Body"
)

// Reading a request: headers within headerReadTimeout of its first byte, then a
// body of an accepted request within bodyReadTimeout.
const (
	headerReadTimeout = 10 * time.Second
	bodyReadTimeout   = 60 * time.Second
)

// Draining the body of a refused request, after the answer: at most
// refusedDrainBytes, waiting at most drainIdle for more and refusedDrainTotal in
// all, so an anonymous client can neither hold the server reading for long nor
// make it decrypt megabytes. A client still sending after that sees the
// connection reset, with the answer already delivered.
const (
	refusedDrainBytes = 1 << 20
	refusedDrainTotal = 2 * time.Second
)

// headerReceived authenticates a request from its headers and returns how much of
// its body the server may read.
func (h *Handler) headerReceived(ctx context.Context, hdr *fasthttp.RequestHeader) fasthttp.RequestConfig {
	hdr.Del(refusalHeader)
	hdr.Del(unreadBodyHeader)
	hdr.Del(callerHeader)
	var id *Identity
	var err error
	if h.guard("authentication from the request headers", func() { id, err = h.authenticateHeader(ctx, hdr) }) {
		err = apiErrorf(CodeInternal, "internal error while authenticating the request")
	}
	if err == nil { // checkToken answers a caller or an error, never neither
		if h.guard("authorization from the request headers", func() { err = h.mayHoldBody(ctx, hdr, id) }) {
			err = apiErrorf(CodeInternal, "internal error while authorizing the request")
		}
	}
	if err == nil {
		h.callers.accepted(hdr, id)
		return fasthttp.RequestConfig{ReadTimeout: bodyReadTimeout}
	}
	refusal, _ := json.Marshal(classify(err))
	hdr.SetBytesV(refusalHeader, append(append(make([]byte, 0, len(h.tag)+len(refusal)), h.tag...), refusal...))
	// -2 is a request without Content-Length or Transfer-Encoding, which has no body.
	if n := hdr.ContentLength(); n > 0 || n == -1 {
		hdr.SetBytesV(unreadBodyHeader, strconv.AppendInt(append([]byte(nil), h.tag...), int64(n), 10))
		hdr.SetContentLength(0)
	}
	hdr.Del(fasthttp.HeaderExpect) // no "100 Continue" for a body that will not be read
	return fasthttp.RequestConfig{}
}

// largeBody is the body size above which the hook checks, before the body is read,
// that the caller may access the tenant at all. The server allocates a declared body
// in full before reading it, and authorization proper needs the body (the verbs
// follow from its operations): without this check any service account the cluster
// accepts could make the server hold MaxBodyBytes per connection for
// bodyReadTimeout. Smaller bodies keep the documented order of answers (413 and 400
// before 403).
const largeBody = 64 << 10

// mayHoldBody refuses (403) a large or chunked body sent to a tenant route by a
// caller that may neither read nor write that tenant's data; the handler still
// authorizes the operations themselves. Held decisions answer without a review.
func (h *Handler) mayHoldBody(ctx context.Context, hdr *fasthttp.RequestHeader, id *Identity) error {
	if n := hdr.ContentLength(); (n >= 0 && n <= largeBody) || n == -2 || h.o.Authorizer == nil {
		return nil
	}
	var u fasthttp.URI // the path as the handler sees it: decoded and normalized
	if err := u.Parse(nil, hdr.RequestURI()); err != nil {
		return nil // the handler answers it
	}
	namespace, name, _, ok := parseTenantPath(string(u.Path()))
	if !ok {
		return nil
	}
	for _, verb := range []string{VerbWrite, VerbRead} {
		allowed, _, err := h.o.Authorizer.Authorize(ctx, id, namespace, name, verb)
		if err != nil {
			return h.authorizationFailed(err)
		}
		if allowed {
			return nil
		}
	}
	return apiErrorf(CodeForbidden, "%q may not read or write data of backtestpersistences %s/%s", id.User, namespace, name)
}

// internal returns the value headerReceived set under name, if it did.
func (h *Handler) internal(rc *fasthttp.RequestCtx, name string) ([]byte, bool) {
	raw := rc.Request.Header.Peek(name)
	if len(raw) < len(h.tag) || subtle.ConstantTimeCompare(raw[:len(h.tag)], h.tag) != 1 {
		return nil, false
	}
	return raw[len(h.tag):], true
}

// newInternalTag returns a random tag for the hook's internal header values.
func newInternalTag() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// refusal returns the error headerReceived refused the request with, if it did.
func (h *Handler) refusal(rc *fasthttp.RequestCtx) (*Error, bool) {
	raw, ok := h.internal(rc, refusalHeader)
	if !ok {
		return nil, false
	}
	var e Error
	if json.Unmarshal(raw, &e) != nil || e.Code == "" {
		e = Error{Code: CodeUnauthorized, Message: "the bearer token was not accepted"}
	}
	return &e, true
}

// discardUnreadBody ends the connection of a request whose body headerReceived
// left unread: the server sends the answer, then the connection is taken over
// (hijacked) to read and discard what the client still sends of the body, within
// bounds, and closed, so that the client reads the answer rather than a reset
// and the body is never parsed as a next request.
func (h *Handler) discardUnreadBody(rc *fasthttp.RequestCtx) {
	raw, ok := h.internal(rc, unreadBodyHeader)
	if !ok {
		return
	}
	n, err := strconv.Atoi(string(raw))
	if err != nil || n > refusedDrainBytes {
		n = -1 // drain what comes within the bounds, then close
	}
	rc.Response.Header.Set(fasthttp.HeaderConnection, "close") // the hijacked connection is closed after the drain
	rc.Hijack(func(c net.Conn) { drainBody(c, n, refusedDrainBytes, refusedDrainTotal) })
}

// authenticateHeader returns the caller named by the request's bearer token or a
// 401/503 error.
func (h *Handler) authenticateHeader(ctx context.Context, hdr *fasthttp.RequestHeader) (*Identity, error) {
	auth := hdr.Peek(fasthttp.HeaderAuthorization)
	token, found := bytes.CutPrefix(auth, []byte("Bearer "))
	token = bytes.TrimSpace(token)
	if !found || len(token) == 0 {
		return nil, apiErrorf(CodeUnauthorized, "a bearer token is required")
	}
	return h.checkToken(ctx, token)
}
