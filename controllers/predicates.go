package controllers

import (
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	v1 "github.com/backtestpersistence/operator/api/v1"
)

// relevantChange lets through updates the reconciler must act on: a new generation,
// deletion, finalizers or annotations changed, or a new StoreReady from the gateway
// (Ready folds it in). The controller's own status patches do not pass, so they
// cause no extra reconcile.
var relevantChange = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		oldObj, ok1 := e.ObjectOld.(*v1.BacktestPersistence)
		newObj, ok2 := e.ObjectNew.(*v1.BacktestPersistence)
		if !ok1 || !ok2 {
			return true
		}
		if oldObj.Generation != newObj.Generation ||
			!oldObj.DeletionTimestamp.Equal(newObj.DeletionTimestamp) ||
			!equality.Semantic.DeepEqual(oldObj.Finalizers, newObj.Finalizers) ||
			!equality.Semantic.DeepEqual(oldObj.Annotations, newObj.Annotations) {
			return true
		}
		o := meta.FindStatusCondition(oldObj.Status.Conditions, v1.ConditionStoreReady)
		n := meta.FindStatusCondition(newObj.Status.Conditions, v1.ConditionStoreReady)
		switch {
		case o == nil && n == nil:
			return false
		case o == nil || n == nil:
			return true
		}
		return o.Status != n.Status || o.Reason != n.Reason || o.ObservedGeneration != n.ObservedGeneration
	},
}
