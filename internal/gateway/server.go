// Package gateway serves every tenant's adapter store over HTTP/JSON to backtest
// workers: routing, request decoding with limits, JSON errors, batches,
// authentication (TokenReview), authorization (SubjectAccessReview on the tenant's
// BacktestPersistence "data" subresource), metrics and health endpoints.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/valyala/fasthttp"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/backtestpersistence/operator/internal/persist"
	"github.com/backtestpersistence/operator/internal/tenant"
)

// Store is what the gateway needs of a tenant's store.
type Store = tenant.Store

// Tenants finds the store of a tenant.
type Tenants interface {
	// Acquire returns the tenant's store and a release func the caller must call
	// when its request is done; or tenant.ErrNotFound, or a *tenant.UnavailableError.
	Acquire(namespace, name string) (Store, func(), error)
	// Ready reports whether the registry has caught up with the cluster (for /readyz).
	Ready() bool
}

// Options configure a Handler.
type Options struct {
	Tenants       Tenants
	Authenticator Authenticator
	Authorizer    Authorizer
	// Metrics receive per-request observations (default: DefaultMetrics()).
	Metrics *Metrics
	Limits  Limits
	// OpTimeout bounds the shortened deadline of a degraded tenant's ops requests
	// (default 10s); otherwise the store's own per-operation timeout bounds them.
	OpTimeout time.Duration
	// BatchTimeout bounds a whole batch (default 50s, under the server's 60s write timeout).
	BatchTimeout time.Duration
	// DegradedTimeout replaces OpTimeout for DegradedWindow after a tenant's store
	// reported its servers unreachable (defaults 500ms and 10s), so a tenant whose
	// MongoDB is down gets its 503 quickly.
	DegradedTimeout, DegradedWindow time.Duration
	Log                             logr.Logger
}

// Handler is the gateway's request handler (served by Server).
type Handler struct {
	o        Options
	degraded *failFast
	callers  callers // callers the header hook accepted (callers.go)
	tag      []byte  // starts the values of the hook's internal headers (preauth.go)
}

// Route names, used as the bounded "route" metric label.
const (
	routeOps     = "ops"
	routeBatch   = "batch"
	routeOpenAPI = "openapi"
	routeHealth  = "health"
	routeOther   = "other"
)

// NewHandler returns the gateway's HTTP handler.
func NewHandler(o Options) *Handler {
	o.Limits = o.Limits.withDefaults()
	if o.Metrics == nil {
		o.Metrics = DefaultMetrics()
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 10 * time.Second
	}
	if o.BatchTimeout <= 0 {
		o.BatchTimeout = 50 * time.Second
	}
	if o.DegradedTimeout <= 0 {
		o.DegradedTimeout = 500 * time.Millisecond
	}
	if o.DegradedWindow <= 0 {
		o.DegradedWindow = 10 * time.Second
	}
	return &Handler{o: o, degraded: newFailFast(o.DegradedWindow, o.DegradedTimeout), tag: []byte(newInternalTag())}
}

// Serve handles one request. ctx carries the server's values but not its
// cancellation, so that requests in flight at shutdown finish; each store call has
// its own deadline. Routes:
//
//	POST /v1/namespaces/{namespace}/persistences/{name}/ops
//	POST /v1/namespaces/{namespace}/persistences/{name}/batch
//	GET  /v1/openapi.yaml
//	GET  /healthz, /readyz
//
// A panic while serving is answered 500 Internal (panicguard.go).
func (h *Handler) Serve(ctx context.Context, rc *fasthttp.RequestCtx) {
	start := time.Now()
	route, code := routeOther, Code("")
	defer func() {
		if v := recover(); v != nil {
			code = h.recovered(rc, v)
		}
		h.callers.forget(&rc.Request.Header) // a route that did not authenticate
		h.discardUnreadBody(rc)
		h.o.Metrics.observeRequest(route, code, time.Since(start))
	}()
	route, code = h.serve(ctx, rc)
}

func (h *Handler) serve(ctx context.Context, rc *fasthttp.RequestCtx) (string, Code) {
	path := rc.Path()
	switch string(path) { // no allocation: the compiler compares in place
	case "/healthz":
		rc.SetConnectionClose() // needs no token: no connection kept for it (kubelet probes do not reuse one)
		writeText(rc, fasthttp.StatusOK, "ok")
		return routeHealth, ""
	case "/readyz":
		rc.SetConnectionClose()
		if h.o.Tenants != nil && !h.o.Tenants.Ready() {
			return routeHealth, writeError(rc, apiErrorf(CodeUnavailable, "tenant registry has not synced yet"))
		}
		writeText(rc, fasthttp.StatusOK, "ok")
		return routeHealth, ""
	case "/v1/openapi.yaml":
		if !rc.IsGet() && !rc.IsHead() {
			return routeOpenAPI, writeMethodNotAllowed(rc, "GET, HEAD")
		}
		if _, err := h.authenticate(ctx, rc); err != nil {
			return routeOpenAPI, writeError(rc, err)
		}
		rc.SetStatusCode(fasthttp.StatusOK)
		rc.SetContentType("application/yaml")
		rc.SetBody(OpenAPI)
		return routeOpenAPI, ""
	}
	namespace, name, action, ok := parseTenantPath(string(path))
	if !ok {
		// Authenticate first so that an anonymous caller learns nothing about routes.
		if _, err := h.authenticate(ctx, rc); err != nil {
			return routeOther, writeError(rc, err)
		}
		return routeOther, writeError(rc, apiErrorf(CodeNotFound, "no route %s", path))
	}
	route := routeOps
	if action == "batch" {
		route = routeBatch
	}
	if !rc.IsPost() {
		return route, writeMethodNotAllowed(rc, "POST")
	}
	return route, writeError(rc, h.serveTenant(ctx, rc, namespace, name, route))
}

// serveError answers a request the server could not read: a body over the limit
// (413, after authentication, as in serveTenant), headers over the read buffer, a
// malformed request or a timeout (400). It is the server's ErrorHandler.
func (h *Handler) serveError(ctx context.Context, rc *fasthttp.RequestCtx, err error) {
	start := time.Now()
	defer h.callers.forget(&rc.Request.Header)
	defer func() {
		if v := recover(); v != nil {
			rc.SetConnectionClose()
			h.o.Metrics.observeRequest(routeOther, h.recovered(rc, v), time.Since(start))
		}
	}()
	var e error
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		e = apiErrorf(CodeTooLarge, "request body is larger than %d bytes", h.o.Limits.MaxBodyBytes)
		// A declared Content-Length over the limit is refused before the body is read,
		// with the headers intact: authenticate first, as serveTenant does. A chunked
		// body is refused midway, after the server has discarded the headers: 413 alone
		// (it tells an anonymous caller nothing but the documented limit).
		if n := rc.Request.Header.ContentLength(); int64(n) > h.o.Limits.MaxBodyBytes {
			drainBody(rc.Conn(), n, maxDrainBytes, drainTotal)
			if _, aerr := h.authenticate(ctx, rc); aerr != nil {
				e = aerr
			}
		} else {
			drainBody(rc.Conn(), -1, maxDrainBytes, drainTotal)
		}
	case errors.As(err, &small):
		e = apiErrorf(CodeTooLarge, "request headers are too large")
	default:
		e = apiErrorf(CodeInvalidRequest, "malformed HTTP request: %v", err)
	}
	rc.SetConnectionClose()
	h.o.Metrics.observeRequest(routeOther, writeError(rc, e), time.Since(start))
}

// Draining a refused body: at most maxDrainBytes, waiting at most drainIdle for more
// and drainTotal in all.
const (
	maxDrainBytes = 64 << 20
	drainIdle     = 500 * time.Millisecond
	drainTotal    = 10 * time.Second
)

// drainBody reads and discards what the client still sends of a body the server
// refused, so that closing the connection does not reset it before the client has
// read the answer (a client writes the whole body before it reads the response).
// A body over maxBytes is not drained; its client may see a reset instead. A
// chunked body (contentLength < 0) is drained until the client pauses, at most
// maxBytes. It reads for at most total, into a small buffer.
func drainBody(conn net.Conn, contentLength, maxBytes int, total time.Duration) {
	if conn == nil || contentLength == 0 || contentLength > maxBytes {
		return
	}
	if contentLength < 0 {
		contentLength = maxBytes
	}
	end := time.Now().Add(total)
	buf := make([]byte, 16<<10)
	for left := contentLength; left > 0 && time.Now().Before(end); {
		deadline := time.Now().Add(drainIdle)
		if deadline.After(end) {
			deadline = end
		}
		_ = conn.SetReadDeadline(deadline)
		n, err := conn.Read(buf)
		left -= n
		if err != nil {
			break
		}
	}
	_ = conn.SetReadDeadline(time.Time{})
}

// serveTenant runs the ops and batch calls. The order of checks is part of the
// contract: authentication (401), body (413/400), authorization (403), tenant
// (404/503). Authorization comes before the tenant lookup, so a caller that may
// not see a tenant gets the same 403 whether or not it exists.
func (h *Handler) serveTenant(ctx context.Context, rc *fasthttp.RequestCtx, namespace, name, route string) error {
	id, err := h.authenticate(ctx, rc)
	if err != nil {
		return err
	}
	// The server refuses longer bodies before the handler runs (serveError); this
	// check keeps the limit when the handler is called directly.
	body := rc.PostBody()
	if int64(len(body)) > h.o.Limits.MaxBodyBytes {
		return apiErrorf(CodeTooLarge, "request body is larger than %d bytes", h.o.Limits.MaxBodyBytes)
	}
	// The decoded requests never alias body, which the server reuses after the handler returns.
	var reqs []persist.Request
	if route == routeOps {
		req, err := DecodeOp(body)
		if err != nil {
			return err
		}
		reqs = []persist.Request{req}
	} else if reqs, err = DecodeBatch(body, h.o.Limits.MaxBatchOps); err != nil {
		return err
	}
	if err := h.authorize(ctx, id, namespace, name, reqs); err != nil {
		return err
	}
	store, release, err := h.o.Tenants.Acquire(namespace, name)
	if err != nil {
		return err
	}
	defer release()
	if route == routeOps {
		key := namespace + "/" + name
		// The store bounds each step of an operation itself (its own OpTimeout), so
		// a request costs no timer here unless the tenant's deadline is shortened.
		if d, short := h.degraded.deadline(key, h.o.OpTimeout); short {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		res, err := store.Do(ctx, reqs[0])
		h.degraded.observe(key, err)
		if err != nil {
			return err
		}
		writeResult(rc, res)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.o.BatchTimeout)
	defer cancel()
	results, errs := store.Batch(ctx, reqs)
	writeBatch(rc, results, errs)
	return nil
}

// authenticate returns the caller of a request or a 401/503 error; a request the
// server's header hook already refused keeps that answer (preauth.go).
func (h *Handler) authenticate(ctx context.Context, rc *fasthttp.RequestCtx) (*Identity, error) {
	if e, refused := h.refusal(rc); refused {
		// A caller without an accepted token keeps no connection: one request per
		// idle timeout could otherwise hold a connection (and its buffers) forever.
		rc.SetConnectionClose()
		return nil, e
	}
	if id, ok := h.callers.take(&rc.Request.Header); ok {
		return id, nil
	}
	return h.authenticateHeader(ctx, &rc.Request.Header)
}

// checkToken returns the caller a bearer token names or a 401/503 error. A token
// whose decision the authenticator holds is answered without a copy of it.
func (h *Handler) checkToken(ctx context.Context, token []byte) (*Identity, error) {
	if ca, ok := h.o.Authenticator.(cachedAuthenticator); ok {
		if id, known := ca.cached(token); known {
			return h.tokenVerdict(id, nil)
		}
	}
	return h.tokenVerdict(h.o.Authenticator.Authenticate(ctx, string(token)))
}

// tokenVerdict turns an authenticator's answer into the caller or a 401/503 error.
func (h *Handler) tokenVerdict(id *Identity, err error) (*Identity, error) {
	if err == nil && id == nil {
		err = ErrUnauthenticated
	}
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return nil, apiErrorf(CodeUnauthorized, "the bearer token was not accepted")
	case errors.Is(err, ErrReviewThrottled):
		return nil, apiErrorf(CodeUnavailable, "too many new tokens to review right now, retry")
	case err != nil:
		h.o.Log.Error(err, "authentication failed")
		return nil, apiErrorf(CodeUnavailable, "authentication is unavailable, retry")
	}
	return id, nil
}

// authorize checks every verb the operations need (one review per verb). An
// operation without a known verb denies the whole request.
func (h *Handler) authorize(ctx context.Context, id *Identity, namespace, name string, reqs []persist.Request) error {
	// An empty batch runs nothing but still answers whether the tenant exists and
	// how it is: that is a read.
	needRead, needWrite, needScan := len(reqs) == 0, false, false
	for i := range reqs {
		verb, ok := verbOf(reqs[i].Op)
		switch {
		case !ok:
			return apiErrorf(CodeForbidden, "operation %q is not authorized for anyone", reqs[i].Op)
		case verb == VerbWrite:
			needWrite = true
		case verb == VerbScan:
			needScan = true
		case verb == VerbRead:
			needRead = true
		default:
			return apiErrorf(CodeForbidden, "operation %q is not authorized for anyone", reqs[i].Op)
		}
	}
	for _, v := range []struct {
		need bool
		verb string
	}{{needRead, VerbRead}, {needWrite, VerbWrite}, {needScan, VerbScan}} {
		if !v.need {
			continue
		}
		allowed, _, err := h.o.Authorizer.Authorize(ctx, id, namespace, name, v.verb)
		if err != nil {
			return h.authorizationFailed(err)
		}
		if !allowed {
			return apiErrorf(CodeForbidden, "%q may not %s data of backtestpersistences %s/%s", id.User, v.verb, namespace, name)
		}
	}
	return nil
}

// authorizationFailed is the 503 of a decision that could not be made. A caller
// over its budget of reviews is not logged: a caller trying paths would fill the log.
func (h *Handler) authorizationFailed(err error) error {
	if errors.Is(err, ErrAccessReviewThrottled) {
		return apiErrorf(CodeUnavailable, "too many new access decisions for this caller right now, retry")
	}
	h.o.Log.Error(err, "authorization failed")
	return apiErrorf(CodeUnavailable, "authorization is unavailable, retry")
}

// parseTenantPath splits /v1/namespaces/{ns}/persistences/{name}/{ops|batch}.
func parseTenantPath(p string) (namespace, name, action string, ok bool) {
	rest, found := strings.CutPrefix(p, "/v1/namespaces/")
	if !found {
		return "", "", "", false
	}
	namespace, rest, found = strings.Cut(rest, "/")
	if !found || namespace == "" {
		return "", "", "", false
	}
	if rest, found = strings.CutPrefix(rest, "persistences/"); !found {
		return "", "", "", false
	}
	name, action, found = strings.Cut(rest, "/")
	if !found || name == "" || (action != "ops" && action != "batch") {
		return "", "", "", false
	}
	// Only names a tenant can have: no authorization review, held decision or
	// metric is spent on a path no object could be at (up to the body limit long).
	if len(validation.IsDNS1123Label(namespace)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return "", "", "", false
	}
	return namespace, name, action, true
}

// writeError writes err as a JSON error (nothing for nil) and returns its code.
func writeError(rc *fasthttp.RequestCtx, err error) Code {
	e := classify(err)
	if e == nil {
		return ""
	}
	if e.Code == CodeUnavailable {
		rc.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
	}
	body, _ := json.Marshal(e)
	writeJSON(rc, e.Code.Status(), body)
	return e.Code
}

func writeMethodNotAllowed(rc *fasthttp.RequestCtx, allow string) Code {
	rc.Response.Header.Set(fasthttp.HeaderAllow, allow)
	return writeError(rc, apiErrorf(CodeMethod, "method not allowed; use %s", allow))
}

func writeJSON(rc *fasthttp.RequestCtx, status int, body []byte) {
	rc.SetStatusCode(status)
	rc.SetContentType("application/json")
	rc.SetBody(body)
}

func writeText(rc *fasthttp.RequestCtx, status int, s string) {
	rc.SetStatusCode(status)
	rc.SetContentType("text/plain; charset=utf-8")
	rc.SetBodyString(s)
}

// appendResult appends the JSON of one result: {"value":...}, {"has":...} or {}.
func appendResult(b []byte, res persist.Result) []byte {
	switch {
	case res.Has != nil:
		if *res.Has {
			return append(b, `{"has":true}`...)
		}
		return append(b, `{"has":false}`...)
	case len(res.Value) > 0:
		b = append(b, `{"value":`...)
		b = append(b, res.Value...)
		return append(b, '}')
	default:
		return append(b, `{}`...)
	}
}

func writeResult(rc *fasthttp.RequestCtx, res persist.Result) {
	buf := make([]byte, 0, len(res.Value)+16)
	writeJSON(rc, fasthttp.StatusOK, appendResult(buf, res)) // SetBody copies into the response's pooled buffer
}

// writeBatch writes {"results":[...]}: a result, or {"error":{code,message}} per operation.
func writeBatch(rc *fasthttp.RequestCtx, results []persist.Result, errs []error) {
	buf := make([]byte, 0, 256)
	buf = append(buf, `{"results":[`...)
	n := max(len(results), len(errs))
	for i := 0; i < n; i++ {
		if i > 0 {
			buf = append(buf, ',')
		}
		var err error
		if i < len(errs) {
			err = errs[i]
		}
		if err == nil && i >= len(results) {
			err = errors.New("the store returned no result for this operation")
		}
		if err != nil {
			e, _ := json.Marshal(classify(err))
			buf = append(buf, `{"error":`...)
			buf = append(buf, e...)
			buf = append(buf, '}')
			continue
		}
		buf = appendResult(buf, results[i])
	}
	buf = append(buf, "]}"...)
	writeJSON(rc, fasthttp.StatusOK, buf)
}
