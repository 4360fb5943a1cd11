// Package controllers holds the BacktestPersistence reconciler and its status logic.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/infra"
	"github.com/backtestpersistence/operator/internal/persist"
)

// ControllerName names the controller in logs, metrics and events.
const ControllerName = "backtestpersistence"

// Defaults of the reconciler.
const (
	DefaultHealthCheckInterval = 30 * time.Second
	DefaultProbeTimeout        = 5 * time.Second
	// migrationTimeout bounds one index migration of all collections.
	migrationTimeout = 5 * time.Minute
	// staleRequeue is how soon an object whose status patch conflicted is reconciled again.
	staleRequeue = 100 * time.Millisecond
	// cleanupTimeout bounds dropping a tenant's data on deletion.
	cleanupTimeout = 2 * time.Minute
)

// BacktestPersistenceReconciler connects each BacktestPersistence to its MongoDB and
// Redis, migrates its indexes and reports readiness in status.
type BacktestPersistenceReconciler struct {
	client.Client
	// APIReader reads Secrets straight from the API server, so the manager caches
	// only Secret metadata (for the watch), never their contents.
	APIReader client.Reader
	// Recorder emits events on condition transitions.
	Recorder events.EventRecorder
	// Pools are shared with the gateway.
	Pools *infra.Pools
	// ProbeTimeout bounds each server probe (default 5s).
	ProbeTimeout time.Duration

	tenants *tenantClients
}

// +kubebuilder:rbac:groups=persistence.backtestkit.dev,resources=backtestpersistences,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=persistence.backtestkit.dev,resources=backtestpersistences/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=persistence.backtestkit.dev,resources=backtestpersistences/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// reconcileState carries what one step found to the next.
type reconcileState struct {
	endpoints infra.Endpoints
	// secretsChanged: the Secrets' versions differ from the last applied ones.
	secretsChanged bool
	mongo          *mongo.Client // set when MongoDB answered
	redis          redis.UniversalClient
	// databaseOwned: the database's marker names this object (checked in this reconcile).
	databaseOwned bool
}

// step is one ordered part of a reconcile. It sets its conditions; a returned error
// stops the remaining steps.
type step func(ctx context.Context, obj *v1.BacktestPersistence, st *reconcileState) (ctrl.Result, error)

// Reconcile brings one BacktestPersistence's status in line with its servers.
func (r *BacktestPersistenceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &v1.BacktestPersistence{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			r.tenants.release(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get %s: %w", req.NamespacedName, err)
	}
	if !obj.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, obj)
	}
	if !controllerutil.ContainsFinalizer(obj, v1.Finalizer) {
		patch := client.MergeFromWithOptions(obj.DeepCopy(), client.MergeFromWithOptimisticLock{})
		controllerutil.AddFinalizer(obj, v1.Finalizer)
		if err := r.Patch(ctx, obj, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
	}

	before := obj.DeepCopy()
	defer func() {
		r.summarize(obj)
		switch err := r.patchStatus(ctx, before, obj); {
		case errors.Is(err, errStaleObject):
			// Normal under concurrent writers: reconcile again from the latest version.
			ctrl.LoggerFrom(ctx).V(1).Info("status patch conflicted; reconciling again")
			result, retErr = ctrl.Result{RequeueAfter: staleRequeue}, nil
		case err != nil:
			retErr = errors.Join(retErr, err)
		}
	}()

	st := &reconcileState{}
	for _, s := range []step{r.reconcileSecrets, r.reconcileMongo, r.reconcileRedis, r.reconcileOwnership, r.reconcileIndexes, r.reconcileRetention, r.reconcileStore} {
		res, err := s(ctx, obj, st)
		result = lowestRequeue(result, res)
		if err != nil {
			return ctrl.Result{}, err
		}
	}
	// Healthy or not, look again after the (jittered) interval: probe failures are
	// states to report, not errors to back off from, so recovery is seen within one interval.
	return lowestRequeue(result, ctrl.Result{RequeueAfter: wait.Jitter(healthCheckInterval(obj), 0.1)}), nil
}

// reconcileSecrets reads the referenced Secrets into connection settings.
func (r *BacktestPersistenceReconciler) reconcileSecrets(ctx context.Context, obj *v1.BacktestPersistence, st *reconcileState) (ctrl.Result, error) {
	ep, err := infra.ResolveSecrets(ctx, r.APIReader, obj)
	if err != nil {
		if infra.IsSecretMissing(err) || infra.IsKeyMissing(err) {
			// The Secret watch reconciles as soon as it appears or changes.
			setSecretsCondition(obj, err)
			obj.Status.AppliedSecrets = nil
			return ctrl.Result{}, reconcile.TerminalError(err)
		}
		return ctrl.Result{}, err
	}
	st.endpoints = ep
	st.secretsChanged = !equality.Semantic.DeepEqual(obj.Status.AppliedSecrets, ep.SecretVersions)
	obj.Status.AppliedSecrets = ep.SecretVersions
	return ctrl.Result{}, nil
}

// reconcileMongo probes MongoDB with the tenant's credentials.
func (r *BacktestPersistenceReconciler) reconcileMongo(ctx context.Context, obj *v1.BacktestPersistence, st *reconcileState) (ctrl.Result, error) {
	c, err := r.tenants.mongo(ctx, client.ObjectKeyFromObject(obj), st.endpoints.MongoURI, st.endpoints.MongoTLS)
	if err != nil {
		setProbeCondition(obj, v1.ConditionMongoReady, err, "")
		obj.Status.MongoVersion = ""
		if infra.IsInvalidURI(err) {
			// Only a change of the Secret or the spec can fix this; both are watched.
			return ctrl.Result{}, reconcile.TerminalError(err)
		}
		return ctrl.Result{}, nil
	}
	pctx, cancel := context.WithTimeout(ctx, r.probeTimeout())
	defer cancel()
	version, err := infra.ProbeMongo(pctx, c)
	setProbeCondition(obj, v1.ConditionMongoReady, err, version)
	if err != nil {
		ctrl.LoggerFrom(ctx).V(1).Info("mongo probe failed", "reason", infra.Reason(err), "error", err.Error())
		return ctrl.Result{}, nil
	}
	obj.Status.MongoVersion = version
	st.mongo = c
	return ctrl.Result{}, nil
}

// reconcileRedis probes Redis with the tenant's credentials.
func (r *BacktestPersistenceReconciler) reconcileRedis(ctx context.Context, obj *v1.BacktestPersistence, st *reconcileState) (ctrl.Result, error) {
	c, err := r.tenants.redis(ctx, client.ObjectKeyFromObject(obj), st.endpoints.RedisURL, st.endpoints.RedisTLS)
	if err != nil {
		setProbeCondition(obj, v1.ConditionRedisReady, err, "")
		obj.Status.RedisVersion = ""
		if infra.IsInvalidURI(err) {
			return ctrl.Result{}, reconcile.TerminalError(err)
		}
		return ctrl.Result{}, nil
	}
	pctx, cancel := context.WithTimeout(ctx, r.probeTimeout())
	defer cancel()
	version, err := infra.ProbeRedis(pctx, c)
	setProbeCondition(obj, v1.ConditionRedisReady, err, version)
	if err != nil {
		ctrl.LoggerFrom(ctx).V(1).Info("redis probe failed", "reason", infra.Reason(err), "error", err.Error())
		return ctrl.Result{}, nil
	}
	obj.Status.RedisVersion = version
	st.redis = c
	return ctrl.Result{}, nil
}

// reconcileIndexes runs the index migration when it has not succeeded for the
// current generation, database and Secrets (a rotated Secret may name another server).
func (r *BacktestPersistenceReconciler) reconcileIndexes(ctx context.Context, obj *v1.BacktestPersistence, st *reconcileState) (ctrl.Result, error) {
	if st.mongo == nil {
		setDependencyNotReady(obj, v1.ConditionIndexesReady, "MongoDB is not ready")
		return ctrl.Result{}, nil
	}
	if !st.databaseOwned {
		// Never touch a database another object owns.
		setDependencyNotReady(obj, v1.ConditionIndexesReady, "the database is not owned by this BacktestPersistence")
		return ctrl.Result{}, nil
	}
	db := infra.DatabaseName(obj)
	if !st.secretsChanged && indexesCurrent(obj, db) {
		return ctrl.Result{}, nil
	}
	mctx, cancel := context.WithTimeout(ctx, migrationTimeout)
	defer cancel()
	sum, err := persist.MigrateIndexes(mctx, st.mongo.Database(db), servedKinds(obj))
	setIndexesCondition(obj, sum, err)
	if err != nil {
		ctrl.LoggerFrom(ctx).Info("index migration failed", "collection", sum.FailedCollection, "index", sum.FailedIndex, "error", err.Error())
	} else if sum.Created+sum.Replaced > 0 {
		r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, "IndexesMigrated", "MigrateIndexes",
			"database %s: %d created, %d replaced, %d unchanged", db, sum.Created, sum.Replaced, sum.Unchanged)
	}
	return ctrl.Result{}, nil
}

// reconcileStore folds the gateway's StoreReady into the summary. The gateway's
// tenant registry owns that condition; the controller never writes it, it only
// keeps it (see patchStatus) so Ready can require it once reported.
func (r *BacktestPersistenceReconciler) reconcileStore(_ context.Context, _ *v1.BacktestPersistence, _ *reconcileState) (ctrl.Result, error) {
	return ctrl.Result{}, nil
}

// summarize fills the status fields derived from the spec and computes Ready.
// status.endpoint belongs to the gateway (it knows its advertised URL), like StoreReady.
func (r *BacktestPersistenceReconciler) summarize(obj *v1.BacktestPersistence) {
	obj.Status.ObservedGeneration = obj.Generation
	obj.Status.Database = infra.DatabaseName(obj)
	obj.Status.KeyPrefix = infra.KeyPrefix(obj)
	setReadyCondition(obj)
}

// SetupWithManager registers the controller, its Secret index and watches.
func (r *BacktestPersistenceReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	b, err := r.builder(ctx, mgr)
	if err != nil {
		return err
	}
	return b.Complete(r)
}

// builder prepares the controller without completing it, so tests can wrap the reconciler.
func (r *BacktestPersistenceReconciler) builder(ctx context.Context, mgr ctrl.Manager) (*builder.TypedBuilder[reconcile.Request], error) {
	if r.Pools == nil {
		return nil, errors.New("BacktestPersistenceReconciler needs Pools")
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder(ControllerName)
	}
	r.tenants = newTenantClients(r.Pools)
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1.BacktestPersistence{}, secretRefsField, indexSecretRefs); err != nil {
		return nil, fmt.Errorf("index secret references: %w", err)
	}
	// Drop the tenants' client references when the manager stops.
	if err := mgr.Add(leaseReleaser{r.tenants}); err != nil {
		return nil, err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&v1.BacktestPersistence{}, builder.WithPredicates(relevantChange)).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.requestsForSecret), builder.OnlyMetadata).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}), nil
}

// leaseReleaser releases every tenant's clients when the manager stops.
type leaseReleaser struct{ t *tenantClients }

func (l leaseReleaser) Start(ctx context.Context) error {
	<-ctx.Done()
	l.t.releaseAll()
	return nil
}

func (r *BacktestPersistenceReconciler) probeTimeout() time.Duration {
	if r.ProbeTimeout > 0 {
		return r.ProbeTimeout
	}
	return DefaultProbeTimeout
}

func healthCheckInterval(obj *v1.BacktestPersistence) time.Duration {
	if d := obj.Spec.HealthCheckInterval.Duration; d > 0 {
		return d
	}
	return DefaultHealthCheckInterval
}

// servedKinds are the rows of the kinds table the tenant uses (spec.adapters; empty: all).
func servedKinds(obj *v1.BacktestPersistence) []persist.KindSpec {
	if len(obj.Spec.Adapters) == 0 {
		return persist.Kinds
	}
	out := make([]persist.KindSpec, 0, len(obj.Spec.Adapters))
	for _, name := range obj.Spec.Adapters {
		if spec, ok := persist.Lookup(persist.Kind(name)); ok {
			out = append(out, *spec)
		}
	}
	return out
}

// lowestRequeue merges step results: the soonest requeue wins.
func lowestRequeue(a, b ctrl.Result) ctrl.Result {
	switch {
	case a.RequeueAfter == 0:
		return b
	case b.RequeueAfter == 0:
		return a
	case b.RequeueAfter < a.RequeueAfter:
		return b
	}
	return a
}
