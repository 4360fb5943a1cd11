package gateway

import (
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// decisionCache remembers authentication and authorization decisions for a few
// seconds, so a worker's steady stream of calls costs one TokenReview and one
// SubjectAccessReview per TTL instead of one per call. Concurrent misses of one
// key share one review. It is bounded: when full, expired entries are dropped,
// and if none are, an arbitrary one is.
type decisionCache[V any] struct {
	mu      sync.RWMutex
	entries map[string]cacheEntry[V]
	max     int
	now     func() time.Time
	flight  singleflight.Group
}

type cacheEntry[V any] struct {
	value   V
	expires time.Time
}

func newDecisionCache[V any](max int) *decisionCache[V] {
	if max <= 0 {
		max = 4096
	}
	return &decisionCache[V]{entries: make(map[string]cacheEntry[V]), max: max, now: time.Now}
}

// lookup returns the cached value of key if it has not expired.
func (c *decisionCache[V]) lookup(key string) (V, bool) {
	now := c.now()
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	return e.fresh(ok, now)
}

// lookupBytes is lookup of a key built in a caller's buffer, without a copy of it.
func (c *decisionCache[V]) lookupBytes(key []byte) (V, bool) {
	now := c.now()
	c.mu.RLock()
	e, ok := c.entries[string(key)]
	c.mu.RUnlock()
	return e.fresh(ok, now)
}

// fresh returns the entry's value if it was found and has not expired at now.
func (e cacheEntry[V]) fresh(found bool, now time.Time) (V, bool) {
	if found && now.Before(e.expires) {
		return e.value, true
	}
	var zero V
	return zero, false
}

// holds reports whether key has an entry, expired or not.
func (c *decisionCache[V]) holds(key string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.entries[key]
	return ok
}

// get returns the cached value of key, computing it with fill on a miss. fill
// returns the value, how long it may be cached (0: not at all) and an error
// (never cached).
func (c *decisionCache[V]) get(key string, fill func() (V, time.Duration, error)) (V, error) {
	if v, ok := c.lookup(key); ok {
		return v, nil
	}
	v, err, _ := c.flight.Do(key, func() (any, error) {
		v, ttl, err := fill()
		if err != nil {
			return v, err
		}
		if ttl > 0 {
			c.put(key, v, c.now().Add(ttl))
		}
		return v, nil
	})
	if err != nil {
		var zero V
		return zero, err
	}
	return v.(V), nil
}

func (c *decisionCache[V]) put(key string, v V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		now := c.now()
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = cacheEntry[V]{value: v, expires: expires}
}

// len is the number of entries, expired ones included.
func (c *decisionCache[V]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// ReviewOptions are the settings shared by the TokenReview authenticator and the
// SubjectAccessReview authorizer.
type ReviewOptions struct {
	// TTL of positive decisions (default 10s), NegativeTTL of negative ones (default 2s).
	TTL, NegativeTTL time.Duration
	// Timeout of one review call (default 5s).
	Timeout time.Duration
	// CacheSize bounds the cached decisions (default 4096).
	CacheSize int
}

func (o ReviewOptions) withDefaults() ReviewOptions {
	if o.TTL <= 0 {
		o.TTL = 10 * time.Second
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = 2 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	return o
}
