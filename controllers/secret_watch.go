package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/infra"
)

// secretRefsField indexes BacktestPersistences by the names of the Secrets they
// reference, so a Secret event finds its tenants without listing them all.
const secretRefsField = ".spec.secretRefs"

func indexSecretRefs(obj client.Object) []string {
	btp, ok := obj.(*v1.BacktestPersistence)
	if !ok {
		return nil
	}
	return infra.SecretNames(btp)
}

// requestsForSecret maps a Secret event to the BacktestPersistences of its namespace
// that reference it.
func (r *BacktestPersistenceReconciler) requestsForSecret(ctx context.Context, secret client.Object) []reconcile.Request {
	var list v1.BacktestPersistenceList
	if err := r.List(ctx, &list, client.InNamespace(secret.GetNamespace()),
		client.MatchingFields{secretRefsField: secret.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list BacktestPersistences referencing a Secret", "secret", secret.GetName())
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, item := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: item.Namespace, Name: item.Name}})
	}
	return out
}
