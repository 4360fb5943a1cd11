package gateway

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
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
		case "good":
			out.Status = authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"btp"},
				User: authnv1.UserInfo{Username: "system:serviceaccount:a:w", UID: "u", Groups: []string{"g"}}}
		case "other-audience":
			out.Status = authnv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"api"},
				User: authnv1.UserInfo{Username: "x"}}
		}
		return true, out, nil
	})
	a := NewTokenReviewAuthenticator(cs.AuthenticationV1().TokenReviews(), TokenReviewOptions{Audiences: []string{"btp"}, ReviewOptions: ReviewOptions{TTL: time.Hour, NegativeTTL: time.Hour}})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		id, err := a.Authenticate(ctx, "good")
		if err != nil || id.User != "system:serviceaccount:a:w" || id.Groups[0] != "g" {
			t.Fatalf("good token: %+v %v", id, err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("%d reviews for one token within the TTL", calls.Load())
	}
	for _, tok := range []string{"forged", "other-audience"} {
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
		if _, err := a.Authenticate(ctx, "new"); err == nil || errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("a failed review must be an error, not a rejection: %v", err)
		}
	}
	if calls.Load() != 5 {
		t.Fatalf("a failed review was cached: %d reviews", calls.Load())
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
	z := NewSubjectAccessReviewAuthorizer(cs.AuthorizationV1().SubjectAccessReviews(), SubjectAccessReviewOptions{TTL: time.Hour, NegativeTTL: time.Hour})
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
}
