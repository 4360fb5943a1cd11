package controllers

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/infra"
	"github.com/backtestpersistence/operator/internal/persist"
	tenants "github.com/backtestpersistence/operator/internal/tenant"
)

// Retention runs in bounded steps, one per reconcile: at most retentionBatch
// deletes per list kind, then a requeue after retentionRequeue while items are due,
// so a long history is pruned over many short reconciles, never in one long one.
const (
	retentionBatch   = 1000
	retentionRequeue = time.Second
	// retentionTimeout bounds one step of all kinds.
	retentionTimeout = time.Minute
)

// listKinds are the kinds a retention policy can name, in status order.
var listKinds = []persist.Kind{persist.KindStorage, persist.KindNotification, persist.KindLog}

// reconcileRetention applies the spec's retention policies (spec.lists.*.retention)
// and reports them in status.retention. It runs only on a database this object owns
// whose indexes are ready; with the cache on it also needs Redis, since the pruned
// items' list hashes are invalidated first (persist.Store.Prune).
func (r *BacktestPersistenceReconciler) reconcileRetention(ctx context.Context, obj *v1.BacktestPersistence, st *reconcileState) (ctrl.Result, error) {
	policies := tenants.RetentionPolicies(obj)
	obj.Status.Retention = slices.DeleteFunc(obj.Status.Retention, func(s v1.RetentionStatus) bool {
		_, ok := policies[persist.Kind(s.Kind)]
		return !ok
	})
	if len(obj.Status.Retention) == 0 {
		obj.Status.Retention = nil
	}
	if len(policies) == 0 || st.mongo == nil || !st.databaseOwned || !meta.IsStatusConditionTrue(obj.Status.Conditions, v1.ConditionIndexesReady) {
		return ctrl.Result{}, nil
	}
	// The counts in status.retention add up across runs: a run working from a stale
	// copy of the object would have its status patch refused and its counts lost, so
	// it does not prune; the reconcile of the current version follows at once.
	latest := &v1.BacktestPersistence{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(obj), latest); err != nil {
		return ctrl.Result{}, err
	}
	if latest.ResourceVersion != obj.ResourceVersion {
		return ctrl.Result{RequeueAfter: staleRequeue}, nil
	}
	var rdb redis.UniversalClient
	if obj.Spec.Cache.Enabled == nil || *obj.Spec.Cache.Enabled {
		if st.redis == nil {
			for kind := range policies {
				retentionEntry(obj, kind).Message = "waiting for Redis: pruned items' list hashes must be invalidated first"
			}
			return ctrl.Result{}, nil
		}
		rdb = st.redis
	}
	database := infra.DatabaseName(obj)
	store, err := persist.Open(persist.Options{Database: st.mongo.Database(database), Redis: rdb,
		CacheIdentity: infra.CacheIdentity(st.endpoints.MongoURI, database), KeyPrefix: infra.KeyPrefix(obj), ListWindows: tenants.ListWindows(obj), SkipIndexes: true, HealthInterval: -1})
	if err != nil {
		return ctrl.Result{}, err
	}
	defer store.Close()
	rctx, cancel := context.WithTimeout(ctx, retentionTimeout)
	defer cancel()
	var result ctrl.Result
	for _, kind := range listKinds {
		policy, ok := policies[kind]
		if !ok {
			continue
		}
		res, err := pruneKind(rctx, store, kind, policy)
		e := retentionEntry(obj, kind)
		e.Pruned += res.Pruned
		e.LastPruned = res.Pruned
		e.Pending = res.More
		e.Message = ""
		if err != nil {
			e.Message = err.Error()
			ctrl.LoggerFrom(ctx).Info("retention step failed", "kind", kind, "error", err.Error())
		}
		now := metav1.Now()
		e.LastRunTime = &now
		if res.More || (err != nil && errors.Is(err, persist.ErrUnavailable)) {
			result = lowestRequeue(result, ctrl.Result{RequeueAfter: retentionRequeue})
		}
	}
	return result, nil
}

// pruneKind runs one step of a kind over its list contexts, retentionBatch deletes in all.
func pruneKind(ctx context.Context, store *persist.Store, kind persist.Kind, policy persist.RetentionPolicy) (persist.PruneResult, error) {
	var total persist.PruneResult
	for _, key := range persist.ListContexts(kind) {
		left := retentionBatch - int(total.Pruned)
		if left <= 0 {
			total.More = true
			break
		}
		res, err := store.Prune(ctx, kind, key, policy, left)
		total.Pruned += res.Pruned
		total.More = total.More || res.More
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// retentionEntry returns the status entry of a kind, adding it when missing.
func retentionEntry(obj *v1.BacktestPersistence, kind persist.Kind) *v1.RetentionStatus {
	for i := range obj.Status.Retention {
		if obj.Status.Retention[i].Kind == string(kind) {
			return &obj.Status.Retention[i]
		}
	}
	obj.Status.Retention = append(obj.Status.Retention, v1.RetentionStatus{Kind: string(kind)})
	return &obj.Status.Retention[len(obj.Status.Retention)-1]
}
