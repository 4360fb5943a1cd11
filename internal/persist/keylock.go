package persist

import (
	"context"
	"fmt"
	"hash/fnv"
)

// keyLocks serializes the writes of one key inside the process (R3). FerretDB has
// no per-document atomicity under concurrent writers, and the cache's version
// order relies on writes of one key completing one after another. Keys hash onto a
// fixed set of stripes, so memory stays bounded; two keys sharing a stripe only
// wait for each other. A lock is a one-slot channel so that waiting obeys the context.
type keyLocks struct {
	stripes []chan struct{}
}

const lockStripes = 1024

func newKeyLocks() keyLocks {
	l := keyLocks{stripes: make([]chan struct{}, lockStripes)}
	for i := range l.stripes {
		l.stripes[i] = make(chan struct{}, 1)
	}
	return l
}

// lock takes the lock of key and returns its release, or the context's error.
func (l keyLocks) lock(ctx context.Context, key string) (func(), error) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	ch := l.stripes[h.Sum32()%lockStripes]
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for the write lock of a key: %v", ErrUnavailable, ctx.Err())
	}
}
