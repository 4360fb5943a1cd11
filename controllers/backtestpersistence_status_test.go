package controllers

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/infra"
	"github.com/backtestpersistence/operator/internal/persist"
)

func newObj(gen int64) *v1.BacktestPersistence {
	o := &v1.BacktestPersistence{}
	o.Namespace, o.Name, o.Generation = "ns", "bt", gen
	o.Spec.Mongo.URISecretRef = v1.SecretKeySelector{Name: "mongo", Key: "uri"}
	o.Spec.Redis.URLSecretRef = v1.SecretKeySelector{Name: "redis", Key: "url"}
	return o
}

func cond(o *v1.BacktestPersistence, t string) metav1.Condition {
	c := meta.FindStatusCondition(o.Status.Conditions, t)
	if c == nil {
		return metav1.Condition{Type: t, Status: "<none>"}
	}
	return *c
}

func TestSetProbeCondition(t *testing.T) {
	refused := &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name       string
		err        error
		wantStatus metav1.ConditionStatus
		wantReason string
	}{
		{"ok", nil, metav1.ConditionTrue, v1.ReasonSucceeded},
		{"unreachable", fmt.Errorf("ping: %w", refused), metav1.ConditionFalse, v1.ReasonUnreachable},
		{"auth", mongo.CommandError{Code: 18, Message: "Authentication failed"}, metav1.ConditionFalse, v1.ReasonAuthenticationFailed},
		{"invalid uri", &infra.InvalidURIError{What: "mongo URI", Reason: "bad"}, metav1.ConditionFalse, v1.ReasonInvalidURI},
		{"could not check", errors.New("something odd"), metav1.ConditionUnknown, v1.ReasonCheckFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := newObj(3)
			setProbeCondition(o, v1.ConditionMongoReady, tc.err, "7.0.0")
			c := cond(o, v1.ConditionMongoReady)
			if c.Status != tc.wantStatus || c.Reason != tc.wantReason || c.ObservedGeneration != 3 {
				t.Fatalf("condition %+v, want %s/%s at generation 3", c, tc.wantStatus, tc.wantReason)
			}
		})
	}
}

func TestSetSecretsCondition(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		failed     string
		wantReason string
	}{
		{"mongo secret missing", &infra.SecretMissingError{Namespace: "ns", Name: "mongo"}, v1.ConditionMongoReady, v1.ReasonSecretMissing},
		{"redis secret missing", &infra.SecretMissingError{Namespace: "ns", Name: "redis"}, v1.ConditionRedisReady, v1.ReasonSecretMissing},
		{"redis key missing", &infra.KeyMissingError{Namespace: "ns", Name: "redis", Key: "url"}, v1.ConditionRedisReady, v1.ReasonSecretKeyMissing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := newObj(1)
			setSecretsCondition(o, tc.err)
			if c := cond(o, tc.failed); c.Status != metav1.ConditionFalse || c.Reason != tc.wantReason {
				t.Fatalf("%s = %+v", tc.failed, c)
			}
			for _, other := range []string{v1.ConditionMongoReady, v1.ConditionRedisReady, v1.ConditionDataOwned, v1.ConditionIndexesReady} {
				if other == tc.failed {
					continue
				}
				if c := cond(o, other); c.Status != metav1.ConditionUnknown || c.Reason != v1.ReasonDependencyNotReady {
					t.Fatalf("%s = %+v, want Unknown/DependencyNotReady", other, c)
				}
			}
			setReadyCondition(o)
			if c := cond(o, v1.ConditionReady); c.Status != metav1.ConditionFalse || c.Reason != tc.wantReason {
				t.Fatalf("Ready = %+v, want False/%s", c, tc.wantReason)
			}
		})
	}
}

func TestSetIndexesCondition(t *testing.T) {
	refused := &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
	dup := mongo.CommandError{Code: 11000, Message: "duplicate key"}
	tests := []struct {
		name       string
		sum        persist.MigrationSummary
		err        error
		wantStatus metav1.ConditionStatus
		wantReason string
	}{
		{"ok", persist.MigrationSummary{Created: 3, Unchanged: 2}, nil, metav1.ConditionTrue, v1.ReasonSucceeded},
		{"server refused", persist.MigrationSummary{Failed: 1, FailedCollection: "c", FailedIndex: "i"},
			fmt.Errorf("index i on c: create: %w", dup), metav1.ConditionFalse, v1.ReasonMigrationFailed},
		{"server went away", persist.MigrationSummary{Failed: 1, FailedCollection: "c"},
			fmt.Errorf("list: %w", refused), metav1.ConditionUnknown, v1.ReasonCheckFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := newObj(2)
			setIndexesCondition(o, tc.sum, tc.err)
			c := cond(o, v1.ConditionIndexesReady)
			if c.Status != tc.wantStatus || c.Reason != tc.wantReason {
				t.Fatalf("IndexesReady = %+v, want %s/%s", c, tc.wantStatus, tc.wantReason)
			}
			ix := o.Status.Indexes
			if ix == nil || int(ix.Created) != tc.sum.Created || int(ix.Failed) != tc.sum.Failed ||
				ix.FailedCollection != tc.sum.FailedCollection || ix.FailedIndex != tc.sum.FailedIndex {
				t.Fatalf("status.indexes = %+v, want %+v", ix, tc.sum)
			}
			if (tc.err != nil) != (ix.Message != "") {
				t.Fatalf("status.indexes.message = %q for error %v", ix.Message, tc.err)
			}
		})
	}
}

func TestSetReadyCondition(t *testing.T) {
	T, F, U := metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown
	type in struct {
		typ    string
		status metav1.ConditionStatus
		reason string
	}
	tests := []struct {
		name       string
		conds      []in
		wantStatus metav1.ConditionStatus
		wantReason string
	}{
		{"nothing checked yet", nil, U, v1.ReasonProgressing},
		{"all true without store", []in{{v1.ConditionMongoReady, T, "Succeeded"}, {v1.ConditionRedisReady, T, "Succeeded"}, {v1.ConditionDataOwned, T, "Succeeded"}, {v1.ConditionIndexesReady, T, "Succeeded"}}, T, v1.ReasonSucceeded},
		{"store reported true", []in{{v1.ConditionMongoReady, T, "Succeeded"}, {v1.ConditionRedisReady, T, "Succeeded"}, {v1.ConditionDataOwned, T, "Succeeded"}, {v1.ConditionIndexesReady, T, "Succeeded"}, {v1.ConditionStoreReady, T, "Open"}}, T, v1.ReasonSucceeded},
		{"store reported false", []in{{v1.ConditionMongoReady, T, "Succeeded"}, {v1.ConditionRedisReady, T, "Succeeded"}, {v1.ConditionDataOwned, T, "Succeeded"}, {v1.ConditionIndexesReady, T, "Succeeded"}, {v1.ConditionStoreReady, F, "OpenFailed"}}, F, "OpenFailed"},
		{"false wins over unknown", []in{{v1.ConditionMongoReady, U, v1.ReasonCheckFailed}, {v1.ConditionRedisReady, F, v1.ReasonUnreachable}, {v1.ConditionIndexesReady, T, "Succeeded"}}, F, v1.ReasonUnreachable},
		{"first false in order", []in{{v1.ConditionMongoReady, F, v1.ReasonAuthenticationFailed}, {v1.ConditionRedisReady, F, v1.ReasonUnreachable}}, F, v1.ReasonAuthenticationFailed},
		{"data owned by another", []in{{v1.ConditionMongoReady, T, "Succeeded"}, {v1.ConditionRedisReady, T, "Succeeded"}, {v1.ConditionDataOwned, F, v1.ReasonDatabaseInUse}, {v1.ConditionIndexesReady, U, v1.ReasonDependencyNotReady}}, F, v1.ReasonDatabaseInUse},
		{"unknown only", []in{{v1.ConditionMongoReady, T, "Succeeded"}, {v1.ConditionRedisReady, T, "Succeeded"}, {v1.ConditionDataOwned, T, "Succeeded"}, {v1.ConditionIndexesReady, U, v1.ReasonDependencyNotReady}}, U, v1.ReasonDependencyNotReady},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := newObj(5)
			for _, c := range tc.conds {
				setCondition(o, c.typ, c.status, c.reason, "m")
			}
			setReadyCondition(o)
			c := cond(o, v1.ConditionReady)
			if c.Status != tc.wantStatus || c.Reason != tc.wantReason || c.ObservedGeneration != 5 {
				t.Fatalf("Ready = %+v, want %s/%s", c, tc.wantStatus, tc.wantReason)
			}
		})
	}
}

func TestIndexesCurrent(t *testing.T) {
	o := newObj(2)
	o.Status.Database = "db"
	if indexesCurrent(o, "db") {
		t.Fatal("current without a condition")
	}
	setCondition(o, v1.ConditionIndexesReady, metav1.ConditionTrue, v1.ReasonSucceeded, "")
	if !indexesCurrent(o, "db") {
		t.Fatal("not current after success at this generation")
	}
	if indexesCurrent(o, "other") {
		t.Fatal("current for another database")
	}
	o.Generation = 3
	if indexesCurrent(o, "db") {
		t.Fatal("current after a new generation")
	}
}
