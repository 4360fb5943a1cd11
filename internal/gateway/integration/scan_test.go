package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/backtestpersistence/operator/internal/gateway"
)

// TestScanThroughTheGateway: only a caller granted the scan verb ("list", the
// data-auditor ClusterRole) enumerates a tenant's keys, never another tenant's; a
// worker that reads and writes is refused, alone or with a scan hidden in a batch;
// malformed scans are 400 and read nothing.
func TestScanThroughTheGateway(t *testing.T) {
	g := suite.gws[0]
	tok := suite.tokens
	a, b := suite.a, suite.b
	w := `{"kind":"state","op":"write","key":{"signalId":"scan-me","bucketName":"b"},"value":{"n":1},"when":1}`
	if status, body := post(g, tok["a-writer"], opsPath(a.ns, a.name), w); status != 200 {
		t.Fatalf("write: %d %s", status, body)
	}
	scan := `{"kind":"state","op":"scan","limit":1000}`
	for _, who := range []string{"a-writer", "a-reader"} {
		if status, body := post(g, tok[who], opsPath(a.ns, a.name), scan); status != 403 || apiError(t, body).Code != gateway.CodeForbidden {
			t.Fatalf("%s scan: %d %s", who, status, body)
		}
	}
	batch := `{"ops":[{"kind":"state","op":"read","key":{"signalId":"scan-me","bucketName":"b"}},` + scan + `]}`
	if status, body := post(g, tok["a-writer"], batchPath(a.ns, a.name), batch); status != 403 {
		t.Fatalf("writer batch with a scan: %d %s", status, body)
	}
	status, body := post(g, tok["a-auditor"], opsPath(a.ns, a.name), scan)
	if status != 200 {
		t.Fatalf("auditor scan: %d %s", status, body)
	}
	var res struct {
		Value struct {
			Collection string `json:"collection"`
			Keys       []struct {
				Key map[string]any `json:"key"`
			} `json:"keys"`
			Next *string `json:"next"`
		} `json:"value"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	found := false
	for _, k := range res.Value.Keys {
		found = found || (k.Key["signalId"] == "scan-me" && k.Key["bucketName"] == "b")
	}
	if !found || res.Value.Collection != "state-items" || res.Value.Next != nil {
		t.Fatalf("auditor scan did not list the written key: %s", body)
	}
	if status, body := post(g, tok["a-auditor"], opsPath(b.ns, b.name), scan); status != 403 {
		t.Fatalf("A's auditor scanning B: %d %s", status, body)
	}
	if status, body := post(g, tok["a-auditor"], opsPath(a.ns, a.name), w); status != 403 {
		t.Fatalf("auditor write: %d %s", status, body)
	}
	for _, bad := range []string{
		`{"kind":"state","op":"scan"}`,
		`{"kind":"state","op":"scan","limit":1001}`,
		`{"kind":"state","op":"scan","limit":5,"key":{"signalId":"a","bucketName":"b"}}`,
		`{"kind":"state","op":"scan","limit":5,"after":"!!"}`,
		`{"kind":"state","op":"scan","limit":5,"after":"` + strings.Repeat("A", 300) + `"}`,
		`{"kind":"state","op":"scan","limit":5,"after":"AwUAAAAA"}`,
		`{"kind":"state","op":"scan","limit":5,"after":{"$gt":""}}`,
	} {
		if status, body := post(g, tok["a-auditor"], opsPath(a.ns, a.name), bad); status != 400 || apiError(t, body).Code != gateway.CodeInvalidRequest {
			t.Errorf("%s: %d %s", bad, status, body)
		}
	}
}
