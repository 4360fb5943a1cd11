package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/backtestpersistence/operator/api/v1"
)

// Generous bounds for asynchronous checks; they bound waiting, they do not measure speed.
const (
	eventuallyTimeout = 60 * time.Second
	pollInterval      = 200 * time.Millisecond
)

func randSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newNamespace creates a namespace for one spec.
func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "t-" + randSuffix()}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

func createSecret(ctx context.Context, ns, name, key, value string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{key: []byte(value)}}
	Expect(k8sClient.Create(ctx, s)).To(Succeed())
	return s
}

// newBTP returns a BacktestPersistence using Secrets "mongo"/"uri" and "redis"/"url"
// with the suite's short health interval.
func newBTP(ns, name string) *v1.BacktestPersistence {
	return &v1.BacktestPersistence{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.BacktestPersistenceSpec{
			Mongo:               v1.MongoSpec{URISecretRef: v1.SecretKeySelector{Name: "mongo", Key: "uri"}},
			Redis:               v1.RedisSpec{URLSecretRef: v1.SecretKeySelector{Name: "redis", Key: "url"}},
			HealthCheckInterval: metav1.Duration{Duration: testInterval},
		},
	}
}

// tenant creates the two Secrets (pointing at the suite's servers) and the object.
func tenant(ctx context.Context, ns, name string, mutate func(*v1.BacktestPersistence)) *v1.BacktestPersistence {
	createSecret(ctx, ns, "mongo", "uri", mongoSrv.URI())
	createSecret(ctx, ns, "redis", "url", redisSrv.URL())
	obj := newBTP(ns, name)
	if mutate != nil {
		mutate(obj)
	}
	Expect(k8sClient.Create(ctx, obj)).To(Succeed())
	return obj
}

func get(ctx context.Context, g Gomega, key types.NamespacedName) *v1.BacktestPersistence {
	obj := &v1.BacktestPersistence{}
	g.Expect(k8sClient.Get(ctx, key, obj)).To(Succeed())
	return obj
}

// condition returns the condition of the latest object ("<none>" status when absent).
func condition(ctx context.Context, g Gomega, key types.NamespacedName, typ string) metav1.Condition {
	c := meta.FindStatusCondition(get(ctx, g, key).Status.Conditions, typ)
	if c == nil {
		return metav1.Condition{Type: typ, Status: "<none>"}
	}
	return *c
}

// expectCondition waits until the condition has the status and reason (reason "" = any).
func expectCondition(ctx context.Context, key types.NamespacedName, typ string, status metav1.ConditionStatus, reason string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		c := condition(ctx, g, key, typ)
		g.Expect(c.Status).To(Equal(status), "%s: %s", typ, c.Message)
		if reason != "" {
			g.Expect(c.Reason).To(Equal(reason), "%s: %s", typ, c.Message)
		}
	}).WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(Succeed())
}

// expectAllReady waits until every condition the controller owns is True at the current generation.
func expectAllReady(ctx context.Context, key types.NamespacedName) *v1.BacktestPersistence {
	GinkgoHelper()
	var obj *v1.BacktestPersistence
	Eventually(func(g Gomega) {
		obj = get(ctx, g, key)
		g.Expect(obj.Status.ObservedGeneration).To(Equal(obj.Generation))
		for _, typ := range []string{v1.ConditionReady, v1.ConditionMongoReady, v1.ConditionRedisReady, v1.ConditionIndexesReady} {
			c := meta.FindStatusCondition(obj.Status.Conditions, typ)
			g.Expect(c).NotTo(BeNil(), typ)
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "%s: %s %s", typ, c.Reason, c.Message)
			g.Expect(c.ObservedGeneration).To(Equal(obj.Generation), typ)
		}
	}).WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(Succeed())
	return obj
}

// deleteAndWait deletes the object and waits until it is gone (finalizer done).
func deleteAndWait(ctx context.Context, obj client.Object) {
	GinkgoHelper()
	Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, obj))).To(Succeed())
	Eventually(func() bool {
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		return apierrors.IsNotFound(err)
	}).WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(BeTrue())
}

func itoa(i int) string { return strconv.Itoa(i) }
