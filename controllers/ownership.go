package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/infra"
)

// errNotChecked: the server of a claim did not answer its probe, so the claim was not checked.
var errNotChecked = errors.New("not checked")

// reconcileOwnership claims the tenant's database and Redis key space for this object,
// or confirms on every reconcile that the claims still name it. A database or key
// space recorded for another object that still exists is refused (DataOwned False);
// one whose recorded owner no longer exists is an orphan (a Retained tenant) and is
// taken over only by an object of the same namespace.
func (r *BacktestPersistenceReconciler) reconcileOwnership(ctx context.Context, obj *v1.BacktestPersistence, st *reconcileState) (ctrl.Result, error) {
	dbErr, ksErr := errNotChecked, errNotChecked
	if st.mongo != nil {
		dbErr = r.claim(ctx, obj, infra.DatabaseClaim{DB: st.mongo.Database(infra.DatabaseName(obj))})
	}
	if st.redis != nil {
		ksErr = r.claim(ctx, obj, infra.KeySpaceClaim{Client: st.redis, Prefix: infra.KeyPrefix(obj)})
	}
	for _, err := range []error{dbErr, ksErr} {
		if err != nil && err != errNotChecked && !infra.IsClaimed(err) {
			ctrl.LoggerFrom(ctx).V(1).Info("ownership check failed", "error", err.Error())
		}
	}
	setOwnershipCondition(obj, dbErr, ksErr, st.secretsChanged)
	st.databaseOwned = dbErr == nil
	return ctrl.Result{}, nil
}

// claim claims c for obj, taking over an orphan of the same namespace.
func (r *BacktestPersistenceReconciler) claim(ctx context.Context, obj *v1.BacktestPersistence, c infra.Claim) error {
	ctx, cancel := context.WithTimeout(ctx, r.probeTimeout())
	defer cancel()
	me := infra.OwnerOf(obj)
	err := c.Claim(ctx, me)
	var held *infra.ClaimedError
	if !errors.As(err, &held) || held.Overlap || held.Holder.Namespace != obj.Namespace {
		// Data retained from another namespace is never handed over: an administrator
		// removes its marker to release it.
		return err
	}
	orphan, oerr := r.isOrphan(ctx, held.Holder)
	if oerr != nil || !orphan {
		return errors.Join(err, oerr)
	}
	took, terr := c.TakeOver(ctx, held.Holder, me)
	if terr != nil {
		return terr
	}
	if !took {
		// The record changed meanwhile: whatever it says now decides.
		return c.Claim(ctx, me)
	}
	ctrl.LoggerFrom(ctx).Info("adopted data retained by a deleted BacktestPersistence", "resource", string(c.What()),
		"previousOwner", held.Holder.Namespace+"/"+held.Holder.Name, "previousUID", held.Holder.UID)
	r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, "DataAdopted", "Claim",
		"took over the %s retained by a deleted BacktestPersistence of this namespace", c.What())
	return nil
}

// isOrphan reports whether the recorded owner no longer exists: no object of that
// namespace and name, or one with another UID (deleted and recreated). It reads the
// API server directly: a cache that has not yet seen a new owner must not make it
// look deleted.
func (r *BacktestPersistenceReconciler) isOrphan(ctx context.Context, o infra.Owner) (bool, error) {
	if o.UID == "" || o.Namespace == "" || o.Name == "" {
		return false, nil // not a record this controller wrote; leave it alone
	}
	var cur v1.BacktestPersistence
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: o.Namespace, Name: o.Name}, &cur)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("look up the recorded owner: %w", err)
	}
	return string(cur.UID) != o.UID, nil
}
