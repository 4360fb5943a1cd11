// Package gateway serves every tenant's adapter store over HTTP/JSON to backtest
// workers: routing, request decoding with limits, JSON errors, batches,
// authentication (TokenReview), authorization (SubjectAccessReview on the tenant's
// BacktestPersistence "data" subresource), metrics and health endpoints.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"

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
	// OpTimeout bounds the store call of an ops request (default 10s); the store's own
	// per-operation timeout normally fires first.
	OpTimeout time.Duration
	// BatchTimeout bounds a whole batch (default 50s, under the server's 60s write timeout).
	BatchTimeout time.Duration
	// DegradedTimeout replaces OpTimeout for DegradedWindow after a tenant's store
	// reported its servers unreachable (defaults 500ms and 10s), so a tenant whose
	// MongoDB is down gets its 503 quickly.
	DegradedTimeout, DegradedWindow time.Duration
	Log                             logr.Logger
}

// Handler is the gateway's http.Handler.
type Handler struct {
	o        Options
	degraded *failFast
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
	return &Handler{o: o, degraded: newFailFast(o.DegradedWindow, o.DegradedTimeout)}
}

// ServeHTTP routes a request:
//
//	POST /v1/namespaces/{namespace}/persistences/{name}/ops
//	POST /v1/namespaces/{namespace}/persistences/{name}/batch
//	GET  /v1/openapi.yaml
//	GET  /healthz, /readyz
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	route, code := h.serve(w, r)
	h.o.Metrics.observeRequest(route, code, time.Since(start))
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) (string, Code) {
	path := r.URL.Path
	switch path {
	case "/healthz":
		writeText(w, http.StatusOK, "ok")
		return routeHealth, ""
	case "/readyz":
		if h.o.Tenants != nil && !h.o.Tenants.Ready() {
			return routeHealth, writeError(w, apiErrorf(CodeUnavailable, "tenant registry has not synced yet"))
		}
		writeText(w, http.StatusOK, "ok")
		return routeHealth, ""
	case "/v1/openapi.yaml":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return routeOpenAPI, writeMethodNotAllowed(w, "GET, HEAD")
		}
		if _, err := h.authenticate(r); err != nil {
			return routeOpenAPI, writeError(w, err)
		}
		w.Header().Set("Content-Type", "application/yaml")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(OpenAPI)
		return routeOpenAPI, ""
	}
	namespace, name, action, ok := parseTenantPath(path)
	if !ok {
		// Authenticate first so that an anonymous caller learns nothing about routes.
		if _, err := h.authenticate(r); err != nil {
			return routeOther, writeError(w, err)
		}
		return routeOther, writeError(w, apiErrorf(CodeNotFound, "no route %s", path))
	}
	route := routeOps
	if action == "batch" {
		route = routeBatch
	}
	if r.Method != http.MethodPost {
		return route, writeMethodNotAllowed(w, "POST")
	}
	return route, writeError(w, h.serveTenant(w, r, namespace, name, route))
}

// serveTenant runs the ops and batch calls. The order of checks is part of the
// contract: authentication (401), body (413/400), authorization (403), tenant
// (404/503). Authorization comes before the tenant lookup, so a caller that may
// not see a tenant gets the same 403 whether or not it exists.
func (h *Handler) serveTenant(w http.ResponseWriter, r *http.Request, namespace, name, route string) error {
	id, err := h.authenticate(r)
	if err != nil {
		return err
	}
	if r.ContentLength > h.o.Limits.MaxBodyBytes {
		return apiErrorf(CodeTooLarge, "request body is larger than %d bytes", h.o.Limits.MaxBodyBytes)
	}
	body, err := readBody(r.Body, h.o.Limits.MaxBodyBytes)
	if err != nil {
		return err
	}
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
	if err := h.authorize(r.Context(), id, namespace, name, reqs); err != nil {
		return err
	}
	store, release, err := h.o.Tenants.Acquire(namespace, name)
	if err != nil {
		return err
	}
	defer release()
	if route == routeOps {
		key := namespace + "/" + name
		ctx, cancel := context.WithTimeout(r.Context(), h.degraded.deadline(key, h.o.OpTimeout))
		defer cancel()
		res, err := store.Do(ctx, reqs[0])
		h.degraded.observe(key, err)
		if err != nil {
			return err
		}
		writeResult(w, res)
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.o.BatchTimeout)
	defer cancel()
	results, errs := store.Batch(ctx, reqs)
	writeBatch(w, results, errs)
	return nil
}

// authenticate returns the caller of a request or a 401/503 error.
func (h *Handler) authenticate(r *http.Request) (*Identity, error) {
	auth := r.Header.Get("Authorization")
	token, found := strings.CutPrefix(auth, "Bearer ")
	token = strings.TrimSpace(token)
	if !found || token == "" {
		return nil, apiErrorf(CodeUnauthorized, "a bearer token is required")
	}
	id, err := h.o.Authenticator.Authenticate(r.Context(), token)
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return nil, apiErrorf(CodeUnauthorized, "the bearer token was not accepted")
	case err != nil:
		h.o.Log.Error(err, "authentication failed")
		return nil, apiErrorf(CodeUnavailable, "authentication is unavailable, retry")
	}
	return id, nil
}

// authorize checks every verb the operations need (at most two reviews).
func (h *Handler) authorize(ctx context.Context, id *Identity, namespace, name string, reqs []persist.Request) error {
	needRead, needWrite := false, false
	for i := range reqs {
		if verbOf(string(reqs[i].Op)) == VerbWrite {
			needWrite = true
		} else {
			needRead = true
		}
	}
	for _, v := range []struct {
		need bool
		verb string
	}{{needRead, VerbRead}, {needWrite, VerbWrite}} {
		if !v.need {
			continue
		}
		allowed, _, err := h.o.Authorizer.Authorize(ctx, id, namespace, name, v.verb)
		if err != nil {
			h.o.Log.Error(err, "authorization failed")
			return apiErrorf(CodeUnavailable, "authorization is unavailable, retry")
		}
		if !allowed {
			return apiErrorf(CodeForbidden, "%q may not %s data of backtestpersistences %s/%s", id.User, v.verb, namespace, name)
		}
	}
	return nil
}

// parseTenantPath splits /v1/namespaces/{ns}/persistences/{name}/{ops|batch}.
func parseTenantPath(p string) (namespace, name, action string, ok bool) {
	rest, found := strings.CutPrefix(p, "/v1/namespaces/")
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[1] != "persistences" || parts[0] == "" || parts[2] == "" {
		return "", "", "", false
	}
	if parts[3] != "ops" && parts[3] != "batch" {
		return "", "", "", false
	}
	return parts[0], parts[2], parts[3], true
}

// writeError writes err as a JSON error (nothing for nil) and returns its code.
func writeError(w http.ResponseWriter, err error) Code {
	e := classify(err)
	if e == nil {
		return ""
	}
	if e.Code == CodeUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	body, _ := json.Marshal(e)
	writeJSON(w, e.Code.Status(), body)
	return e.Code
}

func writeMethodNotAllowed(w http.ResponseWriter, allow string) Code {
	w.Header().Set("Allow", allow)
	return writeError(w, apiErrorf(CodeMethod, "method not allowed; use %s", allow))
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeText(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(s))
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

func writeResult(w http.ResponseWriter, res persist.Result) {
	buf := make([]byte, 0, len(res.Value)+16)
	writeJSON(w, http.StatusOK, appendResult(buf, res))
}

// writeBatch writes {"results":[...]}: a result, or {"error":{code,message}} per operation.
func writeBatch(w http.ResponseWriter, results []persist.Result, errs []error) {
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
	writeJSON(w, http.StatusOK, buf)
}
