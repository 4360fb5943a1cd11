package controllers

import (
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/infra"
	"github.com/backtestpersistence/operator/internal/persist"
)

// This file holds the pure status logic: every function here only reads and
// writes the object it is given, so each is table-tested without a cluster.

// maxConditionMessage keeps messages readable in kubectl output (the API allows 32768).
const maxConditionMessage = 1024

// readyDependencies are the conditions Ready summarizes, in the order their failure is reported.
var readyDependencies = []string{v1.ConditionMongoReady, v1.ConditionRedisReady, v1.ConditionDataOwned, v1.ConditionIndexesReady, v1.ConditionStoreReady}

func setCondition(obj *v1.BacktestPersistence, typ string, status metav1.ConditionStatus, reason, msg string) {
	if len(msg) > maxConditionMessage {
		msg = msg[:maxConditionMessage-3] + "..."
	}
	meta.SetStatusCondition(&obj.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: obj.Generation,
	})
}

// statusFor maps an error to a condition status: "checked and bad" is False,
// "could not check" is Unknown.
func statusFor(err error) metav1.ConditionStatus {
	switch infra.Classify(err) {
	case infra.ClassNone:
		return metav1.ConditionTrue
	case infra.ClassCheckFailed:
		return metav1.ConditionUnknown
	default:
		return metav1.ConditionFalse
	}
}

// setProbeCondition records the outcome of a MongoDB or Redis probe (or of getting
// its client) on condType. version is the server version on success.
func setProbeCondition(obj *v1.BacktestPersistence, condType string, err error, version string) {
	if err == nil {
		msg := "server answered"
		if version != "" {
			msg = "server version " + version + " answered"
		}
		setCondition(obj, condType, metav1.ConditionTrue, v1.ReasonSucceeded, msg)
		return
	}
	setCondition(obj, condType, statusFor(err), infra.Reason(err), err.Error())
}

// setSecretsCondition records a failure to resolve the Secrets: the condition of the
// reference that failed gets the reason (SecretMissing, SecretKeyMissing); the other
// checks could not run.
func setSecretsCondition(obj *v1.BacktestPersistence, err error) {
	failed := v1.ConditionMongoReady
	if name := secretOf(err); name != "" && name != obj.Spec.Mongo.URISecretRef.Name && name != caSecretOf(obj.Spec.Mongo.TLS) {
		failed = v1.ConditionRedisReady
	}
	setCondition(obj, failed, statusFor(err), infra.Reason(err), err.Error())
	for _, t := range []string{v1.ConditionMongoReady, v1.ConditionRedisReady, v1.ConditionDataOwned, v1.ConditionIndexesReady} {
		if t != failed {
			setDependencyNotReady(obj, t, "waiting for the referenced Secrets")
		}
	}
}

func secretOf(err error) string {
	var sm *infra.SecretMissingError
	var km *infra.KeyMissingError
	switch {
	case errors.As(err, &sm):
		return sm.Name
	case errors.As(err, &km):
		return km.Name
	}
	return ""
}

func caSecretOf(t *v1.TLSSpec) string {
	if t == nil || t.CASecretRef == nil {
		return ""
	}
	return t.CASecretRef.Name
}

// setDependencyNotReady marks a check that was not attempted as Unknown.
func setDependencyNotReady(obj *v1.BacktestPersistence, condType, msg string) {
	setCondition(obj, condType, metav1.ConditionUnknown, v1.ReasonDependencyNotReady, msg)
}

// setOwnershipCondition records the claims of the database (dbErr) and of the key
// space (ksErr); errNotChecked marks a claim whose server did not answer. A claim held
// by another object is False (DatabaseInUse before KeyPrefixOverlaps); a claim that
// could not be completed is Unknown. A claim that was not checked keeps an earlier
// True as long as the Secrets are the ones it was verified with: only the owner ever
// releases a claim, so a server that is down for a while does not take it away.
func setOwnershipCondition(obj *v1.BacktestPersistence, dbErr, ksErr error, secretsChanged bool) {
	switch {
	case infra.IsClaimed(dbErr):
		setCondition(obj, v1.ConditionDataOwned, metav1.ConditionFalse, v1.ReasonDatabaseInUse, ownershipMessage(dbErr, ksErr))
		return
	case infra.IsClaimed(ksErr):
		setCondition(obj, v1.ConditionDataOwned, metav1.ConditionFalse, v1.ReasonKeyPrefixOverlaps, ownershipMessage(dbErr, ksErr))
		return
	}
	for _, c := range []struct {
		err  error
		what string
	}{{dbErr, "database"}, {ksErr, "Redis key space"}} {
		if c.err != nil && !errors.Is(c.err, errNotChecked) {
			setCondition(obj, v1.ConditionDataOwned, metav1.ConditionUnknown, v1.ReasonCheckFailed,
				"could not check the ownership of the "+c.what+": "+c.err.Error())
			return
		}
	}
	if dbErr == nil && ksErr == nil {
		setCondition(obj, v1.ConditionDataOwned, metav1.ConditionTrue, v1.ReasonSucceeded,
			"the database and the Redis key space are owned by this BacktestPersistence")
		return
	}
	if prev := meta.FindStatusCondition(obj.Status.Conditions, v1.ConditionDataOwned); prev != nil && prev.Status == metav1.ConditionTrue && !secretsChanged {
		return
	}
	var missing []string
	if dbErr != nil {
		missing = append(missing, "MongoDB")
	}
	if ksErr != nil {
		missing = append(missing, "Redis")
	}
	setDependencyNotReady(obj, v1.ConditionDataOwned, strings.Join(missing, " and ")+" not ready: ownership not checked")
}

// ownershipMessage joins the refusals; neither names the other object.
func ownershipMessage(dbErr, ksErr error) string {
	var msgs []string
	for _, err := range []error{dbErr, ksErr} {
		if infra.IsClaimed(err) {
			var c *infra.ClaimedError
			errors.As(err, &c)
			msgs = append(msgs, c.Error())
		}
	}
	return strings.Join(msgs, "; ")
}

// setIndexesCondition records an index migration and its summary.
func setIndexesCondition(obj *v1.BacktestPersistence, sum persist.MigrationSummary, err error) {
	obj.Status.Indexes = &v1.IndexStatus{
		Created: int32(sum.Created), Replaced: int32(sum.Replaced), Unchanged: int32(sum.Unchanged), Failed: int32(sum.Failed),
		FailedCollection: sum.FailedCollection, FailedIndex: sum.FailedIndex,
	}
	if err == nil {
		setCondition(obj, v1.ConditionIndexesReady, metav1.ConditionTrue, v1.ReasonSucceeded,
			fmt.Sprintf("%d created, %d replaced, %d unchanged", sum.Created, sum.Replaced, sum.Unchanged))
		return
	}
	obj.Status.Indexes.Message = truncate(err.Error())
	if isServerRefusal(err) {
		setCondition(obj, v1.ConditionIndexesReady, metav1.ConditionFalse, v1.ReasonMigrationFailed, err.Error())
		return
	}
	// The server went away or timed out mid-migration: the indexes' state is unknown.
	setCondition(obj, v1.ConditionIndexesReady, metav1.ConditionUnknown, v1.ReasonCheckFailed, err.Error())
}

// setReadyCondition summarizes the dependencies into Ready: True when every
// dependency is True (StoreReady only once it has been reported); otherwise False
// when one is False, else Unknown, with the reason and message of the first such
// dependency.
func setReadyCondition(obj *v1.BacktestPersistence) {
	var firstFalse, firstUnknown *metav1.Condition
	for _, t := range readyDependencies {
		c := meta.FindStatusCondition(obj.Status.Conditions, t)
		if c == nil {
			if t == v1.ConditionStoreReady {
				continue // the gateway has not reported yet
			}
			c = &metav1.Condition{Type: t, Status: metav1.ConditionUnknown, Reason: v1.ReasonProgressing, Message: "not checked yet"}
		}
		switch c.Status {
		case metav1.ConditionFalse:
			if firstFalse == nil {
				firstFalse = c
			}
		case metav1.ConditionUnknown:
			if firstUnknown == nil {
				firstUnknown = c
			}
		}
	}
	switch {
	case firstFalse != nil:
		setCondition(obj, v1.ConditionReady, metav1.ConditionFalse, firstFalse.Reason, firstFalse.Type+": "+firstFalse.Message)
	case firstUnknown != nil:
		setCondition(obj, v1.ConditionReady, metav1.ConditionUnknown, firstUnknown.Reason, firstUnknown.Type+": "+firstUnknown.Message)
	default:
		setCondition(obj, v1.ConditionReady, metav1.ConditionTrue, v1.ReasonSucceeded, "MongoDB, Redis and indexes are ready")
	}
}

func truncate(s string) string {
	if len(s) > maxConditionMessage {
		return s[:maxConditionMessage-3] + "..."
	}
	return s
}

// isServerRefusal: the server answered and refused (duplicate data under a new
// unique index, conflicting options), as opposed to a transport failure.
func isServerRefusal(err error) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && !mongo.IsNetworkError(err) && !mongo.IsTimeout(err)
}

// indexesCurrent: the last migration succeeded for this generation and database,
// so running it again would change nothing.
func indexesCurrent(obj *v1.BacktestPersistence, db string) bool {
	c := meta.FindStatusCondition(obj.Status.Conditions, v1.ConditionIndexesReady)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == obj.Generation && obj.Status.Database == db
}
