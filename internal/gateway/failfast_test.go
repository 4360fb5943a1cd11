package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/backtestpersistence/operator/internal/persist"
)

func TestFailFast(t *testing.T) {
	f := newFailFast(10*time.Second, 500*time.Millisecond)
	now := time.Unix(0, 0)
	f.now = func() time.Time { return now }
	if d, short := f.deadline("a", 5*time.Second); d != 5*time.Second || short != false {
		t.Fatalf("healthy: %v", d)
	}
	f.observe("a", fmt.Errorf("%w: ping", persist.ErrUnavailable))
	if d, short := f.deadline("a", 5*time.Second); d != 500*time.Millisecond || short != true {
		t.Fatalf("degraded: %v", d)
	}
	if d, short := f.deadline("b", 5*time.Second); d != 5*time.Second || short != false {
		t.Fatalf("another tenant is affected: %v", d)
	}
	f.observe("a", fmt.Errorf("%w: bad", persist.ErrInvalid)) // the caller's fault says nothing
	if d, short := f.deadline("a", 5*time.Second); d != 500*time.Millisecond || short != true {
		t.Fatalf("bad input ended the degraded period: %v", d)
	}
	now = now.Add(11 * time.Second)
	if d, short := f.deadline("a", 5*time.Second); d != 5*time.Second || short != false {
		t.Fatalf("after the window: %v", d)
	}
	// Redis down: writes fail, MongoDB reads must keep their full deadline.
	f.observe("a", fmt.Errorf("%w: state write: not written: dial tcp: refused", persist.ErrCacheUnavailable))
	if d, short := f.deadline("a", 5*time.Second); d != 5*time.Second || short != false {
		t.Fatalf("a write refused for want of Redis shortened MongoDB's deadline: %v", d)
	}
	f.observe("a", context.DeadlineExceeded)
	f.observe("a", nil)
	if d, short := f.deadline("a", 5*time.Second); d != 5*time.Second || short != false {
		t.Fatalf("a success did not end the degraded period: %v", d)
	}
}

// deadlineStore records the deadline each call got (noDeadline: none, the store's
// own timeouts bound it) and fails while down.
type deadlineStore struct {
	memStore
	down bool
	last time.Duration
}

const noDeadline = time.Duration(-1)

func (d *deadlineStore) Do(ctx context.Context, r persist.Request) (persist.Result, error) {
	d.last = noDeadline
	if dl, ok := ctx.Deadline(); ok {
		d.last = time.Until(dl)
	}
	if d.down {
		return persist.Result{}, fmt.Errorf("%w: ping MongoDB", persist.ErrUnavailable)
	}
	return d.memStore.Do(ctx, r)
}

// singleTenant serves one store.
type singleTenant struct{ store Store }

func (s *singleTenant) Acquire(string, string) (Store, func(), error) { return s.store, func() {}, nil }
func (s *singleTenant) Ready() bool                                   { return true }

func TestHandlerFailsFastAfterUnavailable(t *testing.T) {
	ds := &deadlineStore{memStore: memStore{data: map[string]json.RawMessage{}}}
	h := NewHandler(Options{Tenants: &singleTenant{store: ds}, Authenticator: fakeAuthn{"w": {User: "w"}},
		Authorizer: fakeAuthz{"w/get/a/t": true}, Metrics: NewMetrics(nil), OpTimeout: 5 * time.Second})
	read := `{"kind":"state","op":"read",` + stateKey + `}`
	if status, _ := do(t, h, "POST", opsPath, "w", read); status != 200 || ds.last != noDeadline {
		t.Fatalf("healthy: %d, deadline %v, want none but the store's own", status, ds.last)
	}
	ds.down = true
	if status, _ := do(t, h, "POST", opsPath, "w", read); status != 503 || ds.last != noDeadline {
		t.Fatalf("first failure: %d with deadline %v, want 503 after the store's full timeout", status, ds.last)
	}
	if status, _ := do(t, h, "POST", opsPath, "w", read); status != 503 || ds.last == noDeadline || ds.last > 500*time.Millisecond {
		t.Fatalf("after a 503 the next operation got %d with deadline %v, want the short deadline", status, ds.last)
	}
	ds.down = false
	do(t, h, "POST", opsPath, "w", read) // succeeds within the short deadline
	if status, _ := do(t, h, "POST", opsPath, "w", read); status != 200 || ds.last != noDeadline {
		t.Fatalf("after recovery: %d with deadline %v", status, ds.last)
	}
}
