package persist

import (
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// A readGate counts the cache reads in flight on one Redis client, across every
// tenant's store that shares the client (the manager shares one client per Redis
// endpoint and credentials). The cache pipelines a read while another is in flight
// (see cache.mget), so concurrent reads of different tenants share the client's
// pipelines as well as those of one tenant.
type readGate struct {
	inflight atomic.Int32
	refs     int // guarded by readGates
}

var readGates = struct {
	sync.Mutex
	m map[redis.UniversalClient]*readGate
}{m: map[redis.UniversalClient]*readGate{}}

// acquireReadGate returns the gate of rdb; each call needs a releaseReadGate.
func acquireReadGate(rdb redis.UniversalClient) *readGate {
	readGates.Lock()
	defer readGates.Unlock()
	g := readGates.m[rdb]
	if g == nil {
		g = &readGate{}
		readGates.m[rdb] = g
	}
	g.refs++
	return g
}

// releaseReadGate drops a reference to the gate of rdb, and the gate with the last one.
func releaseReadGate(rdb redis.UniversalClient) {
	readGates.Lock()
	defer readGates.Unlock()
	if g := readGates.m[rdb]; g != nil {
		if g.refs--; g.refs <= 0 {
			delete(readGates.m, rdb)
		}
	}
}
