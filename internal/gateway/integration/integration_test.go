package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/gateway"
	"github.com/backtestpersistence/operator/internal/infra"
	"github.com/backtestpersistence/operator/internal/persist"
	"github.com/backtestpersistence/operator/internal/testenv"
)

// apiError decodes an error body.
func apiError(t *testing.T, body []byte) gateway.Error {
	t.Helper()
	var e gateway.Error
	if err := json.Unmarshal(body, &e); err != nil || e.Code == "" || e.Message == "" {
		t.Fatalf("not a JSON error {code,message}: %s", body)
	}
	return e
}

// Requests of every route, for the authorization matrix.
var (
	stateWrite = `{"kind":"state","op":"write","key":{"signalId":"auth","bucketName":"b"},"value":{"n":1},"when":1}`
	stateRead  = `{"kind":"state","op":"read","key":{"signalId":"auth","bucketName":"b"}}`
	memRemove  = `{"kind":"memory","op":"remove","key":{"signalId":"s","bucketName":"b","memoryId":"m"}}`
	memHas     = `{"kind":"memory","op":"has","key":{"signalId":"s","bucketName":"b","memoryId":"m"}}`
	measList   = `{"kind":"measure","op":"list","key":{"bucket":"b"}}`
)

type route struct {
	name, method, path, body string
	write                    bool
}

func tenantRoutes(ns, name string) []route {
	return []route{
		{"ops write", "POST", opsPath(ns, name), stateWrite, true},
		{"ops read", "POST", opsPath(ns, name), stateRead, false},
		{"ops has", "POST", opsPath(ns, name), memHas, false},
		{"ops list", "POST", opsPath(ns, name), measList, false},
		{"ops remove", "POST", opsPath(ns, name), memRemove, true},
		{"batch read", "POST", batchPath(ns, name), `{"ops":[` + stateRead + `,` + memHas + `]}`, false},
		{"batch write", "POST", batchPath(ns, name), `{"ops":[` + stateRead + `,` + stateWrite + `]}`, true},
	}
}

func TestAuthenticationAndAuthorization(t *testing.T) {
	g := suite.gws[0]
	tok := suite.tokens
	a, b := suite.a, suite.b
	for _, r := range tenantRoutes(a.ns, a.name) {
		t.Run(r.name, func(t *testing.T) {
			check := func(who, token string, want int) {
				t.Helper()
				status, body := call(g, r.method, token, r.path, []byte(r.body))
				if status != want {
					t.Fatalf("%s on %s: status %d, want %d: %s", who, r.path, status, want, body)
				}
				if want != 200 {
					apiError(t, body)
				}
			}
			check("A's writer", tok["a-writer"], 200)
			check("no token", "", 401)
			check("a forged token", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", 401)
			check("A's writer with a token for the API server's audience", tok["a-writer-api-audience"], 401)
			if r.write {
				check("A's reader", tok["a-reader"], 403)
			} else {
				check("A's reader", tok["a-reader"], 200)
			}
			// The same route of tenant B.
			br := r
			br.path = strings.Replace(r.path, "/namespaces/"+a.ns+"/", "/namespaces/"+b.ns+"/", 1)
			status, body := call(g, br.method, tok["a-writer"], br.path, []byte(br.body))
			if status != 403 || apiError(t, body).Code != gateway.CodeForbidden {
				t.Fatalf("A's writer on B: %d %s", status, body)
			}
			if status, body := call(g, br.method, tok["b-writer"], br.path, []byte(br.body)); status != 200 {
				t.Fatalf("B's writer on B: %d %s", status, body)
			}
			// A tenant that does not exist looks exactly like one the caller may not see.
			ghost := strings.Replace(br.path, "/persistences/"+b.name+"/", "/persistences/ghost/", 1)
			if status, body := call(g, br.method, tok["a-writer"], ghost, []byte(br.body)); status != 403 {
				t.Fatalf("A's writer on a nonexistent tenant of B's namespace: %d %s", status, body)
			}
			// In a namespace where the caller may read, an unknown tenant is 404.
			ghostA := strings.Replace(r.path, "/persistences/"+a.name+"/", "/persistences/ghost/", 1)
			if status, body := call(g, r.method, tok["a-writer"], ghostA, []byte(r.body)); status != 404 || apiError(t, body).Code != gateway.CodeNotFound {
				t.Fatalf("A's writer on an unknown tenant of its namespace: %d %s", status, body)
			}
		})
	}
	t.Run("reader cannot write", func(t *testing.T) {
		w := `{"kind":"state","op":"write","key":{"signalId":"reader","bucketName":"b"},"value":1,"when":1}`
		if status, _ := post(g, tok["a-reader"], opsPath(a.ns, a.name), w); status != 403 {
			t.Fatalf("reader write: %d", status)
		}
		res, err := a.direct.Do(context.Background(), persist.Request{Kind: persist.KindState, Op: persist.OpRead,
			Key: map[string]any{"signalId": "reader", "bucketName": "b"}})
		if err != nil || string(res.Value) != "null" {
			t.Fatalf("the reader's write reached the store: %s %v", res.Value, err)
		}
	})
	t.Run("openapi", func(t *testing.T) {
		status, body := call(g, "GET", tok["a-reader"], "/v1/openapi.yaml", nil)
		docs, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "docs", "openapi.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if status != 200 || string(body) != string(docs) {
			t.Fatalf("openapi: %d; served document differs from docs/openapi.yaml", status)
		}
		if status, _ := call(g, "GET", "", "/v1/openapi.yaml", nil); status != 401 {
			t.Fatalf("openapi without a token: %d", status)
		}
	})
	t.Run("probes and unknown routes", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz"} {
			if status, body := call(g, "GET", "", p, nil); status != 200 {
				t.Fatalf("%s: %d %s", p, status, body)
			}
		}
		if status, _ := call(g, "GET", "", "/v1/namespaces/x/other", nil); status != 401 {
			t.Fatalf("unknown route without token: %d", status)
		}
		if status, body := call(g, "GET", tok["a-writer"], "/v1/namespaces/x/other", nil); status != 404 {
			t.Fatalf("unknown route: %d %s", status, body)
		}
		if status, body := call(g, "GET", tok["a-writer"], opsPath(a.ns, a.name), nil); status != 405 {
			t.Fatalf("GET on ops: %d %s", status, body)
		}
	})
}

// TestTwoReplicasReadYourWrites: a write through one replica is read back through
// the other, 1000 alternating operations; exactly one replica leads and writes
// StoreReady and status.endpoint.
func TestTwoReplicasReadYourWrites(t *testing.T) {
	a := suite.a
	tok := suite.tokens["a-writer"]
	for i := 0; i < 500; i++ {
		w, r := suite.gws[i%2], suite.gws[(i+1)%2]
		key := fmt.Sprintf(`{"signalId":"rw","bucketName":"b%d"}`, i%7)
		val := fmt.Sprintf(`{"i":%d,"s":"BTC/USDT"}`, i)
		status, body := post(w, tok, opsPath(a.ns, a.name), `{"kind":"state","op":"write","key":`+key+`,"value":`+val+`,"when":`+fmt.Sprint(i+1)+`}`)
		if status != 200 || string(body) != `{}` {
			t.Fatalf("write %d via %s: %d %s", i, w.url, status, body)
		}
		status, body = post(r, tok, opsPath(a.ns, a.name), `{"kind":"state","op":"read","key":`+key+`}`)
		if status != 200 || string(body) != `{"value":`+val+`}` {
			t.Fatalf("read %d via %s: %d %s, want value %s", i, r.url, status, body, val)
		}
	}
	var l *instance
	eventually(t, 30*time.Second, func() error {
		if l = leader(); l == nil {
			return fmt.Errorf("no single leader yet")
		}
		for _, tn := range []*tenantEnv{suite.a, suite.b} {
			var obj v1.BacktestPersistence
			if err := suite.k8s.Get(context.Background(), client.ObjectKeyFromObject(tn.obj), &obj); err != nil {
				return err
			}
			c := meta.FindStatusCondition(obj.Status.Conditions, v1.ConditionStoreReady)
			if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != obj.Generation {
				return fmt.Errorf("%s StoreReady: %+v", tn.ns, c)
			}
			if obj.Status.Endpoint != l.endpoint {
				return fmt.Errorf("%s endpoint %q, want the leader's %q", tn.ns, obj.Status.Endpoint, l.endpoint)
			}
		}
		return nil
	})
}

// TestCandleWriteReturnsStoredCandles: a candle write answers the candles it stored
// (first written wins, ascending), and the other replica reads exactly those.
func TestCandleWriteReturnsStoredCandles(t *testing.T) {
	a := suite.a
	tok := suite.tokens["a-writer"]
	key := `{"exchangeName":"gw","symbol":"BTC/USDT","interval":"1m"}`
	c := func(ts int64, open string) string {
		return fmt.Sprintf(`{"timestamp":%d,"open":%s,"high":2,"low":0.5,"close":1.5,"volume":10}`, ts, open)
	}
	const base, m = int64(1767225600000), int64(60_000)
	status, body := post(suite.gws[0], tok, opsPath(a.ns, a.name), `{"kind":"candle","op":"write","key":`+key+`,"value":[`+c(base+m, "1")+`]}`)
	if want := `{"value":[` + c(base+m, "1") + `]}`; status != 200 || string(body) != want {
		t.Fatalf("first write: %d %s, want %s", status, body, want)
	}
	forming := c(time.Now().UnixMilli()/m*m, "9")
	status, body = post(suite.gws[1], tok, opsPath(a.ns, a.name),
		`{"kind":"candle","op":"write","key":`+key+`,"value":[`+forming+`,`+c(base+m, "7")+`,`+c(base, "3.25")+`]}`)
	stored := c(base, "3.25") + `,` + c(base+m, "1")
	if want := `{"value":[` + stored + `]}`; status != 200 || string(body) != want {
		t.Fatalf("second write: %d %s, want %s", status, body, want)
	}
	for _, g := range suite.gws {
		status, body = post(g, tok, opsPath(a.ns, a.name), `{"kind":"candle","op":"read","key":`+key+`,"limit":2,"since":`+fmt.Sprint(base)+`,"until":`+fmt.Sprint(base+2*m)+`}`)
		if want := `{"value":[` + stored + `]}`; status != 200 || string(body) != want {
			t.Fatalf("read via %s: %d %s, want %s", g.url, status, body, want)
		}
	}
}

// TestBadInput: each malformed request gets its 4xx JSON error and nothing is written.
func TestBadInput(t *testing.T) {
	a, g := suite.a, suite.gws[1]
	tok := suite.tokens["a-writer"]
	before := countDocuments(t, a)
	long := strings.Repeat("x", persist.DefaultMaxKeyBytes+1)
	huge := `"` + strings.Repeat("y", persist.DefaultMaxPayloadBytes+1) + `"`
	cases := []struct {
		name, path, body string
		status           []int
	}{
		{"malformed JSON", "ops", `{"kind":"state","op":"write",`, []int{400}},
		{"not an object", "ops", `"state"`, []int{400}},
		{"trailing garbage", "ops", `{"kind":"log","op":"write","key":{},"value":[]}x`, []int{400}},
		{"unknown field", "ops", `{"kind":"state","op":"write","key":{"signalId":"x","bucketName":"b"},"value":1,"when":1,"extra":true}`, []int{400}},
		{"unknown kind", "ops", `{"kind":"trade","op":"write","key":{},"value":1}`, []int{400}},
		{"unknown op", "ops", `{"kind":"state","op":"upsert","key":{"signalId":"x","bucketName":"b"},"value":1}`, []int{400}},
		{"op the kind lacks", "ops", `{"kind":"signal","op":"remove","key":{"symbol":"a","strategyName":"b","exchangeName":"c"}}`, []int{400}},
		{"key field wrong type", "ops", `{"kind":"state","op":"write","key":{"signalId":7,"bucketName":"b"},"value":1,"when":1}`, []int{400}},
		{"bool as string", "ops", `{"kind":"storage","op":"write","key":{"backtest":"yes"},"value":[]}`, []int{400}},
		{"when wrong type", "ops", `{"kind":"state","op":"write","key":{"signalId":"x","bucketName":"b"},"value":1,"when":"soon"}`, []int{400}},
		{"value missing", "ops", `{"kind":"state","op":"write","key":{"signalId":"x","bucketName":"b"},"when":1}`, []int{400}},
		{"empty key field", "ops", `{"kind":"state","op":"write","key":{"signalId":"","bucketName":"b"},"value":1,"when":1}`, []int{400}},
		{"missing key field", "ops", `{"kind":"state","op":"write","key":{"signalId":"x"},"value":1,"when":1}`, []int{400}},
		{"overlong key field", "ops", `{"kind":"state","op":"write","key":{"signalId":"` + long + `","bucketName":"b"},"value":1,"when":1}`, []int{400, 413}},
		{"overlong list item id", "ops", `{"kind":"storage","op":"write","key":{"backtest":true},"value":[{"id":"` + long + `"}]}`, []int{400, 413}},
		{"payload over the store's limit", "ops", `{"kind":"state","op":"write","key":{"signalId":"x","bucketName":"b"},"value":` + huge + `,"when":1}`, []int{413}},
		{"body over the gateway's limit", "ops", `{"kind":"log","op":"write","key":{},"value":["` + strings.Repeat("z", int(gateway.DefaultLimits.MaxBodyBytes)) + `"]}`, []int{413}},
		{"list value not an array", "ops", `{"kind":"log","op":"write","key":{},"value":{"id":"a"}}`, []int{400}},
		{"batch with one bad op", "batch", `{"ops":[{"kind":"state","op":"write","key":{"signalId":"x","bucketName":"b"},"value":1,"when":1},{"kind":"nope","op":"read"}]}`, []int{400}},
		{"batch not an array", "batch", `{"ops":{"kind":"log"}}`, []int{400}},
		{"batch too many ops", "batch", `{"ops":[` + strings.TrimSuffix(strings.Repeat(`{"kind":"log","op":"write","key":{},"value":[]},`, gateway.DefaultLimits.MaxBatchOps+1), ",") + `]}`, []int{413}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := opsPath(a.ns, a.name)
			if c.path == "batch" {
				path = batchPath(a.ns, a.name)
			}
			status, body := post(g, tok, path, c.body)
			ok := false
			for _, s := range c.status {
				ok = ok || s == status
			}
			if !ok {
				t.Fatalf("status %d, want one of %v: %.300s", status, c.status, body)
			}
			e := apiError(t, body)
			if (status == 400 && e.Code != gateway.CodeInvalidRequest) || (status == 413 && e.Code != gateway.CodeTooLarge) {
				t.Fatalf("status %d with code %s", status, e.Code)
			}
		})
	}
	if after := countDocuments(t, a); after != before {
		t.Fatalf("bad input changed the database: %d documents before, %d after", before, after)
	}
}

// countDocuments counts every document of the tenant's database.
func countDocuments(t *testing.T, tn *tenantEnv) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := tn.mclient.Database(infra.DatabaseName(tn.obj))
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, name := range names {
		c, err := db.Collection(name).CountDocuments(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		n += c
	}
	return n
}

// TestRedisDownStillServesReads: with the tenant's Redis killed, reads are answered from MongoDB.
func TestRedisDownStillServesReads(t *testing.T) {
	a := suite.a
	if a.redis.External() {
		t.Skip("REDIS_URL names an external Redis: this test must kill and restart it")
	}
	tok := suite.tokens["a-writer"]
	key := `{"signalId":"redis-down","bucketName":"b"}`
	if status, body := post(suite.gws[0], tok, opsPath(a.ns, a.name), `{"kind":"state","op":"write","key":`+key+`,"value":{"v":"kept"},"when":1}`); status != 200 {
		t.Fatalf("write: %d %s", status, body)
	}
	if err := a.redis.Stop(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := a.redis.Start(); err != nil {
			t.Errorf("restart redis: %v", err)
		}
	}()
	for _, g := range suite.gws {
		for i := 0; i < 3; i++ {
			status, body := post(g, tok, opsPath(a.ns, a.name), `{"kind":"state","op":"read","key":`+key+`}`)
			if status != 200 || string(body) != `{"value":{"v":"kept"}}` {
				t.Fatalf("read with Redis down via %s: %d %s", g.url, status, body)
			}
		}
	}
}

// TestMongoDownIsRetryable: with tenant B's MongoDB killed, B's requests get 503
// while A is unaffected; once the controller reports MongoReady=False the 503
// carries the condition's message without touching the store, and the leader
// reports StoreReady=False; when MongoDB is back, B is served again.
func TestMongoDownIsRetryable(t *testing.T) {
	a, b := suite.a, suite.b
	if b.mongo.External() {
		t.Skip("MONGODB_URI names an external MongoDB: this test must kill and restart it")
	}
	ctx := context.Background()
	tokA, tokB := suite.tokens["a-writer"], suite.tokens["b-writer"]
	readB := `{"kind":"state","op":"read","key":{"signalId":"mongo-down","bucketName":"b"}}`
	readA := `{"kind":"state","op":"read","key":{"signalId":"auth","bucketName":"b"}}`
	if err := b.mongo.Stop(); err != nil {
		t.Fatal(err)
	}
	restored := false
	defer func() {
		if !restored {
			_ = b.mongo.Start()
			_ = setConditions(ctx, b, metav1.ConditionTrue, "Succeeded", "probe succeeded", v1.ConditionMongoReady)
		}
	}()
	done := make(chan [2]int, 1)
	go func() {
		s, _ := post(suite.gws[1], tokB, opsPath(b.ns, b.name), readB)
		sa, _ := post(suite.gws[1], tokA, opsPath(a.ns, a.name), readA)
		done <- [2]int{s, sa}
	}()
	for i := 0; i < 20; i++ { // A keeps working while B's request waits for its MongoDB
		if status, body := post(suite.gws[0], tokA, opsPath(a.ns, a.name), readA); status != 200 {
			t.Fatalf("tenant A while B's MongoDB is down: %d %s", status, body)
		}
	}
	if got := <-done; got[0] != 503 || got[1] != 200 {
		t.Fatalf("B with MongoDB down: %d (want 503); A through the same replica: %d", got[0], got[1])
	}
	const msg = "dial tcp: connection refused"
	if err := setConditions(ctx, b, metav1.ConditionFalse, "Unreachable", msg, v1.ConditionMongoReady); err != nil {
		t.Fatal(err)
	}
	for _, g := range suite.gws {
		eventually(t, 30*time.Second, func() error {
			status, body := post(g, tokB, opsPath(b.ns, b.name), readB)
			if status != http.StatusServiceUnavailable || !strings.Contains(string(body), msg) {
				return fmt.Errorf("B via %s: %d %s", g.url, status, body)
			}
			return nil
		})
	}
	eventually(t, 30*time.Second, func() error {
		var obj v1.BacktestPersistence
		if err := suite.k8s.Get(ctx, client.ObjectKeyFromObject(b.obj), &obj); err != nil {
			return err
		}
		c := meta.FindStatusCondition(obj.Status.Conditions, v1.ConditionStoreReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "MongoNotReady" || !strings.Contains(c.Message, msg) {
			return fmt.Errorf("StoreReady: %+v", c)
		}
		return nil
	})
	if status, body := post(suite.gws[1], tokA, opsPath(a.ns, a.name), readA); status != 200 {
		t.Fatalf("tenant A: %d %s", status, body)
	}
	if err := b.mongo.Start(); err != nil {
		t.Fatal(err)
	}
	if err := setConditions(ctx, b, metav1.ConditionTrue, "Succeeded", "probe succeeded", v1.ConditionMongoReady); err != nil {
		t.Fatal(err)
	}
	restored = true
	for _, g := range suite.gws {
		eventually(t, 60*time.Second, func() error {
			if status, body := post(g, tokB, opsPath(b.ns, b.name), readB); status != 200 {
				return fmt.Errorf("B via %s after recovery: %d %s", g.url, status, body)
			}
			return nil
		})
	}
}

// TestMetrics: per-kind/op latency, errors and cache hits reach controller-runtime's registry.
func TestMetrics(t *testing.T) {
	a := suite.a
	tok := suite.tokens["a-writer"]
	read := `{"kind":"session","op":"read","key":{"strategyName":"s","exchangeName":"e","frameName":"","symbol":"BTC/USDT","backtest":true}}`
	if status, body := post(suite.gws[0], tok, opsPath(a.ns, a.name), `{"kind":"session","op":"write","key":{"strategyName":"s","exchangeName":"e","frameName":"","symbol":"BTC/USDT","backtest":true},"value":{"x":1},"when":5}`); status != 200 {
		t.Fatalf("write: %d %s", status, body)
	}
	for i := 0; i < 3; i++ {
		if status, body := post(suite.gws[0], tok, opsPath(a.ns, a.name), read); status != 200 {
			t.Fatalf("read: %d %s", status, body)
		}
	}
	// An earlier test restarted Redis: the cache serves again once its recovery has
	// rotated the epoch, so the hit is waited for rather than assumed.
	eventually(t, 30*time.Second, func() error {
		if status, body := post(suite.gws[0], tok, opsPath(a.ns, a.name), read); status != 200 {
			return fmt.Errorf("read: %d %s", status, body)
		}
		if hits := cacheHits("session", "read"); hits <= 0 {
			return fmt.Errorf("no cache hit counted for session reads yet")
		}
		return nil
	})
	if status, _ := post(suite.gws[0], "", opsPath(a.ns, a.name), read); status != 401 {
		t.Fatalf("no token: %d", status)
	}
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	find := func(name string, labels map[string]string) float64 {
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
		metric:
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
						continue metric
					}
				}
				if m.GetHistogram() != nil {
					return float64(m.GetHistogram().GetSampleCount())
				}
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
		return -1
	}
	sessionRead := map[string]string{"kind": "session", "op": "read"}
	for name, labels := range map[string]map[string]string{
		"backtestpersistence_store_operation_duration_seconds": sessionRead,
		"backtestpersistence_store_cache_hits_total":           sessionRead,
		"backtestpersistence_gateway_requests_total":           {"route": "ops", "code": "OK"},
		"backtestpersistence_gateway_request_duration_seconds": {"route": "ops"},
		"backtestpersistence_gateway_auth_failures_total":      {"code": "Unauthorized"},
		"backtestpersistence_gateway_tenants":                  {"state": "serving"},
	} {
		if v := find(name, labels); v <= 0 {
			t.Errorf("%s%v = %v, want > 0", name, labels, v)
		}
	}
}

// cacheHits is the store's cache hit counter of kind and op (-1 when absent).
func cacheHits(kind, op string) float64 {
	return storeMetric("backtestpersistence_store_cache_hits_total", kind, op)
}

// storeOps is the number of store operations of a kind and op the gateways ran.
func storeOps(kind, op string) float64 {
	return storeMetric("backtestpersistence_store_operation_duration_seconds", kind, op)
}

// storeMetric reads a store counter, or a store histogram's count, by kind and op.
func storeMetric(name, kind, op string) float64 {
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		return -1
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == kind && labels["op"] == op {
				if h := m.GetHistogram(); h != nil {
					return float64(h.GetSampleCount())
				}
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}
