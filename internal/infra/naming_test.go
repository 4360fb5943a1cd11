package infra

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/backtestpersistence/operator/api/v1"
)

func btp(ns, name, uid string) *v1.BacktestPersistence {
	return &v1.BacktestPersistence{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}}
}

func TestDatabaseName(t *testing.T) {
	long := strings.Repeat("n", 200)
	tests := []struct {
		name, ns, obj, spec string
		want                string
	}{
		{"spec wins", "team", "bt", "custom_db", "custom_db"},
		{"derived", "team-a", "bt-1", "", "team-a_bt-1"},
		{"dots are replaced and hashed", "team", "bt.v1", "", ""},
		{"too long is cut and hashed", "team", long, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj := btp(tc.ns, tc.obj, "u")
			obj.Spec.Mongo.Database = tc.spec
			got := DatabaseName(obj)
			if tc.want != "" && got != tc.want {
				t.Fatalf("DatabaseName = %q, want %q", got, tc.want)
			}
			if len(got) > maxDatabaseName || strings.ContainsAny(got, `/\. "$*<>:|?`) {
				t.Fatalf("DatabaseName = %q is not a valid MongoDB database name", got)
			}
		})
	}
	// Distinct objects never share a derived database.
	seen := map[string]string{}
	for _, pair := range [][2]string{{"a-b", "c"}, {"a", "b-c"}, {"team", "bt.v1"}, {"team", "bt-v1"}, {"team", long}, {"team", long + "x"}} {
		got := DatabaseName(btp(pair[0], pair[1], "u"))
		if other, dup := seen[got]; dup {
			t.Fatalf("%v and %s both derive %q", pair, other, got)
		}
		seen[got] = pair[0] + "/" + pair[1]
	}
}

func TestKeyPrefix(t *testing.T) {
	tests := []struct {
		name, spec, uid, want string
	}{
		{"derived from uid", "", "1234-abcd", "btp:1234-abcd:"},
		{"spec gets a separator", "tenant1", "u", "tenant1:"},
		{"spec separator kept", "tenant1:", "u", "tenant1:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj := btp("ns", "n", tc.uid)
			obj.Spec.Redis.KeyPrefix = tc.spec
			if got := KeyPrefix(obj); got != tc.want {
				t.Fatalf("KeyPrefix = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEscapeGlob(t *testing.T) {
	if got := escapeGlob(`a*b?[c]\`); got != `a\*b\?\[c\]\\` {
		t.Fatalf("escapeGlob = %q", got)
	}
}

func TestCacheIdentity(t *testing.T) {
	a := CacheIdentity("mongodb://u:old@db-0:27017,db-1:27017/?replicaSet=rs0", "d1")
	b := CacheIdentity("mongodb://u:new@db-0:27017,db-1:27017/?replicaSet=rs0", "d1")
	if a != b {
		t.Fatalf("a rotated password changed the identity: %q vs %q", a, b)
	}
	if strings.Contains(a, "old") {
		t.Fatalf("identity carries the password: %q", a)
	}
	for _, other := range [][2]string{
		{"mongodb://u:old@db-0:27017,db-1:27017/?replicaSet=rs0", "d2"},
		{"mongodb://u:old@other:27017/?replicaSet=rs0", "d1"},
	} {
		if CacheIdentity(other[0], other[1]) == a {
			t.Fatalf("%+v has the identity of another database", other)
		}
	}
}
