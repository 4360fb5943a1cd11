package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/backtestpersistence/operator/internal/persist"
	"github.com/backtestpersistence/operator/internal/tenant"
)

// The tests in this file check the HTTP layer's own logic with in-memory fakes of
// its interfaces; the integration suite runs the same routes against the real
// store, API server, FerretDB and redis-server.

type fakeAuthn map[string]*Identity

func (f fakeAuthn) Authenticate(_ context.Context, token string) (*Identity, error) {
	if token == "broken" {
		return nil, errors.New("api server down")
	}
	if id, ok := f[token]; ok {
		return id, nil
	}
	return nil, ErrUnauthenticated
}

// fakeAuthz allows "user/verb/namespace/name" entries.
type fakeAuthz map[string]bool

func (f fakeAuthz) Authorize(_ context.Context, id *Identity, ns, name, verb string) (bool, string, error) {
	return f[id.User+"/"+verb+"/"+ns+"/"+name], "", nil
}

// memStore keeps records by (kind, key) — enough to see what the handler passes on.
type memStore struct {
	mu   sync.Mutex
	data map[string]json.RawMessage
	err  error
}

func (m *memStore) key(r persist.Request) string {
	b, _ := json.Marshal(r.Key)
	return string(r.Kind) + string(b)
}

func (m *memStore) Do(_ context.Context, r persist.Request) (persist.Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return persist.Result{}, m.err
	}
	switch r.Op {
	case persist.OpWrite:
		m.data[m.key(r)] = r.Value
		return persist.Result{}, nil
	case persist.OpHas:
		_, ok := m.data[m.key(r)]
		return persist.Result{Has: &ok}, nil
	case persist.OpRemove:
		delete(m.data, m.key(r))
		return persist.Result{}, nil
	default:
		v, ok := m.data[m.key(r)]
		if !ok {
			v = json.RawMessage("null")
		}
		return persist.Result{Value: v}, nil
	}
}

func (m *memStore) Batch(ctx context.Context, rs []persist.Request) ([]persist.Result, []error) {
	res := make([]persist.Result, len(rs))
	errs := make([]error, len(rs))
	for i := range rs {
		res[i], errs[i] = m.Do(ctx, rs[i])
	}
	return res, errs
}

type fakeTenants struct {
	stores      map[string]*memStore
	unavailable map[string]*tenant.UnavailableError
}

func (f *fakeTenants) Acquire(ns, name string) (Store, func(), error) {
	if u, ok := f.unavailable[ns+"/"+name]; ok {
		return nil, nil, u
	}
	s, ok := f.stores[ns+"/"+name]
	if !ok {
		return nil, nil, tenant.ErrNotFound
	}
	return s, func() {}, nil
}

func (f *fakeTenants) Ready() bool { return true }

func newTestHandler() (*Handler, *fakeTenants) {
	tn := &fakeTenants{
		stores:      map[string]*memStore{"a/t": {data: map[string]json.RawMessage{}}},
		unavailable: map[string]*tenant.UnavailableError{"a/down": {Reason: "MongoNotReady", Message: "MongoReady is False: connection refused"}},
	}
	h := NewHandler(Options{
		Tenants: tn,
		Authenticator: fakeAuthn{
			"writer": {User: "writer"}, "reader": {User: "reader"}, "admin": {User: "admin"},
		},
		Authorizer: fakeAuthz{
			"writer/get/a/t": true, "writer/update/a/t": true, "reader/get/a/t": true,
			"admin/get/a/t": true, "admin/update/a/t": true, "admin/get/a/missing": true, "admin/get/a/down": true,
		},
		Metrics: NewMetrics(prometheus.NewRegistry()),
		Limits:  Limits{MaxBodyBytes: 1024, MaxBatchOps: 3},
	})
	return h, tn
}

// do runs one request through h (without a server; runnable_test covers the server).
func do(t *testing.T, h *Handler, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	var rc fasthttp.RequestCtx
	rc.Request.Header.SetMethod(method)
	rc.Request.SetRequestURI(path)
	if token != "" {
		rc.Request.Header.Set("Authorization", "Bearer "+token)
	}
	rc.Request.SetBodyString(body)
	h.Serve(context.Background(), &rc)
	raw := rc.Response.Body()
	var out map[string]any
	if string(rc.Response.Header.ContentType()) == "application/json" {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", method, path, raw)
		}
	}
	return rc.Response.StatusCode(), out
}

const (
	opsPath   = "/v1/namespaces/a/persistences/t/ops"
	batchPath = "/v1/namespaces/a/persistences/t/batch"
	stateKey  = `"key":{"signalId":"s","bucketName":"b"}`
	dictKey   = `"key":{"signalId":"s","dictionaryName":"d"}`
)

func TestHandlerStatusMatrix(t *testing.T) {
	h, tn := newTestHandler()
	write := `{"kind":"state","op":"write",` + stateKey + `,"value":{"n":1},"when":1}`
	read := `{"kind":"state","op":"read",` + stateKey + `}`
	dictWrite := `{"kind":"dictionary","op":"write",` + dictKey + `,"value":{"id":"s_d","data":{"k":{"value":1,"when":1}},"when":1},"when":1}`
	cases := []struct {
		name, method, path, token, body string
		status                          int
		code                            Code
	}{
		{"no token", "POST", opsPath, "", read, 401, CodeUnauthorized},
		{"forged token", "POST", opsPath, "forged", read, 401, CodeUnauthorized},
		{"no token on batch", "POST", batchPath, "", `{"ops":[]}`, 401, CodeUnauthorized},
		{"no token on openapi", "GET", "/v1/openapi.yaml", "", "", 401, CodeUnauthorized},
		{"no token on unknown route", "GET", "/v1/elsewhere", "", "", 401, CodeUnauthorized},
		{"authn backend down", "POST", opsPath, "broken", read, 503, CodeUnavailable},
		{"writer writes", "POST", opsPath, "writer", write, 200, ""},
		{"reader reads", "POST", opsPath, "reader", read, 200, ""},
		{"reader cannot write", "POST", opsPath, "reader", write, 403, CodeForbidden},
		{"writer writes a dictionary", "POST", opsPath, "writer", dictWrite, 200, ""},
		{"reader reads a dictionary", "POST", opsPath, "reader", `{"kind":"dictionary","op":"read",` + dictKey + `}`, 200, ""},
		{"reader cannot write a dictionary", "POST", opsPath, "reader", dictWrite, 403, CodeForbidden},
		{"dictionary with a state key", "POST", opsPath, "writer", `{"kind":"dictionary","op":"read",` + stateKey + `}`, 400, CodeInvalidRequest},
		{"dictionary list", "POST", opsPath, "writer", `{"kind":"dictionary","op":"list",` + dictKey + `}`, 400, CodeInvalidRequest},
		{"reader cannot write in a batch", "POST", batchPath, "reader", `{"ops":[` + read + `,` + write + `]}`, 403, CodeForbidden},
		{"other tenant", "POST", "/v1/namespaces/b/persistences/t/ops", "writer", read, 403, CodeForbidden},
		{"nonexistent tenant looks the same", "POST", "/v1/namespaces/b/persistences/nope/ops", "writer", read, 403, CodeForbidden},
		// an empty batch is a read: without access, the same 403 for a tenant that
		// exists, one that does not and one that is down (no 200, 404 or 503 with
		// the other tenant's conditions)
		{"empty batch of another tenant", "POST", "/v1/namespaces/b/persistences/t/batch", "writer", `{"ops":[]}`, 403, CodeForbidden},
		{"empty batch of a nonexistent tenant", "POST", "/v1/namespaces/a/persistences/missing/batch", "writer", `{"ops":[]}`, 403, CodeForbidden},
		{"empty batch of a tenant that is down", "POST", "/v1/namespaces/a/persistences/down/batch", "writer", `{"ops":[]}`, 403, CodeForbidden},
		{"empty batch with access", "POST", batchPath, "reader", `{"ops":[]}`, 200, ""},
		{"allowed but missing", "POST", "/v1/namespaces/a/persistences/missing/ops", "admin", read, 404, CodeNotFound},
		{"not ready", "POST", "/v1/namespaces/a/persistences/down/ops", "admin", read, 503, CodeUnavailable},
		{"bad json", "POST", opsPath, "writer", `{`, 400, CodeInvalidRequest},
		{"too large", "POST", opsPath, "writer", `{"kind":"state","op":"write",` + stateKey + `,"value":"` + strings.Repeat("x", 2000) + `"}`, 413, CodeTooLarge},
		{"too many ops", "POST", batchPath, "writer", `{"ops":[` + read + `,` + read + `,` + read + `,` + read + `]}`, 413, CodeTooLarge},
		{"wrong method", "GET", opsPath, "writer", "", 405, CodeMethod},
		{"unknown route", "GET", "/v1/namespaces/a/persistences/t/other", "writer", "", 404, CodeNotFound},
		{"openapi", "GET", "/v1/openapi.yaml", "reader", "", 200, ""},
		{"healthz", "GET", "/healthz", "", "", 200, ""},
		{"readyz", "GET", "/readyz", "", "", 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := do(t, h, c.method, c.path, c.token, c.body)
			if status != c.status {
				t.Fatalf("status %d, want %d (body %v)", status, c.status, body)
			}
			if c.code != "" && (body["code"] != string(c.code) || body["message"] == "") {
				t.Fatalf("body %v, want code %s and a message", body, c.code)
			}
		})
	}
	if n := len(tn.stores["a/t"].data); n != 2 {
		t.Fatalf("store holds %d records, want only the writer's two", n)
	}
}

func TestHandlerResultsAndBatch(t *testing.T) {
	h, tn := newTestHandler()
	write := `{"kind":"memory","op":"write","key":{"signalId":"s","bucketName":"b","memoryId":"m"},"value":{"x":[1,2]}}`
	has := `{"kind":"memory","op":"has","key":{"signalId":"s","bucketName":"b","memoryId":"m"}}`
	read := `{"kind":"memory","op":"read","key":{"signalId":"s","bucketName":"b","memoryId":"m"}}`
	status, body := do(t, h, "POST", batchPath, "writer", `{"ops":[`+write+`,`+has+`,`+read+`]}`)
	if status != 200 {
		t.Fatalf("batch: %d %v", status, body)
	}
	got, _ := json.Marshal(body)
	if want := `{"results":[{},{"has":true},{"value":{"x":[1,2]}}]}`; string(got) != want {
		t.Fatalf("batch results %s, want %s", got, want)
	}
	tn.stores["a/t"].err = fmt.Errorf("%w: mongo down", persist.ErrUnavailable)
	status, body = do(t, h, "POST", batchPath, "writer", `{"ops":[`+read+`]}`)
	got, _ = json.Marshal(body)
	if status != 200 || !strings.Contains(string(got), `"code":"Unavailable"`) {
		t.Fatalf("batch with store error: %d %s", status, got)
	}
	status, body = do(t, h, "POST", opsPath, "writer", read)
	if status != 503 || body["code"] != "Unavailable" {
		t.Fatalf("op with store error: %d %v", status, body)
	}
	tn.stores["a/t"].err = fmt.Errorf("%w: key too long", persist.ErrTooLarge)
	if status, _ = do(t, h, "POST", opsPath, "writer", read); status != 413 {
		t.Fatalf("store ErrTooLarge: %d", status)
	}
	tn.stores["a/t"].err = fmt.Errorf("%w: bad", persist.ErrInvalid)
	if status, _ = do(t, h, "POST", opsPath, "writer", read); status != 400 {
		t.Fatalf("store ErrInvalid: %d", status)
	}
}

func TestParseTenantPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/v1/namespaces/a/persistences/b/ops":    true,
		"/v1/namespaces/a/persistences/b/batch":  true,
		"/v1/namespaces//persistences/b/ops":     false,
		"/v1/namespaces/a/persistences//ops":     false,
		"/v1/namespaces/a/persistences/b/ops/":   false,
		"/v1/namespaces/a/things/b/ops":          false,
		"/v1/namespaces/a/persistences/b/c/ops":  false,
		"/v2/namespaces/a/persistences/b/ops":    false,
		"/v1/namespaces/a/persistences/b/delete": false,
		// names no namespace or BacktestPersistence can have
		"/v1/namespaces/A/persistences/b/ops":                                false,
		"/v1/namespaces/a.b/persistences/b/ops":                              false,
		"/v1/namespaces/" + strings.Repeat("a", 64) + "/persistences/b/ops":  false,
		"/v1/namespaces/a/persistences/b.c-d/ops":                            true,
		"/v1/namespaces/a/persistences/B/ops":                                false,
		"/v1/namespaces/a/persistences/" + strings.Repeat("b", 254) + "/ops": false,
		"/v1/namespaces/a/persistences/b%00/ops":                             false,
	} {
		if _, _, _, ok := parseTenantPath(p); ok != want {
			t.Errorf("parseTenantPath(%q) = %v, want %v", p, ok, want)
		}
	}
}
