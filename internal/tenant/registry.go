// Package tenant keeps the open adapter store of every BacktestPersistence in the
// cluster. An informer-driven reconciler that runs on every replica (not only the
// leader) opens, reconfigures and closes stores as objects and their Secrets change;
// the gateway asks the Registry for a tenant's store on every request.
package tenant

import (
	"context"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/types"

	"github.com/backtestpersistence/operator/internal/persist"
)

// Store is what the gateway runs requests on.
type Store interface {
	Do(ctx context.Context, req persist.Request) (persist.Result, error)
	Batch(ctx context.Context, reqs []persist.Request) ([]persist.Result, []error)
}

// OpenStore is an open store with its resources: Close stops the store and releases
// the pooled clients it holds.
type OpenStore interface {
	Store
	Close()
}

// Registry maps tenants to their stores. Safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	tenants map[types.NamespacedName]*entry
	synced  atomic.Bool
	// closed is set by CloseAll (shutdown): from then on every tenant is
	// unavailable, so that requests still in the server's drain get a retryable
	// 503 rather than a 404 that says the tenant does not exist.
	closed bool
}

// errShuttingDown is what Acquire returns once the registry is closed.
var errShuttingDown = &UnavailableError{Reason: "ShuttingDown", Message: "this gateway replica is shutting down, retry"}

// entry is the registry's state of one tenant; it is replaced, never mutated.
type entry struct {
	// handle is the open store, nil while the tenant is not served.
	handle *handle
	// unavailable says why the tenant is not served (nil when handle is set).
	unavailable *UnavailableError
	// fingerprint is the Config the handle was opened with.
	fingerprint string
}

// handle counts the requests in flight on a store so that a replaced store is
// closed only after its last request.
type handle struct {
	store  OpenStore
	mu     sync.RWMutex // read-held by each request; write-held to close
	closed bool
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{tenants: map[types.NamespacedName]*entry{}}
}

// Acquire returns the store of a tenant and a release func to call when the request
// is done; ErrNotFound for an unknown tenant; an *UnavailableError for a known tenant
// that is not served.
func (r *Registry) Acquire(namespace, name string) (Store, func(), error) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	for {
		r.mu.RLock()
		e, ok := r.tenants[key]
		closed := r.closed
		r.mu.RUnlock()
		if closed {
			return nil, nil, errShuttingDown
		}
		if !ok {
			if !r.synced.Load() {
				// Not loaded yet is not "does not exist": ask the worker to retry.
				return nil, nil, &UnavailableError{Reason: "Starting", Message: "the gateway is still loading tenants"}
			}
			return nil, nil, ErrNotFound
		}
		if e.handle == nil {
			return nil, nil, e.unavailable
		}
		h := e.handle
		h.mu.RLock()
		if h.closed {
			// Replaced between the lookup and the lock: look again.
			h.mu.RUnlock()
			continue
		}
		return h.store, h.mu.RUnlock, nil
	}
}

// Ready reports whether the registry has processed the objects present at start.
func (r *Registry) Ready() bool { return r.synced.Load() }

// MarkSynced records that the registry has caught up with the cluster.
func (r *Registry) MarkSynced() { r.synced.Store(true) }

// state returns the current entry of a tenant.
func (r *Registry) state(key types.NamespacedName) (*entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.tenants[key]
	return e, ok
}

// set replaces the entry of a tenant and closes the previous store when it is
// not carried over, after its in-flight requests.
func (r *Registry) set(key types.NamespacedName, e *entry) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		if e.handle != nil {
			e.handle.close()
		}
		return
	}
	old := r.tenants[key]
	r.tenants[key] = e
	r.mu.Unlock()
	if old != nil && old.handle != nil && old.handle != e.handle {
		old.handle.close()
	}
}

// remove forgets a tenant and closes its store.
func (r *Registry) remove(key types.NamespacedName) {
	r.mu.Lock()
	old := r.tenants[key]
	delete(r.tenants, key)
	r.mu.Unlock()
	if old != nil && old.handle != nil {
		old.handle.close()
	}
}

// Counts returns how many tenants are served and how many are not.
func (r *Registry) Counts() (serving, unavailable int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, e := range r.tenants {
		if e.handle != nil {
			serving++
		} else {
			unavailable++
		}
	}
	return serving, unavailable
}

// CloseAll closes every store; for shutdown. Afterwards every tenant is
// unavailable (retryable) and stores opened later are closed at once.
func (r *Registry) CloseAll() {
	r.mu.Lock()
	r.closed = true
	all := r.tenants
	r.tenants = map[types.NamespacedName]*entry{}
	r.mu.Unlock()
	for _, e := range all {
		if e.handle != nil {
			e.handle.close()
		}
	}
}

// close waits for in-flight requests, then closes the store.
func (h *handle) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	h.store.Close()
}
