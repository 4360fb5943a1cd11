package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/backtestpersistence/operator/api/v1"
)

// patchStatus writes obj's status once, with optimistic locking so a StoreReady the
// gateway wrote meanwhile is never overwritten: on a conflict the latest object is
// read, its StoreReady kept, Ready recomputed and the patch retried. Events are
// emitted for every condition that changed status or reason.
func (r *BacktestPersistenceReconciler) patchStatus(ctx context.Context, before, obj *v1.BacktestPersistence) error {
	if equality.Semantic.DeepEqual(before.Status, obj.Status) {
		return nil
	}
	desired := obj.Status.DeepCopy()
	base := before
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		err := r.Status().Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
		if !apierrors.IsConflict(err) {
			return err
		}
		latest := &v1.BacktestPersistence{}
		if gerr := r.Get(ctx, client.ObjectKeyFromObject(obj), latest); gerr != nil {
			return gerr
		}
		base = latest.DeepCopy()
		mergeOwnStatus(latest, desired)
		*obj = *latest
		return err
	})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("patch status: %w", err)
	}
	r.emitTransitions(before, obj)
	return nil
}

// mergeOwnStatus puts the controller's status onto latest, keeping latest's
// StoreReady (the gateway's), and recomputes Ready.
func mergeOwnStatus(latest *v1.BacktestPersistence, own *v1.BacktestPersistenceStatus) {
	store := meta.FindStatusCondition(latest.Status.Conditions, v1.ConditionStoreReady)
	status := *own.DeepCopy()
	meta.RemoveStatusCondition(&status.Conditions, v1.ConditionStoreReady)
	if store != nil {
		status.Conditions = append(status.Conditions, *store)
	}
	latest.Status = status
	setReadyCondition(latest)
}

// emitTransitions records an event for each condition whose status or reason changed.
func (r *BacktestPersistenceReconciler) emitTransitions(before, after *v1.BacktestPersistence) {
	for _, c := range after.Status.Conditions {
		if c.Type == v1.ConditionStoreReady {
			continue
		}
		old := meta.FindStatusCondition(before.Status.Conditions, c.Type)
		if old != nil && old.Status == c.Status && old.Reason == c.Reason {
			continue
		}
		if old == nil && c.Status != metav1.ConditionTrue && c.Reason == v1.ReasonDependencyNotReady {
			continue // nothing happened yet worth telling
		}
		typ := corev1.EventTypeNormal
		if c.Status == metav1.ConditionFalse {
			typ = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(after, nil, typ, c.Reason, "Check"+c.Type, "%s is %s: %s", c.Type, c.Status, c.Message)
	}
}
