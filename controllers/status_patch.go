package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/backtestpersistence/operator/api/v1"
)

// errStaleObject says the status patch found the object changed since it was read
// (a StoreReady from the gateway, or a reconcile that read a stale cache). The
// status computed from the stale copy is discarded and the object reconciled again.
var errStaleObject = errors.New("object changed since it was read")

// patchStatus writes obj's status once, with optimistic locking: the patch applies
// only to the version that was read, so a StoreReady the gateway wrote meanwhile is
// never overwritten, and a reconcile working from a stale cache cannot replace a
// newer status. Events are emitted for every condition that changed status or reason.
func (r *BacktestPersistenceReconciler) patchStatus(ctx context.Context, before, obj *v1.BacktestPersistence) error {
	if equality.Semantic.DeepEqual(before.Status, obj.Status) {
		return nil
	}
	err := r.Status().Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	switch {
	case apierrors.IsConflict(err):
		return errStaleObject
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("patch status: %w", err)
	}
	r.emitTransitions(before, obj)
	return nil
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
		r.Recorder.Eventf(after, nil, typ, c.Reason, "Check"+c.Type, "%s is %s: %s", c.Type, c.Status, eventNote(c.Message))
	}
}

// maxEventNote keeps event notes under the API's 1 kB limit with room for the prefix.
const maxEventNote = 900

func eventNote(msg string) string {
	if len(msg) > maxEventNote {
		return msg[:maxEventNote-3] + "..."
	}
	return msg
}
