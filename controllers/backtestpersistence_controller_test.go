package controllers

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.mongodb.org/mongo-driver/v2/mongo"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/persist"
	"github.com/backtestpersistence/operator/internal/testenv"
)

func kubectl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(testenv.BinDir(), "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// totalIndexes is the number of indexes the table asks for over all kinds.
func totalIndexes() int {
	n := 0
	for i := range persist.Kinds {
		n += len(persist.DesiredIndexes(&persist.Kinds[i]))
	}
	return n
}

// expectIndexesAsTable checks every collection of db against the table with listIndexes.
func expectIndexesAsTable(ctx context.Context, db *mongo.Database) {
	GinkgoHelper()
	for i := range persist.Kinds {
		spec := &persist.Kinds[i]
		listed, err := persist.ListIndexes(ctx, db.Collection(spec.Collection))
		Expect(err).NotTo(HaveOccurred())
		for _, want := range persist.DesiredIndexes(spec) {
			idx := slices.IndexFunc(listed, func(l persist.ListedIndex) bool { return l.Name == want.Name })
			Expect(idx).To(BeNumerically(">=", 0), "%s lacks %s", spec.Collection, want.Name)
			Expect(listed[idx].Keys).To(Equal(want.Keys), "%s/%s keys", spec.Collection, want.Name)
			Expect(listed[idx].Unique).To(Equal(want.Unique), "%s/%s unique", spec.Collection, want.Name)
		}
	}
}

var _ = Describe("BacktestPersistence", func() {
	var ctx context.Context
	BeforeEach(func() { ctx = context.Background() })

	It("becomes Ready against running servers, and kubectl wait and get see it", func() {
		ns := newNamespace(ctx)
		obj := tenant(ctx, ns, "ready", nil)
		key := client.ObjectKeyFromObject(obj)
		DeferCleanup(deleteAndWait, ctx, obj)

		out, err := kubectl("wait", "--for=condition=Ready", "btp/ready", "-n", ns, "--timeout=60s")
		Expect(err).NotTo(HaveOccurred(), out)

		got := expectAllReady(ctx, key)
		Expect(got.Finalizers).To(ContainElement(v1.Finalizer))
		Expect(got.Status.Database).To(Equal(ns + "_ready"))
		Expect(got.Status.KeyPrefix).To(Equal("btp:" + string(got.UID) + ":"))
		Expect(got.Status.MongoVersion).NotTo(BeEmpty())
		Expect(got.Status.RedisVersion).NotTo(BeEmpty())
		Expect(got.Status.AppliedSecrets).To(HaveLen(2))
		Expect(got.Status.Indexes).NotTo(BeNil())
		Expect(int(got.Status.Indexes.Created)).To(Equal(totalIndexes()))
		Expect(got.Status.Indexes.Failed).To(BeZero())
		expectIndexesAsTable(ctx, mongoClient.Database(got.Status.Database))

		out, err = kubectl("get", "btp", "-n", ns)
		Expect(err).NotTo(HaveOccurred(), out)
		header := strings.Fields(strings.SplitN(out, "\n", 2)[0])
		Expect(header).To(Equal([]string{"NAME", "READY", "MONGO", "REDIS", "INDEXES", "AGE"}))
		Expect(out).To(MatchRegexp(`ready\s+True\s+True\s+True\s+True`))
	})

	It("reports a missing Secret by name and becomes Ready when it is created, without a change to the object", func() {
		ns := newNamespace(ctx)
		createSecret(ctx, ns, "redis", "url", redisSrv.URL())
		obj := newBTP(ns, "late")
		Expect(k8sClient.Create(ctx, obj)).To(Succeed())
		key := client.ObjectKeyFromObject(obj)
		DeferCleanup(deleteAndWait, ctx, obj)

		expectCondition(ctx, key, v1.ConditionReady, metav1.ConditionFalse, v1.ReasonSecretMissing)
		Eventually(func(g Gomega) {
			c := condition(ctx, g, key, v1.ConditionMongoReady)
			g.Expect(c.Reason).To(Equal(v1.ReasonSecretMissing))
			g.Expect(c.Message).To(ContainSubstring(ns + "/mongo"))
		}).WithTimeout(eventuallyTimeout).Should(Succeed())
		generation := obj.Generation

		// A Secret without the key is a different failure.
		sec := createSecret(ctx, ns, "mongo", "other", "x")
		expectCondition(ctx, key, v1.ConditionMongoReady, metav1.ConditionFalse, v1.ReasonSecretKeyMissing)

		sec.Data = map[string][]byte{"uri": []byte(mongoSrv.URI())}
		Expect(k8sClient.Update(ctx, sec)).To(Succeed())
		got := expectAllReady(ctx, key)
		Expect(got.Generation).To(Equal(generation))

		// Transitions were recorded as events on the object.
		Eventually(func(g Gomega) {
			var events eventsv1.EventList
			g.Expect(k8sClient.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
			reasons := map[string]string{}
			for _, e := range events.Items {
				if e.Regarding.Name == "late" {
					reasons[e.Reason] = e.Type
				}
			}
			g.Expect(reasons).To(HaveKeyWithValue(v1.ReasonSecretMissing, "Warning"))
			g.Expect(reasons).To(HaveKeyWithValue(v1.ReasonSucceeded, "Normal"))
		}).WithTimeout(eventuallyTimeout).Should(Succeed())
	})

	It("tells invalid URI, unreachable server and wrong password apart, without a hot loop", func() {
		auth, err := testenv.StartMongo(testenv.MongoOptions{Username: "tenant", Password: "right"})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(auth.Close)
		if auth.External() {
			Skip("MONGODB_URI names an external server: the wrong-password case needs a server this suite starts")
		}
		port, err := testenv.FreePort()
		Expect(err).NotTo(HaveOccurred())

		cases := []struct {
			name, uri, reason string
		}{
			{"invalid", "mongodb://host:notaport/", v1.ReasonInvalidURI},
			{"unreachable", "mongodb://127.0.0.1:" + strconv.Itoa(port) + "/", v1.ReasonUnreachable},
			{"wrongpass", "mongodb://tenant:wrong@" + auth.Addr() + "/?authSource=admin", v1.ReasonAuthenticationFailed},
		}
		ns := newNamespace(ctx)
		createSecret(ctx, ns, "redis", "url", redisSrv.URL())
		keys := map[string]types.NamespacedName{}
		for _, c := range cases {
			createSecret(ctx, ns, "mongo-"+c.name, "uri", c.uri)
			obj := newBTP(ns, c.name)
			obj.Spec.Mongo.URISecretRef.Name = "mongo-" + c.name
			Expect(k8sClient.Create(ctx, obj)).To(Succeed())
			DeferCleanup(deleteAndWait, ctx, obj)
			keys[c.name] = client.ObjectKeyFromObject(obj)
		}
		for _, c := range cases {
			expectCondition(ctx, keys[c.name], v1.ConditionMongoReady, metav1.ConditionFalse, c.reason)
			expectCondition(ctx, keys[c.name], v1.ConditionReady, metav1.ConditionFalse, c.reason)
		}
		// The right password works against the same server.
		createSecret(ctx, ns, "mongo", "uri", auth.URI())
		good := newBTP(ns, "good")
		Expect(k8sClient.Create(ctx, good)).To(Succeed())
		DeferCleanup(deleteAndWait, ctx, good)
		goodKey := client.ObjectKeyFromObject(good)
		expectAllReady(ctx, goodKey)

		// Count reconciles while the healthy object goes through five more health checks:
		// the failing ones are requeued at most as often (the invalid one not at all).
		before := map[string]int{}
		for name, k := range keys {
			before[name] = counter.count(k)
		}
		start := counter.count(goodKey)
		Eventually(func() int { return counter.count(goodKey) }).
			WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(BeNumerically(">=", start+5))
		window := counter.count(goodKey) - start
		Expect(counter.count(keys["invalid"])-before["invalid"]).To(BeNumerically("<=", 2), "invalid URI reconciled again and again")
		Expect(counter.count(keys["unreachable"]) - before["unreachable"]).To(BeNumerically("<=", window+2))
		Expect(counter.count(keys["wrongpass"]) - before["wrongpass"]).To(BeNumerically("<=", window+2))
	})
})
