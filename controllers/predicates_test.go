package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	v1 "github.com/backtestpersistence/operator/api/v1"
)

func TestRelevantChange(t *testing.T) {
	base := newObj(1)
	setCondition(base, v1.ConditionMongoReady, metav1.ConditionTrue, v1.ReasonSucceeded, "")
	tests := []struct {
		name   string
		mutate func(*v1.BacktestPersistence)
		want   bool
	}{
		{"own status change", func(o *v1.BacktestPersistence) {
			setCondition(o, v1.ConditionMongoReady, metav1.ConditionFalse, v1.ReasonUnreachable, "")
			o.Status.MongoVersion = "7"
		}, false},
		{"new generation", func(o *v1.BacktestPersistence) { o.Generation++ }, true},
		{"deletion", func(o *v1.BacktestPersistence) { now := metav1.Now(); o.DeletionTimestamp = &now }, true},
		{"finalizer", func(o *v1.BacktestPersistence) { o.Finalizers = []string{v1.Finalizer} }, true},
		{"annotation", func(o *v1.BacktestPersistence) { o.Annotations = map[string]string{"a": "b"} }, true},
		{"StoreReady reported", func(o *v1.BacktestPersistence) {
			setCondition(o, v1.ConditionStoreReady, metav1.ConditionTrue, "Serving", "")
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := base.DeepCopy()
			tc.mutate(n)
			if got := relevantChange.Update(event.UpdateEvent{ObjectOld: base, ObjectNew: n}); got != tc.want {
				t.Fatalf("relevantChange = %t, want %t", got, tc.want)
			}
		})
	}
	// A StoreReady that only changed its message is not news.
	a := base.DeepCopy()
	setCondition(a, v1.ConditionStoreReady, metav1.ConditionTrue, "Serving", "one")
	b := a.DeepCopy()
	setCondition(b, v1.ConditionStoreReady, metav1.ConditionTrue, "Serving", "two")
	if relevantChange.Update(event.UpdateEvent{ObjectOld: a, ObjectNew: b}) {
		t.Fatal("a StoreReady message change triggered a reconcile")
	}
}

func TestServedKinds(t *testing.T) {
	o := newObj(1)
	if got := servedKinds(o); len(got) != 17 || got[16].Collection != "dictionary-items" {
		t.Fatalf("empty adapters serve %d kinds, want 17 with dictionary", len(got))
	}
	o.Spec.Adapters = []string{"candle", "signal"}
	got := servedKinds(o)
	if len(got) != 2 || got[0].Collection != "candle-items" || got[1].Collection != "signal-items" {
		t.Fatalf("servedKinds = %v", got)
	}
}
