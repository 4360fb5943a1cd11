package tenant

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/infra"
	"github.com/backtestpersistence/operator/internal/persist"
)

func withConditions(conds ...metav1.Condition) *v1.BacktestPersistence {
	obj := &v1.BacktestPersistence{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "t", Generation: 3, UID: "u1"}}
	obj.Status.Conditions = conds
	return obj
}

func cond(t string, s metav1.ConditionStatus, msg string) metav1.Condition {
	return metav1.Condition{Type: t, Status: s, Reason: "R", Message: msg}
}

func TestCheckServable(t *testing.T) {
	ok := []metav1.Condition{cond(v1.ConditionMongoReady, "True", ""), cond(v1.ConditionIndexesReady, "True", ""), cond(v1.ConditionDataOwned, "True", "")}
	if u := checkServable(withConditions(ok...)); u != nil {
		t.Fatalf("ready tenant refused: %v", u)
	}
	// Redis down does not stop serving: the store reads from MongoDB.
	if u := checkServable(withConditions(append(ok, cond(v1.ConditionRedisReady, "False", "refused"))...)); u != nil {
		t.Fatalf("redis-down tenant refused: %v", u)
	}
	u := checkServable(withConditions(cond(v1.ConditionMongoReady, "False", "dial tcp: connection refused"), ok[1], ok[2]))
	if u == nil || u.Reason != "MongoNotReady" || u.Message != "MongoReady is False: dial tcp: connection refused" {
		t.Fatalf("mongo down: %+v", u)
	}
	if u := checkServable(withConditions(ok[0], ok[2])); u == nil || u.Reason != "WaitingForIndexesReady" {
		t.Fatalf("indexes unknown: %+v", u)
	}
	// A tenant whose database or key space another object owns is never served.
	if u := checkServable(withConditions(ok[0], ok[1])); u == nil || u.Reason != "WaitingForDataOwned" {
		t.Fatalf("ownership not reported: %+v", u)
	}
	if u := checkServable(withConditions(ok[0], ok[1], cond(v1.ConditionDataOwned, "False", "the database is owned by another BacktestPersistence"))); u == nil || u.Reason != "DataOwnedNotReady" {
		t.Fatalf("data owned by another: %+v", u)
	}
	del := withConditions(ok...)
	now := metav1.Now()
	del.DeletionTimestamp = &now
	if u := checkServable(del); u == nil || u.Reason != "Deleting" {
		t.Fatalf("deleting: %+v", u)
	}
}

func TestSetStoreStatus(t *testing.T) {
	obj := withConditions()
	if !setStoreStatus(obj, &entry{handle: &handle{}}, "https://gw.ns.svc") {
		t.Fatal("first set reported no change")
	}
	c := meta.FindStatusCondition(obj.Status.Conditions, v1.ConditionStoreReady)
	if c == nil || c.Status != "True" || c.Reason != ReasonServing || c.ObservedGeneration != 3 || obj.Status.Endpoint != "https://gw.ns.svc" {
		t.Fatalf("serving: %+v endpoint %q", c, obj.Status.Endpoint)
	}
	if setStoreStatus(obj, &entry{handle: &handle{}}, "https://gw.ns.svc") {
		t.Fatal("unchanged state reported a change (would patch in a loop)")
	}
	if !setStoreStatus(obj, &entry{unavailable: &UnavailableError{Reason: "MongoNotReady", Message: "m"}}, "https://gw.ns.svc") {
		t.Fatal("state change not reported")
	}
	c = meta.FindStatusCondition(obj.Status.Conditions, v1.ConditionStoreReady)
	if c.Status != "False" || c.Reason != "MongoNotReady" || c.Message != "m" {
		t.Fatalf("unavailable: %+v", c)
	}
}

func TestConfigFor(t *testing.T) {
	obj := withConditions()
	ep := infra.Endpoints{MongoURI: "mongodb://a", RedisURL: "redis://b"}
	c := configFor(obj, ep)
	if c.RedisURL != "redis://b" || c.Database != infra.DatabaseName(obj) || c.KeyPrefix != "btp:u1:" || c.OwnerUID != "u1" || c.Kinds != nil {
		t.Fatalf("default config: %+v", c)
	}
	fp := c.Fingerprint()
	off := false
	obj.Spec.Cache.Enabled = &off
	obj.Spec.Adapters = []string{"signal", "candle"}
	c2 := configFor(obj, ep)
	if c2.RedisURL != "" || len(c2.Kinds) != 2 || c2.Kinds[1] != persist.KindCandle {
		t.Fatalf("cache off, two kinds: %+v", c2)
	}
	if c2.Fingerprint() == fp {
		t.Fatal("fingerprint ignores the config")
	}
	ep.MongoURI = "mongodb://other"
	if configFor(withConditions(), ep).Fingerprint() == fp {
		t.Fatal("fingerprint ignores a rotated Secret")
	}
}

func TestListWindowsAndRetention(t *testing.T) {
	obj := withConditions()
	ep := infra.Endpoints{MongoURI: "mongodb://a", RedisURL: "redis://b"}
	fp := configFor(obj, ep).Fingerprint()
	if ListWindows(obj) != nil || len(RetentionPolicies(obj)) != 0 {
		t.Fatal("no spec.lists: windows or policies set")
	}
	w, items := int32(800), int64(5000)
	obj.Spec.Lists = &v1.ListsSpec{
		Notification: &v1.ListSpec{Window: &w, Retention: &v1.RetentionSpec{MaxItems: &items}},
		Log:          &v1.ListSpec{Retention: &v1.RetentionSpec{MaxAge: &metav1.Duration{Duration: time.Hour}}},
	}
	c := configFor(obj, ep)
	if len(c.ListWindows) != 1 || c.ListWindows[persist.KindNotification] != 800 {
		t.Fatalf("windows %v", c.ListWindows)
	}
	if c.Fingerprint() == fp {
		t.Fatal("fingerprint ignores a window")
	}
	p := RetentionPolicies(obj)
	if len(p) != 2 || p[persist.KindNotification].MaxItems != 5000 || p[persist.KindLog].MaxAge != time.Hour || p[persist.KindLog].MaxItems != 0 {
		t.Fatalf("policies %+v", p)
	}
}

type countingStore struct {
	closed atomic.Int32
}

func (s *countingStore) Do(context.Context, persist.Request) (persist.Result, error) {
	return persist.Result{}, nil
}
func (s *countingStore) Batch(context.Context, []persist.Request) ([]persist.Result, []error) {
	return nil, nil
}
func (s *countingStore) Close() { s.closed.Add(1) }

func TestRegistryAcquireAndReplace(t *testing.T) {
	r := NewRegistry()
	key := types.NamespacedName{Namespace: "ns", Name: "t"}
	if _, _, err := r.Acquire("ns", "t"); !errors.As(err, new(*UnavailableError)) {
		t.Fatalf("before sync an unknown tenant is retryable, got %v", err)
	}
	r.MarkSynced()
	if _, _, err := r.Acquire("ns", "t"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
	old := &countingStore{}
	r.set(key, &entry{handle: &handle{store: old}})
	s, release, err := r.Acquire("ns", "t")
	if err != nil || s != old {
		t.Fatalf("acquire: %v", err)
	}
	// Replacing the store waits for the in-flight request before closing the old one.
	replaced := make(chan struct{})
	go func() {
		r.set(key, &entry{unavailable: &UnavailableError{Reason: "MongoNotReady"}})
		close(replaced)
	}()
	select {
	case <-replaced:
		t.Fatal("old store closed while a request was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	<-replaced
	if old.closed.Load() != 1 {
		t.Fatalf("old store closed %d times", old.closed.Load())
	}
	if _, _, err := r.Acquire("ns", "t"); !errors.As(err, new(*UnavailableError)) {
		t.Fatalf("unavailable tenant: %v", err)
	}
	r.remove(key)
	if _, _, err := r.Acquire("ns", "t"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed tenant: %v", err)
	}
}

// During shutdown every tenant, known or not, is retryable (503), never "does not
// exist" (404); a store opened after the close is closed at once.
func TestRegistryShutdownIsRetryable(t *testing.T) {
	r := NewRegistry()
	r.MarkSynced()
	key := types.NamespacedName{Namespace: "ns", Name: "t"}
	s := &countingStore{}
	r.set(key, &entry{handle: &handle{store: s}})
	r.CloseAll()
	if s.closed.Load() != 1 {
		t.Fatalf("store closed %d times", s.closed.Load())
	}
	for _, name := range []string{"t", "never-known"} {
		_, _, err := r.Acquire("ns", name)
		var u *UnavailableError
		if !errors.As(err, &u) || u.Reason != "ShuttingDown" {
			t.Fatalf("%s during shutdown: %v, want UnavailableError ShuttingDown", name, err)
		}
	}
	late := &countingStore{}
	r.set(key, &entry{handle: &handle{store: late}})
	if late.closed.Load() != 1 {
		t.Fatal("a store opened after shutdown stays open")
	}
	if _, _, err := r.Acquire("ns", "t"); !errors.As(err, new(*UnavailableError)) {
		t.Fatalf("after a late open: %v", err)
	}
}
