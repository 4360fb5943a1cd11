package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/infra"
)

// protectedDatabases are never dropped, whatever the spec says.
var protectedDatabases = map[string]bool{"admin": true, "local": true, "config": true}

// reconcileDelete honours deletionPolicy, releases the tenant's clients and removes
// the finalizer. With Delete, the tenant's database is dropped and its Redis keys are
// removed by prefix, each only when this object owns it; with Retain nothing is
// touched, and the ownership records stay with the data (see reconcileOwnership for
// who may adopt it); a server that cannot be reached blocks the deletion (retried with
// backoff) rather than leaving data behind silently. Without readable Secrets the data
// cannot be reached at all: that is reported as a warning event and the finalizer is
// removed, so that deleting a namespace cannot hang.
func (r *BacktestPersistenceReconciler) reconcileDelete(ctx context.Context, obj *v1.BacktestPersistence) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(obj)
	if !controllerutil.ContainsFinalizer(obj, v1.Finalizer) {
		r.tenants.release(key)
		return ctrl.Result{}, nil
	}
	if obj.Spec.DeletionPolicy == v1.DeletionPolicyDelete {
		if err := r.deleteData(ctx, obj); err != nil {
			switch infra.Classify(err) {
			case infra.ClassSecretMissing, infra.ClassKeyMissing, infra.ClassInvalidURI:
				// Without usable credentials the data cannot be reached now or later.
				r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, "DataNotDeleted", "Delete",
					"deletionPolicy is Delete but the data cannot be reached: %s", eventNote(err.Error()))
			default:
				// Set deletionPolicy to Retain to let the object go without its data.
				r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, "DeleteFailed", "Delete",
					"deleting the tenant's data: %s", eventNote(err.Error()))
				return ctrl.Result{}, err
			}
		}
	}
	r.tenants.release(key)
	patch := client.MergeFromWithOptions(obj.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(obj, v1.Finalizer)
	if err := client.IgnoreNotFound(r.Patch(ctx, obj, patch)); err != nil {
		return ctrl.Result{}, fmt.Errorf("remove finalizer: %w", err)
	}
	return ctrl.Result{}, nil
}

// deleteData drops the tenant's database and removes its Redis keys, each only when
// its ownership record names this object: a database or key space another object
// owns (or that nobody claimed) is left alone. It uses the database and prefix
// recorded in status (what was actually used), falling back to the derived ones.
func (r *BacktestPersistenceReconciler) deleteData(ctx context.Context, obj *v1.BacktestPersistence) error {
	ep, err := infra.ResolveSecrets(ctx, r.APIReader, obj)
	if err != nil {
		return err
	}
	db := obj.Status.Database
	if db == "" {
		db = infra.DatabaseName(obj)
	}
	prefix := obj.Status.KeyPrefix
	if prefix == "" {
		prefix = infra.KeyPrefix(obj)
	}
	if protectedDatabases[db] {
		return fmt.Errorf("refusing to drop the %q database", db)
	}
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	key := client.ObjectKeyFromObject(obj)
	mc, err := r.tenants.mongo(ctx, key, ep.MongoURI, ep.MongoTLS)
	if err != nil {
		return err
	}
	rc, err := r.tenants.redis(ctx, key, ep.RedisURL, ep.RedisTLS)
	if err != nil {
		return err
	}
	me := infra.OwnerOf(obj)
	var errs []error
	var notes []string
	dbOwned, err := owns(ctx, infra.DatabaseClaim{DB: mc.Database(db)}, me)
	switch {
	case err != nil:
		errs = append(errs, err)
	case dbOwned:
		if err := infra.DropDatabase(ctx, mc, db); err != nil {
			errs = append(errs, err)
		} else {
			notes = append(notes, "dropped database "+db)
		}
	default:
		notes = append(notes, "left database "+db+" alone (not owned by this object)")
	}
	ks := infra.KeySpaceClaim{Client: rc, Prefix: prefix}
	ksOwned, err := owns(ctx, ks, me)
	switch {
	case err != nil:
		errs = append(errs, err)
	case ksOwned:
		n, err := infra.DeleteKeysWithPrefix(ctx, rc, prefix)
		if err == nil {
			// The claim goes last: until the keys are gone nobody else may claim them.
			err = ks.Release(ctx, me)
		}
		if err != nil {
			errs = append(errs, err)
		} else {
			notes = append(notes, fmt.Sprintf("removed %d Redis keys under %q", n, prefix))
		}
	default:
		notes = append(notes, fmt.Sprintf("left the Redis keys under %q alone (not owned by this object)", prefix))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, "DataDeleted", "Delete", "%s", strings.Join(notes, "; "))
	return nil
}

// owns reports whether c's ownership record names me.
func owns(ctx context.Context, c infra.Claim, me infra.Owner) (bool, error) {
	o, found, err := c.Owner(ctx)
	if err != nil {
		return false, err
	}
	return found && o.UID == me.UID, nil
}
