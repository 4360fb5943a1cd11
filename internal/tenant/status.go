package tenant

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/backtestpersistence/operator/api/v1"
)

// Reasons of the StoreReady condition.
const (
	// ReasonServing: the gateway has the tenant's store open and serves it.
	ReasonServing = "Serving"
)

// setStoreStatus sets StoreReady and status.endpoint of obj from the registry's
// entry and reports whether anything changed.
func setStoreStatus(obj *v1.BacktestPersistence, e *entry, endpoint string) bool {
	cond := metav1.Condition{
		Type:               v1.ConditionStoreReady,
		Status:             metav1.ConditionTrue,
		Reason:             ReasonServing,
		Message:            "the gateway serves this tenant",
		ObservedGeneration: obj.Generation,
	}
	if endpoint != "" {
		cond.Message += " at " + endpoint
	}
	if e.handle == nil {
		cond.Status = metav1.ConditionFalse
		cond.Reason = e.unavailable.Reason
		cond.Message = e.unavailable.Message
	}
	changed := meta.SetStatusCondition(&obj.Status.Conditions, cond)
	if endpoint != "" && obj.Status.Endpoint != endpoint {
		obj.Status.Endpoint = endpoint
		changed = true
	}
	return changed
}

// leaderKick re-reconciles every tenant when this replica becomes the leader, so the
// new leader writes StoreReady even for tenants whose objects did not change.
type leaderKick struct{ r *Reconciler }

// Start implements manager.Runnable; it runs only on the leader.
func (k *leaderKick) Start(ctx context.Context) error {
	// The manager starts leader runnables before it closes Elected; reconciles that
	// ran in between would have skipped the status write.
	select {
	case <-k.r.Elected:
	case <-ctx.Done():
		return nil
	}
	if err := k.r.enqueueAll(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (k *leaderKick) NeedLeaderElection() bool { return true }

// syncWatcher marks the registry ready once every tenant present at start has an entry.
type syncWatcher struct {
	r     *Reconciler
	cache cache.Cache
}

// Start implements manager.Runnable; it runs on every replica and ends once synced.
func (w *syncWatcher) Start(ctx context.Context) error {
	if !w.cache.WaitForCacheSync(ctx) {
		return nil
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		// Listed afresh each time: an object deleted meanwhile never gets an entry.
		var list v1.BacktestPersistenceList
		if err := w.r.Client.List(ctx, &list); err != nil {
			return fmt.Errorf("list tenants: %w", err)
		}
		done := true
		for i := range list.Items {
			if _, ok := w.r.Registry.state(client.ObjectKeyFromObject(&list.Items[i])); !ok {
				done = false
				break
			}
		}
		if done {
			w.r.Registry.MarkSynced()
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (w *syncWatcher) NeedLeaderElection() bool { return false }
