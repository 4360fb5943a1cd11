package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/backtestpersistence/operator/internal/persist"
)

// The reviews' own logic (what is sent, what is cached) against a fake clientset;
// the integration suite runs them against a real API server.

func TestTokenReviewAuthenticator(t *testing.T) {
	cs := fake.NewClientset()
	var calls atomic.Int32
	var fail atomic.Bool
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		calls.Add(1)
		if fail.Load() {
			return true, nil, errors.New("apiserver down")
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview)
		if len(tr.Spec.Audiences) != 1 || tr.Spec.Audiences[0] != "btp" {
			t.Errorf("audiences sent: %v", tr.Spec.Audiences)
		}
		out := tr.DeepCopy()
		switch tr.Spec.Token {
		case jwtShaped("good"):
			out.Status = authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"btp"},
				User: authnv1.UserInfo{Username: "system:serviceaccount:a:w", UID: "u", Groups: []string{"g"}}}
		case jwtShaped("other-audience"):
			out.Status = authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"api"},
				User: authnv1.UserInfo{Username: "x"}}
		}
		return true, out, nil
	})
	a := NewTokenReviewAuthenticator(cs.AuthenticationV1().TokenReviews(), TokenReviewOptions{Audiences: []string{"btp"}, ReviewOptions: ReviewOptions{TTL: time.Hour, NegativeTTL: time.Hour}})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		id, err := a.Authenticate(ctx, jwtShaped("good"))
		if err != nil || id.User != "system:serviceaccount:a:w" || id.Groups[0] != "g" {
			t.Fatalf("good token: %+v %v", id, err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("%d reviews for one token within the TTL", calls.Load())
	}
	for _, tok := range []string{jwtShaped("forged"), jwtShaped("other-audience")} {
		for i := 0; i < 2; i++ {
			if _, err := a.Authenticate(ctx, tok); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("%s: %v", tok, err)
			}
		}
	}
	if calls.Load() != 3 {
		t.Fatalf("rejections not cached: %d reviews", calls.Load())
	}
	fail.Store(true)
	for i := 0; i < 2; i++ {
		if _, err := a.Authenticate(ctx, jwtShaped("new")); err == nil || errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("a failed review must be an error, not a rejection: %v", err)
		}
	}
	if calls.Load() != 5 {
		t.Fatalf("a failed review was cached: %d reviews", calls.Load())
	}
	fail.Store(false)
	for _, tok := range []string{"", "opaque", "a.b.c", "good", jwtShaped("good") + ".x"} {
		if _, err := a.Authenticate(ctx, tok); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("%q: %v", tok, err)
		}
	}
	if calls.Load() != 5 {
		t.Fatalf("bearer values that are not JWTs were reviewed: %d reviews", calls.Load())
	}
}

// reviewCounter is a fake TokenReview API that accepts jwtShaped("worker") and counts reviews.
func reviewCounter() (*fake.Clientset, *atomic.Int32) {
	cs := fake.NewClientset()
	var calls atomic.Int32
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		calls.Add(1)
		out := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview).DeepCopy()
		if out.Spec.Token == jwtShaped("worker") {
			out.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "worker"}}
		}
		return true, out, nil
	})
	return cs, &calls
}

// Rejections have their own cache: however many bad tokens arrive, a worker's
// accepted token stays cached.
func TestTokenRejectionsDoNotEvictAcceptedTokens(t *testing.T) {
	cs, calls := reviewCounter()
	a := NewTokenReviewAuthenticator(cs.AuthenticationV1().TokenReviews(), TokenReviewOptions{
		ReviewOptions: ReviewOptions{TTL: time.Hour, NegativeTTL: time.Hour, CacheSize: 4}, RejectedCacheSize: 4,
		ReviewsPerSecond: 1e6, ReviewBurst: 1e6,
	})
	ctx := context.Background()
	if _, err := a.Authenticate(ctx, jwtShaped("worker")); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := a.Authenticate(ctx, jwtShaped(fmt.Sprint("random-", i))); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("random token %d: %v", i, err)
		}
	}
	if n := a.rejected.len(); n > 4 {
		t.Fatalf("rejection cache holds %d entries, bound 4", n)
	}
	before := calls.Load()
	if id, err := a.Authenticate(ctx, jwtShaped("worker")); err != nil || id.User != "worker" {
		t.Fatalf("worker after the flood: %v %v", id, err)
	}
	if calls.Load() != before {
		t.Fatal("the flood of rejected tokens evicted the worker's accepted token")
	}
}

// TokenReviews are rate limited: new tokens beyond the burst are throttled (503 at
// the gateway), cached ones are not.
func TestTokenReviewsAreRateLimited(t *testing.T) {
	cs, calls := reviewCounter()
	m := NewMetrics(nil)
	a := NewTokenReviewAuthenticator(cs.AuthenticationV1().TokenReviews(), TokenReviewOptions{
		ReviewOptions: ReviewOptions{TTL: time.Hour, NegativeTTL: time.Hour}, ReviewsPerSecond: 0.001, ReviewBurst: 3,
		Metrics: m,
	})
	ctx := context.Background()
	if _, err := a.Authenticate(ctx, jwtShaped("worker")); err != nil {
		t.Fatal(err)
	}
	throttled := 0
	for i := range 50 {
		_, err := a.Authenticate(ctx, jwtShaped(fmt.Sprint("new-", i)))
		switch {
		case errors.Is(err, ErrReviewThrottled):
			throttled++
		case !errors.Is(err, ErrUnauthenticated):
			t.Fatalf("new token %d: %v", i, err)
		}
	}
	if calls.Load() != 3 || throttled != 48 {
		t.Fatalf("%d reviews, %d throttled; want 3 (the burst) and 48", calls.Load(), throttled)
	}
	if _, err := a.Authenticate(ctx, jwtShaped("worker")); err != nil {
		t.Fatalf("cached worker while reviews are throttled: %v", err)
	}
	// Once the worker's decision expires, its renewal has its own budget.
	a.accepted.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := a.Authenticate(ctx, jwtShaped("worker")); err != nil {
		t.Fatalf("renewal of the worker's expired decision while new tokens are throttled: %v", err)
	}
	if calls.Load() != 4 {
		t.Fatalf("%d reviews, want the renewal as the 4th", calls.Load())
	}
	if got := counterValue(t, m.tokenReviews.WithLabelValues(reviewThrottled)); got != 48 {
		t.Fatalf("throttled reviews counted: %v", got)
	}
}

func TestSubjectAccessReviewAuthorizer(t *testing.T) {
	cs := fake.NewClientset()
	var calls atomic.Int32
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		calls.Add(1)
		sar := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview)
		ra := sar.Spec.ResourceAttributes
		if ra.Group != "persistence.backtestkit.dev" || ra.Resource != "backtestpersistences" || ra.Subresource != "data" ||
			ra.Namespace != "ns" || sar.Spec.User != "w" || sar.Spec.Extra["k"][0] != "v" {
			t.Errorf("review sent: %+v", sar.Spec)
		}
		out := sar.DeepCopy()
		out.Status.Allowed = ra.Name == "mine" && (ra.Verb == "get" || sar.Spec.Groups[0] == "writers")
		return true, out, nil
	})
	z := NewSubjectAccessReviewAuthorizer(cs.AuthorizationV1().SubjectAccessReviews(), SubjectAccessReviewOptions{ReviewOptions: ReviewOptions{TTL: time.Hour, NegativeTTL: time.Hour}})
	ctx := context.Background()
	reader := &Identity{User: "w", Groups: []string{"readers"}, Extra: map[string][]string{"k": {"v"}}}
	writer := &Identity{User: "w", Groups: []string{"writers"}, Extra: map[string][]string{"k": {"v"}}}
	check := func(id *Identity, name, verb string, want bool) {
		t.Helper()
		ok, _, err := z.Authorize(ctx, id, "ns", name, verb)
		if err != nil || ok != want {
			t.Fatalf("%v %s %s: %v %v, want %v", id.Groups, verb, name, ok, err, want)
		}
	}
	check(reader, "mine", VerbRead, true)
	check(reader, "mine", VerbWrite, false)
	check(reader, "mine", VerbScan, false)
	check(reader, "other", VerbRead, false)
	// Same user name, different groups: a different decision, never the cached one.
	check(writer, "mine", VerbWrite, true)
	n := calls.Load()
	check(reader, "mine", VerbRead, true)
	check(reader, "mine", VerbWrite, false)
	check(writer, "mine", VerbWrite, true)
	if calls.Load() != n {
		t.Fatalf("decisions not cached: %d more reviews", calls.Load()-n)
	}

	// A caller collecting denials, one per tenant path, with a cache of 8: the
	// workers' allowed decisions stay held.
	z = NewSubjectAccessReviewAuthorizer(cs.AuthorizationV1().SubjectAccessReviews(), SubjectAccessReviewOptions{ReviewOptions: ReviewOptions{TTL: time.Hour, NegativeTTL: time.Hour, CacheSize: 8}, CallerReviewBurst: 1000})
	check(reader, "mine", VerbRead, true)
	check(writer, "mine", VerbWrite, true)
	for i := 0; i < 100; i++ {
		check(reader, fmt.Sprintf("other%d", i), VerbRead, false)
	}
	n = calls.Load()
	check(reader, "mine", VerbRead, true)
	check(writer, "mine", VerbWrite, true)
	if calls.Load() != n {
		t.Fatalf("allowed decisions evicted by denials: %d more reviews", calls.Load()-n)
	}
	check(reader, "other99", VerbRead, false)
	if calls.Load() != n {
		t.Fatal("a denial just held was reviewed again")
	}
}

// SubjectAccessReviews are bounded per caller: a caller naming tenant paths it has
// no decision for spends its own budget (then 503), and another caller's first
// reviews, and the flooding caller's held decisions, still answer.
func TestAccessReviewsAreBoundedPerCaller(t *testing.T) {
	cs := fake.NewClientset()
	var calls atomic.Int32
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		calls.Add(1)
		out := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview).DeepCopy()
		out.Status.Allowed = out.Spec.ResourceAttributes.Name == "mine"
		return true, out, nil
	})
	m := NewMetrics(nil)
	z := NewSubjectAccessReviewAuthorizer(cs.AuthorizationV1().SubjectAccessReviews(), SubjectAccessReviewOptions{
		ReviewOptions: ReviewOptions{TTL: time.Hour, NegativeTTL: time.Hour}, CallerReviewsPerSecond: 0.001, CallerReviewBurst: 5,
		Metrics: m,
	})
	ctx := context.Background()
	prober := &Identity{User: "system:serviceaccount:a:prober"}
	worker := &Identity{User: "system:serviceaccount:b:worker"}
	if ok, _, err := z.Authorize(ctx, prober, "a", "mine", VerbRead); err != nil || !ok {
		t.Fatalf("prober's own tenant: %v %v", ok, err)
	}
	throttled := 0
	for i := range 100 {
		ok, _, err := z.Authorize(ctx, prober, "b", fmt.Sprint("guess-", i), VerbRead)
		switch {
		case errors.Is(err, ErrAccessReviewThrottled):
			throttled++
		case err != nil || ok:
			t.Fatalf("path %d: %v %v", i, ok, err)
		}
	}
	if calls.Load() != 5 || throttled != 96 {
		t.Fatalf("%d reviews, %d throttled; want 5 (the burst) and 96", calls.Load(), throttled)
	}
	if ok, _, err := z.Authorize(ctx, prober, "a", "mine", VerbRead); err != nil || !ok {
		t.Fatalf("prober's held decision while its budget is spent: %v %v", ok, err)
	}
	for _, verb := range []string{VerbRead, VerbWrite, VerbScan} {
		if ok, _, err := z.Authorize(ctx, worker, "b", "mine", verb); err != nil || !ok {
			t.Fatalf("worker's first review of %s while the prober's budget is spent: %v %v", verb, ok, err)
		}
	}
	if calls.Load() != 8 {
		t.Fatalf("%d reviews, want the worker's 3 as 6th to 8th", calls.Load())
	}
	for result, want := range map[string]float64{accessAllowed: 4, accessDenied: 4, accessThrottled: 96} {
		if got := counterValue(t, m.accessReviews.WithLabelValues(result)); got != want {
			t.Errorf("reviews counted %s: %v, want %v", result, got, want)
		}
	}
}

// Buckets are bounded: a full table drops the idle (full) buckets first, so a busy
// caller keeps its spent budget while new callers come and go.
func TestCallerBudgetsShedIdleBuckets(t *testing.T) {
	b := newCallerBudgets(0.001, 2, 4)
	b.allow("busy")
	b.allow("busy")
	if b.allow("busy") {
		t.Fatal("busy caller over its burst allowed")
	}
	for i := range 50 {
		if !b.allow(fmt.Sprint("new-", i)) {
			t.Fatalf("new caller %d refused", i)
		}
		if len(b.buckets) > 4 {
			t.Fatalf("%d buckets held, bound 4", len(b.buckets))
		}
	}
	if _, ok := b.buckets["busy"]; !ok {
		t.Fatal("the busy caller's spent bucket was dropped before idle ones")
	}
	if b.allow("busy") {
		t.Fatal("busy caller's budget came back by eviction")
	}
}

// countingAuthz allows everything and counts the decisions asked for.
type countingAuthz struct{ calls atomic.Int32 }

func (c *countingAuthz) Authorize(context.Context, *Identity, string, string, string) (bool, string, error) {
	c.calls.Add(1)
	return true, "", nil
}

// An operation the authorizer has no verb for is denied without asking, whatever
// the caller may do otherwise (fail closed).
func TestAuthorizeUnknownOperationIsDenied(t *testing.T) {
	h, _ := newTestHandler()
	authz := &countingAuthz{}
	h.o.Authorizer = authz
	id := &Identity{User: "admin"}
	for _, op := range []persist.Op{"drop", "", "READ", "list "} {
		reqs := []persist.Request{{Kind: persist.KindState, Op: persist.OpRead}, {Kind: persist.KindState, Op: op}}
		err := h.authorize(context.Background(), id, "a", "t", reqs)
		if e := classify(err); e == nil || e.Code != CodeForbidden {
			t.Errorf("op %q: %v, want Forbidden", op, err)
		}
	}
	if n := authz.calls.Load(); n != 0 {
		t.Fatalf("%d authorization reviews for requests with an unknown operation", n)
	}
	for _, op := range []persist.Op{persist.OpRead, persist.OpHas, persist.OpList, persist.OpWrite, persist.OpRemove, persist.OpScan} {
		if err := h.authorize(context.Background(), id, "a", "t", []persist.Request{{Kind: persist.KindMemory, Op: op}}); err != nil {
			t.Errorf("op %q: %v", op, err)
		}
	}
}

// A scan enumerates a kind's keys: its own verb, granted apart from reads and writes.
func TestScanNeedsItsOwnVerb(t *testing.T) {
	want := map[persist.Op]string{persist.OpRead: VerbRead, persist.OpHas: VerbRead, persist.OpList: VerbRead,
		persist.OpWrite: VerbWrite, persist.OpRemove: VerbWrite, persist.OpScan: VerbScan}
	for op, verb := range want {
		if got, ok := verbOf(op); !ok || got != verb {
			t.Errorf("verbOf(%s) = %q %v, want %q", op, got, ok, verb)
		}
	}
	if VerbScan == VerbRead || VerbScan == VerbWrite {
		t.Fatalf("scan shares a verb with reads or writes: %q", VerbScan)
	}
	// Through the handler: a caller who may read and write (a worker) may not scan,
	// alone or hidden in a batch of reads.
	h, _ := newTestHandler()
	h.o.Authorizer = verbAuthz{VerbRead: true, VerbWrite: true}
	id := &Identity{User: "worker"}
	for _, reqs := range [][]persist.Request{
		{{Kind: persist.KindSignal, Op: persist.OpScan}},
		{{Kind: persist.KindSignal, Op: persist.OpRead}, {Kind: persist.KindLog, Op: persist.OpScan}},
		{{Kind: persist.KindSignal, Op: persist.OpWrite}, {Kind: persist.KindLog, Op: persist.OpScan}},
	} {
		if e := classify(h.authorize(context.Background(), id, "a", "t", reqs)); e == nil || e.Code != CodeForbidden {
			t.Errorf("%v: %v, want Forbidden", reqs, e)
		}
	}
	h.o.Authorizer = verbAuthz{VerbRead: true, VerbScan: true}
	if err := h.authorize(context.Background(), id, "a", "t", []persist.Request{{Kind: persist.KindSignal, Op: persist.OpScan}, {Kind: persist.KindSignal, Op: persist.OpRead}}); err != nil {
		t.Fatalf("auditor: %v", err)
	}
}

// verbAuthz allows exactly the verbs it holds.
type verbAuthz map[string]bool

func (v verbAuthz) Authorize(_ context.Context, _ *Identity, _, _, verb string) (bool, string, error) {
	return v[verb], "", nil
}
