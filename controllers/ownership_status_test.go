package controllers

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/infra"
)

func TestSetOwnershipCondition(t *testing.T) {
	holder := infra.Owner{UID: "u-other", Namespace: "secret-team", Name: "secret-name"}
	inUse := &infra.ClaimedError{Resource: infra.ResourceDatabase, Holder: holder}
	overlap := &infra.ClaimedError{Resource: infra.ResourceKeySpace, Holder: holder, Overlap: true}
	T, F, U := metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown
	tests := []struct {
		name           string
		prev           metav1.ConditionStatus // "" for none
		db, ks         error
		secretsChanged bool
		wantStatus     metav1.ConditionStatus
		wantReason     string
	}{
		{"both owned", "", nil, nil, false, T, v1.ReasonSucceeded},
		{"database in use", "", inUse, nil, false, F, v1.ReasonDatabaseInUse},
		{"prefix overlaps", "", nil, overlap, false, F, v1.ReasonKeyPrefixOverlaps},
		{"database refusal reported first", T, inUse, overlap, false, F, v1.ReasonDatabaseInUse},
		{"refusal beats a failed check", "", errors.New("timeout"), overlap, false, F, v1.ReasonKeyPrefixOverlaps},
		{"check failed", T, errors.New("i/o timeout"), nil, false, U, v1.ReasonCheckFailed},
		{"not checked first time", "", nil, errNotChecked, false, U, v1.ReasonDependencyNotReady},
		{"not checked keeps a verified claim", T, nil, errNotChecked, false, T, v1.ReasonSucceeded},
		{"not checked after a Secret change", T, nil, errNotChecked, true, U, v1.ReasonDependencyNotReady},
		{"refusal replaces a verified claim", T, nil, overlap, false, F, v1.ReasonKeyPrefixOverlaps},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := newObj(2)
			if tc.prev != "" {
				setCondition(o, v1.ConditionDataOwned, tc.prev, v1.ReasonSucceeded, "m")
			}
			setOwnershipCondition(o, tc.db, tc.ks, tc.secretsChanged)
			c := cond(o, v1.ConditionDataOwned)
			if c.Status != tc.wantStatus || c.Reason != tc.wantReason {
				t.Fatalf("DataOwned = %+v, want %s/%s", c, tc.wantStatus, tc.wantReason)
			}
			for _, secret := range []string{holder.Namespace, holder.Name, holder.UID} {
				if strings.Contains(c.Message, secret) {
					t.Fatalf("the message names the other tenant (%q): %s", secret, c.Message)
				}
			}
		})
	}
}
