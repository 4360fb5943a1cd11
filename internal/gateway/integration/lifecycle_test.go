package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/backtestpersistence/operator/api/v1"
)

// TestTenantLifecycle: the registry follows a tenant from creation (503 until its
// conditions are True) through a Secret rotation (the store is reopened on the new
// server) to deletion (404), on both replicas; spec.adapters limits the kinds served.
func TestTenantLifecycle(t *testing.T) {
	ctx := context.Background()
	a, b := suite.a, suite.b
	tok := suite.tokens["a-writer"]
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: "conn-c"},
		StringData: map[string]string{"mongo": a.mongo.URI(), "redis": a.redis.URL()}}
	if err := suite.k8s.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	c := &tenantEnv{ns: a.ns, name: "lifecycle", obj: &v1.BacktestPersistence{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: "lifecycle"},
		Spec: v1.BacktestPersistenceSpec{
			Mongo:    v1.MongoSpec{URISecretRef: v1.SecretKeySelector{Name: "conn-c", Key: "mongo"}},
			Redis:    v1.RedisSpec{URLSecretRef: v1.SecretKeySelector{Name: "conn-c", Key: "redis"}},
			Adapters: []string{"state"},
		}}}
	if err := suite.k8s.Create(ctx, c.obj); err != nil {
		t.Fatal(err)
	}
	path := opsPath(c.ns, c.name)
	read := `{"kind":"state","op":"read","key":{"signalId":"life","bucketName":"b"}}`
	for _, g := range suite.gws {
		eventually(t, 30*time.Second, func() error {
			status, body := post(g, tok, path, read)
			if status != 503 || !strings.Contains(string(body), "MongoReady") {
				return fmt.Errorf("before the controller reports: %d %s", status, body)
			}
			return nil
		})
	}
	eventually(t, 30*time.Second, func() error { return claimData(ctx, c.obj, a.mclient, a.redis.Client()) })
	if err := setConditions(ctx, c, metav1.ConditionTrue, "Succeeded", "ok",
		v1.ConditionMongoReady, v1.ConditionRedisReady, v1.ConditionDataOwned, v1.ConditionIndexesReady); err != nil {
		t.Fatal(err)
	}
	for _, g := range suite.gws {
		eventually(t, 30*time.Second, func() error {
			if status, body := post(g, tok, path, read); status != 200 {
				return fmt.Errorf("after ready via %s: %d %s", g.url, status, body)
			}
			return nil
		})
	}
	if status, body := post(suite.gws[0], tok, path, `{"kind":"state","op":"write","key":{"signalId":"life","bucketName":"b"},"value":{"v":"on-a"},"when":1}`); status != 200 {
		t.Fatalf("write: %d %s", status, body)
	}
	if status, body := post(suite.gws[1], tok, path, `{"kind":"log","op":"read","key":{}}`); status != 400 || !strings.Contains(string(body), "not served") {
		t.Fatalf("kind outside spec.adapters: %d %s", status, body)
	}
	// Rotate the Secret to tenant B's servers: the same database name there is empty.
	if err := suite.k8s.Get(ctx, client.ObjectKeyFromObject(sec), sec); err != nil {
		t.Fatal(err)
	}
	sec.Data = map[string][]byte{"mongo": []byte(b.mongo.URI()), "redis": []byte(b.redis.URL())}
	if err := suite.k8s.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	// Until the database there names the tenant, the registry does not open a store on it.
	for _, g := range suite.gws {
		eventually(t, 30*time.Second, func() error {
			if status, body := post(g, tok, path, read); status != 503 || !strings.Contains(string(body), "not owned") {
				return fmt.Errorf("after rotation, before the claim, via %s: %d %s", g.url, status, body)
			}
			return nil
		})
	}
	// B's client may still hold connections from before a restart of its server.
	eventually(t, 30*time.Second, func() error { return claimData(ctx, c.obj, b.mclient, b.redis.Client()) })
	for _, g := range suite.gws {
		eventually(t, 30*time.Second, func() error {
			if status, body := post(g, tok, path, read); status != 200 || string(body) != `{"value":null}` {
				return fmt.Errorf("after rotation via %s: %d %s", g.url, status, body)
			}
			return nil
		})
	}
	if err := suite.k8s.Delete(ctx, c.obj); err != nil {
		t.Fatal(err)
	}
	for _, g := range suite.gws {
		eventually(t, 30*time.Second, func() error {
			if status, body := post(g, tok, path, read); status != 404 {
				return fmt.Errorf("after deletion via %s: %d %s", g.url, status, body)
			}
			return nil
		})
	}
}

// TestLeaderFailover: when the leader stops, the other replica takes over and
// re-reports every tenant (its own endpoint appears in status); a replacement
// replica then serves as before.
func TestLeaderFailover(t *testing.T) {
	ctx := context.Background()
	var old *instance
	eventually(t, 30*time.Second, func() error {
		if old = leader(); old == nil {
			return fmt.Errorf("no single leader")
		}
		return nil
	})
	slot := 0
	if suite.gws[1] == old {
		slot = 1
	}
	other := suite.gws[1-slot]
	old.cancel()
	<-old.done
	eventually(t, 60*time.Second, func() error {
		select { // the stopped replica's Elected stays closed, so ask the remaining one
		case <-other.mgr.Elected():
		default:
			return fmt.Errorf("the remaining replica does not lead yet")
		}
		for _, tn := range []*tenantEnv{suite.a, suite.b} {
			var obj v1.BacktestPersistence
			if err := suite.k8s.Get(ctx, client.ObjectKeyFromObject(tn.obj), &obj); err != nil {
				return err
			}
			if obj.Status.Endpoint != other.endpoint {
				return fmt.Errorf("%s endpoint %q, want the new leader's %q", tn.ns, obj.Status.Endpoint, other.endpoint)
			}
		}
		return nil
	})
	// The remaining replica served throughout; a replacement joins in the old slot.
	tok := suite.tokens["a-writer"]
	read := `{"kind":"state","op":"read","key":{"signalId":"auth","bucketName":"b"}}`
	if status, body := post(other, tok, opsPath(suite.a.ns, suite.a.name), read); status != 200 {
		t.Fatalf("remaining replica: %d %s", status, body)
	}
	repl, err := startInstance(slot, suite.certs)
	if err != nil {
		t.Fatal(err)
	}
	suite.gws[slot] = repl
	eventually(t, 60*time.Second, func() error {
		if status, body := post(repl, tok, opsPath(suite.a.ns, suite.a.name), read); status != 200 {
			return fmt.Errorf("replacement replica: %d %s", status, body)
		}
		return nil
	})
}
