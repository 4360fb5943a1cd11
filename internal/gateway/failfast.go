package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/backtestpersistence/operator/internal/persist"
)

// failFast shortens the deadline of a tenant's operations for a while after its
// store reported its servers unreachable, so that workers get their 503 in a fraction
// of a second instead of a full operation timeout each, until the controller marks
// the tenant not ready. Reads that the Redis cache answers still succeed within the
// short deadline; the first success ends the degraded period.
type failFast struct {
	mu      sync.Mutex
	until   map[string]time.Time
	window  time.Duration
	timeout time.Duration
	now     func() time.Time
}

func newFailFast(window, timeout time.Duration) *failFast {
	return &failFast{until: map[string]time.Time{}, window: window, timeout: timeout, now: time.Now}
}

// deadline returns the timeout to use for the tenant's next operation, and whether
// it is shortened (the tenant is degraded); otherwise it is normal.
func (f *failFast) deadline(tenant string, normal time.Duration) (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u, ok := f.until[tenant]; ok {
		if f.now().Before(u) {
			return min(f.timeout, normal), true
		}
		delete(f.until, tenant)
	}
	return normal, false
}

// observe records the outcome of an operation. A write refused because Redis is
// unreachable says nothing about MongoDB: it neither opens nor ends the period, so
// MongoDB reads during a Redis outage keep their full deadline.
func (f *failFast) observe(tenant string, err error) {
	if errors.Is(err, persist.ErrCacheUnavailable) {
		return
	}
	unreachable := errors.Is(err, persist.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case err == nil:
		delete(f.until, tenant)
	case unreachable:
		f.until[tenant] = f.now().Add(f.window)
	}
}
