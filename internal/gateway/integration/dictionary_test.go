package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/backtestpersistence/operator/internal/infra"
)

// TestDictionary: backtest-kit 20.x's Dictionary through both replicas: a snapshot
// written through one is read through the other, a reader may read but not write,
// the document has @backtest-kit/mongo 20.1.0's layout, and the metrics carry the kind.
func TestDictionary(t *testing.T) {
	a := suite.a
	w, r := suite.gws[0], suite.gws[1]
	ops := opsPath(a.ns, a.name)
	sig := fmt.Sprintf("dict-%d", time.Now().UnixNano())
	key := `{"signalId":"` + sig + `","dictionaryName":"levels"}`
	read := `{"kind":"dictionary","op":"read","key":` + key + `}`
	if status, body := post(r, suite.tokens["a-reader"], ops, read); status != 200 || string(body) != `{"value":null}` {
		t.Fatalf("read before any write: %d %s", status, body)
	}
	for i, snap := range []string{
		`{"id":"` + sig + `_levels","data":{"tp.1":{"value":52000.5,"when":1767225600000},"$sl":{"value":[[1,2]],"when":1767225600000}},"when":1767225600000}`,
		`{"id":"` + sig + `_levels","data":{"only":{"value":null,"when":1767225660000}},"when":1767225660000}`,
	} {
		when := []string{"1767225600000", "1767225660000"}[i]
		if status, body := post(w, suite.tokens["a-writer"], ops, `{"kind":"dictionary","op":"write","key":`+key+`,"value":`+snap+`,"when":`+when+`}`); status != 200 {
			t.Fatalf("write %d: %d %s", i, status, body)
		}
		if status, body := post(r, suite.tokens["a-reader"], ops, read); status != 200 || string(body) != `{"value":`+snap+`}` {
			t.Fatalf("read of write %d through the other replica: %d %s", i, status, body)
		}
	}
	if status, body := post(w, suite.tokens["a-reader"], ops, `{"kind":"dictionary","op":"write","key":`+key+`,"value":{},"when":1}`); status != 403 {
		t.Fatalf("reader write: %d %s", status, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var doc bson.M
	coll := a.mclient.Database(infra.DatabaseName(a.obj)).Collection("dictionary-items")
	if err := coll.FindOne(ctx, bson.D{{Key: "signalId", Value: sig}, {Key: "dictionaryName", Value: "levels"}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc["when"] != int64(1767225660000) || doc["payload"] == nil || doc["createDate"] == nil || doc["updatedDate"] == nil {
		t.Fatalf("dictionary document: %v", doc)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{{Key: "signalId", Value: sig}}); err != nil || n != 1 {
		t.Fatalf("dictionary-items holds %d documents of the signal (%v), want 1", n, err)
	}

	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range families {
		if f.GetName() != "backtestpersistence_store_operation_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == "dictionary" && m.GetHistogram().GetSampleCount() > 0 {
				seen[labels["op"]] = true
			}
		}
	}
	if !seen["read"] || !seen["write"] {
		t.Fatalf("no dictionary read and write in the operation metrics: %v", seen)
	}
}
