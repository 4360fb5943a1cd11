package tenant

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/infra"
)

// +kubebuilder:rbac:groups=persistence.backtestkit.dev,resources=backtestpersistences,verbs=get;list;watch
// +kubebuilder:rbac:groups=persistence.backtestkit.dev,resources=backtestpersistences/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch

// Reconciler feeds the Registry from the manager's informers. It runs on every
// replica (stores follow the informer, not leadership). Only the elected leader
// writes StoreReady and status.endpoint, from its own registry's view: every replica
// computes the same state from the same objects, so one writer is enough and two
// replicas never fight over the condition.
type Reconciler struct {
	// Client reads from the manager's cache and patches status.
	Client client.Client
	// APIReader reads Secrets straight from the API server, so the manager caches
	// only Secret metadata (for the watch), never their contents. Nil: Client.
	APIReader client.Reader
	Registry  *Registry
	Opener    Opener
	// Endpoint is the gateway's advertised URL, written to status.endpoint.
	Endpoint string
	// Elected is closed once this replica leads (mgr.Elected()); nil: never write status.
	Elected <-chan struct{}
	// OpenTimeout bounds opening one store (default 15s).
	OpenTimeout time.Duration

	kick chan event.GenericEvent
}

// SetupWithManager registers the reconciler and its leader-side helper with mgr.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.OpenTimeout <= 0 {
		r.OpenTimeout = 15 * time.Second
	}
	r.kick = make(chan event.GenericEvent, 64)
	err := ctrl.NewControllerManagedBy(mgr).
		Named("tenant-registry").
		For(&v1.BacktestPersistence{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.tenantsOfSecret), builder.OnlyMetadata).
		WatchesRawSource(source.Channel(r.kick, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false), MaxConcurrentReconciles: 4}).
		Complete(r)
	if err != nil {
		return fmt.Errorf("set up tenant registry controller: %w", err)
	}
	if err := mgr.Add(&leaderKick{r: r}); err != nil {
		return fmt.Errorf("add tenant status runnable: %w", err)
	}
	if err := mgr.Add(&syncWatcher{r: r, cache: mgr.GetCache()}); err != nil {
		return fmt.Errorf("add tenant sync runnable: %w", err)
	}
	return nil
}

// Reconcile brings the registry's entry of one tenant in line with its object.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	var obj v1.BacktestPersistence
	if err := r.Client.Get(ctx, req.NamespacedName, &obj); err != nil {
		if apierrors.IsNotFound(err) {
			r.Registry.remove(req.NamespacedName)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("get %s: %w", req.NamespacedName, err)
	}
	e, err := r.desiredEntry(ctx, req.NamespacedName, &obj)
	r.Registry.set(req.NamespacedName, e)
	if e.unavailable != nil {
		log.V(1).Info("tenant not served", "reason", e.unavailable.Reason, "message", e.unavailable.Message)
	}
	if perr := r.reportStatus(ctx, &obj, e); perr != nil {
		return reconcile.Result{}, errors.Join(err, perr)
	}
	return reconcile.Result{}, err
}

// desiredEntry computes the tenant's new state, opening a store when its config changed.
// An error means "retry with backoff"; the entry is valid either way.
func (r *Reconciler) desiredEntry(ctx context.Context, key types.NamespacedName, obj *v1.BacktestPersistence) (*entry, error) {
	if u := checkServable(obj); u != nil {
		return &entry{unavailable: u}, nil
	}
	secrets := r.APIReader
	if secrets == nil {
		secrets = r.Client
	}
	ep, err := infra.ResolveSecrets(ctx, secrets, obj)
	if err != nil {
		u := &UnavailableError{Reason: "SecretsUnresolved", Message: err.Error()}
		if infra.IsSecretMissing(err) || infra.IsKeyMissing(err) {
			return &entry{unavailable: u}, nil // the Secret watch brings us back
		}
		return &entry{unavailable: u}, err
	}
	cfg := configFor(obj, ep)
	fp := cfg.Fingerprint()
	if cur, ok := r.Registry.state(key); ok && cur.handle != nil && cur.fingerprint == fp {
		return &entry{handle: cur.handle, fingerprint: fp}, nil
	}
	octx, cancel := context.WithTimeout(ctx, r.OpenTimeout)
	defer cancel()
	store, err := r.Opener.Open(octx, cfg)
	if err != nil {
		var u *UnavailableError
		if errors.As(err, &u) {
			// Not owned (yet): retried with backoff, as the controller may be claiming now.
			return &entry{unavailable: u}, fmt.Errorf("open store of %s: %w", key, err)
		}
		return &entry{unavailable: &UnavailableError{Reason: "StoreInitFailed", Message: err.Error()}},
			fmt.Errorf("open store of %s: %w", key, err)
	}
	return &entry{handle: &handle{store: store}, fingerprint: fp}, nil
}

// isLeader reports whether this replica currently leads.
func (r *Reconciler) isLeader() bool {
	if r.Elected == nil {
		return false
	}
	select {
	case <-r.Elected:
		return true
	default:
		return false
	}
}

// reportStatus writes StoreReady and status.endpoint when this replica leads and they changed.
// The patch carries the resourceVersion, so it never overwrites a concurrent status
// change of the reconciler: a conflict is retried from fresh state.
func (r *Reconciler) reportStatus(ctx context.Context, obj *v1.BacktestPersistence, e *entry) error {
	if !r.isLeader() || !obj.DeletionTimestamp.IsZero() {
		return nil
	}
	patched := obj.DeepCopy()
	if !setStoreStatus(patched, e, r.Endpoint) {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, patched, client.MergeFromWithOptions(obj, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("patch StoreReady of %s/%s: %w", obj.Namespace, obj.Name, err)
	}
	return nil
}

// tenantsOfSecret maps a Secret to the tenants of its namespace that reference it.
func (r *Reconciler) tenantsOfSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1.BacktestPersistenceList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list tenants for a Secret change", "secret", o.GetName())
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		if slices.Contains(infra.SecretNames(&list.Items[i]), o.GetName()) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return out
}

// enqueueAll sends every tenant through the reconciler again.
func (r *Reconciler) enqueueAll(ctx context.Context) error {
	var list v1.BacktestPersistenceList
	if err := r.Client.List(ctx, &list); err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	for i := range list.Items {
		select {
		case r.kick <- event.GenericEvent{Object: &list.Items[i]}:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}
