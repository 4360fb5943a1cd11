package gateway

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// callerBudgets holds one token bucket per caller, so that what one caller spends
// (for example access reviews of tenant paths it has no grant for) is taken from
// its own budget and never from the other callers'. It is bounded: when full, the
// buckets that are full again (their callers idle) are dropped, as dropping them
// loses nothing, and if none are, the fullest one: a caller that spent its budget
// does not get it back by making others come and go.
type callerBudgets struct {
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	limit   rate.Limit
	burst   int
	max     int
}

func newCallerBudgets(perSecond float64, burst, max int) *callerBudgets {
	return &callerBudgets{buckets: make(map[string]*rate.Limiter), limit: rate.Limit(perSecond), burst: burst, max: max}
}

// allow takes one token from caller's bucket and reports whether there was one.
func (b *callerBudgets) allow(caller string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.buckets[caller]
	if !ok {
		if len(b.buckets) >= b.max {
			b.shed()
		}
		l = rate.NewLimiter(b.limit, b.burst)
		b.buckets[caller] = l
	}
	return l.Allow()
}

// shed makes room for one bucket.
func (b *callerBudgets) shed() {
	for k, l := range b.buckets {
		if l.Tokens() >= float64(b.burst) {
			delete(b.buckets, k)
		}
	}
	if len(b.buckets) < b.max {
		return
	}
	fullest, most := "", -1.0
	for k, l := range b.buckets {
		if t := l.Tokens(); t > most {
			fullest, most = k, t
		}
	}
	delete(b.buckets, fullest)
}

// defaultReviewsInFlight is the default bound of the TokenReviews, and apart from
// them of the SubjectAccessReviews, in flight at once.
const defaultReviewsInFlight = 8

// reviewSlots bounds the reviews in flight at once.
type reviewSlots chan struct{}

// enter waits at most timeout (or until ctx ends) for a slot; leave gives it back.
func (s reviewSlots) enter(ctx context.Context, timeout time.Duration) (leave func(), ok bool) {
	wait := time.NewTimer(timeout)
	defer wait.Stop()
	select {
	case s <- struct{}{}:
		return func() { <-s }, true
	case <-wait.C:
		return nil, false
	case <-ctx.Done():
		return nil, false
	}
}
