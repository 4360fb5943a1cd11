package controllers

import (
	"context"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.mongodb.org/mongo-driver/v2/bson"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/infra"
)

// Tenant data is owned: a database and a Redis key space belong to one
// BacktestPersistence, recorded in the data, and nobody else is served it or
// deletes it.
var _ = Describe("Ownership of tenant data", Ordered, func() {
	var (
		ctx context.Context
		gw  *testGateway
	)
	BeforeAll(func() {
		ctx = context.Background()
		gw = startGateway()
	})

	stateKey := `{"signalId":"owned","bucketName":"b"}`
	stateWrite := func(v string) string {
		return `{"kind":"state","op":"write","key":` + stateKey + `,"value":{"secret":"` + v + `"},"when":1}`
	}
	stateRead := `{"kind":"state","op":"read","key":` + stateKey + `}`

	// dbOwner reads the ownership marker of a database.
	dbOwner := func(db string) (infra.Owner, bool) {
		GinkgoHelper()
		o, found, err := infra.DatabaseClaim{DB: mongoClient.Database(db)}.Owner(ctx)
		Expect(err).NotTo(HaveOccurred())
		return o, found
	}

	It("refuses a second object naming an owned database and key prefix, never serves it, and its deletion leaves the owner's data", func() {
		secret := "a-secret-" + randSuffix()
		dbName := "owned_" + randSuffix()
		prefix := "own" + randSuffix() + ":"
		DeferCleanup(func() { _ = mongoClient.Database(dbName).Drop(context.Background()) })

		nsA := newNamespace(ctx)
		a := tenant(ctx, nsA, "sample", func(o *v1.BacktestPersistence) {
			o.Spec.Mongo.Database = dbName
			o.Spec.Redis.KeyPrefix = prefix
		})
		keyA := client.ObjectKeyFromObject(a)
		DeferCleanup(deleteAndWait, ctx, a)
		worker(ctx, nsA, "worker")
		tokA := gw.token(ctx, nsA, "worker", nil, tokenAudience)
		expectAllReady(ctx, keyA)
		Eventually(func() int { s, _ := gw.op(tokA, nsA, "sample", stateWrite(secret)); return s }).
			WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(Equal(200))
		status, body := gw.op(tokA, nsA, "sample", stateRead)
		Expect(status).To(Equal(200))
		Expect(body).To(ContainSubstring(secret))
		a = get(ctx, Default, keyA)
		Expect(redisClient.Set(ctx, prefix+"probe", "a's", 0).Err()).To(Succeed())

		By("an intruder naming A's database and key prefix, with deletionPolicy Delete")
		nsB := "intruder-" + randSuffix()
		Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsB}})).To(Succeed())
		worker(ctx, nsB, "worker")
		tokB := gw.token(ctx, nsB, "worker", nil, tokenAudience)
		// B's worker polls from before B exists until B is refused: not one read may succeed.
		var (
			mu       sync.Mutex
			answers  []string
			stopPoll = make(chan struct{})
			polled   = make(chan struct{})
		)
		go func() {
			defer GinkgoRecover()
			defer close(polled)
			tick := time.NewTicker(20 * time.Millisecond) // pacing only, the machine is shared
			defer tick.Stop()
			for {
				select {
				case <-stopPoll:
					return
				case <-tick.C:
				}
				s, b := gw.op(tokB, nsB, "sample", stateRead)
				mu.Lock()
				if s == 200 {
					answers = append(answers, b)
				}
				mu.Unlock()
			}
		}()
		b := tenant(ctx, nsB, "sample", func(o *v1.BacktestPersistence) {
			o.Spec.Mongo.Database = dbName
			o.Spec.Redis.KeyPrefix = prefix
			o.Spec.DeletionPolicy = v1.DeletionPolicyDelete
		})
		keyB := client.ObjectKeyFromObject(b)
		expectCondition(ctx, keyB, v1.ConditionDataOwned, metav1.ConditionFalse, v1.ReasonDatabaseInUse)
		expectCondition(ctx, keyB, v1.ConditionReady, metav1.ConditionFalse, v1.ReasonDatabaseInUse)
		expectCondition(ctx, keyB, v1.ConditionStoreReady, metav1.ConditionFalse, "")
		close(stopPoll)
		<-polled
		Expect(answers).To(BeEmpty(), "B's worker read through the gateway")
		status, body = gw.op(tokB, nsB, "sample", stateRead)
		Expect(status).To(Equal(503), body)
		Expect(body).NotTo(ContainSubstring(secret))

		gotB := get(ctx, Default, keyB)
		for _, c := range gotB.Status.Conditions {
			Expect(c.Message).NotTo(ContainSubstring(nsA), "%s names the other tenant", c.Type)
			Expect(c.Message).NotTo(ContainSubstring(string(a.UID)), "%s names the other tenant", c.Type)
		}
		// The index migration never ran on A's database for B.
		Expect(condition(ctx, Default, keyB, v1.ConditionIndexesReady).Reason).To(Equal(v1.ReasonDependencyNotReady))
		o, found := dbOwner(dbName)
		Expect(found).To(BeTrue())
		Expect(o.UID).To(Equal(string(a.UID)))

		By("deleting the intruder with deletionPolicy Delete")
		deleteAndWait(ctx, b)
		dbs, err := mongoClient.ListDatabaseNames(ctx, bson.D{})
		Expect(err).NotTo(HaveOccurred())
		Expect(dbs).To(ContainElement(dbName))
		o, found = dbOwner(dbName)
		Expect(found).To(BeTrue())
		Expect(o.UID).To(Equal(string(a.UID)))
		Expect(redisClient.Get(ctx, prefix+"probe").Val()).To(Equal("a's"))
		ks, found, err := infra.KeySpaceClaim{Client: redisClient, Prefix: prefix}.Owner(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(BeTrue())
		Expect(ks.UID).To(Equal(string(a.UID)))
		expectAllReady(ctx, keyA)
		status, body = gw.op(tokA, nsA, "sample", stateRead)
		Expect(status).To(Equal(200))
		Expect(body).To(ContainSubstring(secret))
	})

	It("refuses key prefixes that contain or are contained in one in use", func() {
		ns := newNamespace(ctx)
		base := "ov" + randSuffix()
		first := tenant(ctx, ns, "a", func(o *v1.BacktestPersistence) { o.Spec.Redis.KeyPrefix = base + ":a:" })
		DeferCleanup(deleteAndWait, ctx, first)
		expectAllReady(ctx, client.ObjectKeyFromObject(first))

		mk := func(name, prefix string) types.NamespacedName {
			obj := newBTP(ns, name)
			obj.Spec.Redis.KeyPrefix = prefix
			obj.Spec.DeletionPolicy = v1.DeletionPolicyDelete
			Expect(k8sClient.Create(ctx, obj)).To(Succeed())
			DeferCleanup(deleteAndWait, ctx, obj)
			return client.ObjectKeyFromObject(obj)
		}
		contained := mk("contained", base+":a:b")
		containing := mk("containing", base)
		equal := mk("equal", base+":a")
		for _, key := range []types.NamespacedName{contained, containing, equal} {
			expectCondition(ctx, key, v1.ConditionDataOwned, metav1.ConditionFalse, v1.ReasonKeyPrefixOverlaps)
			expectCondition(ctx, key, v1.ConditionReady, metav1.ConditionFalse, v1.ReasonKeyPrefixOverlaps)
		}
		// A sibling prefix is independent.
		sibling := mk("sibling", base+":ab")
		expectAllReady(ctx, sibling)
	})

	It("adopts an existing database without a marker and marks it", func() {
		ns := newNamespace(ctx)
		dbName := "unowned_" + randSuffix()
		DeferCleanup(func() { _ = mongoClient.Database(dbName).Drop(context.Background()) })
		// As @backtest-kit/mongo leaves it: data, no marker.
		_, err := mongoClient.Database(dbName).Collection("signal-items").InsertOne(ctx, bson.D{{Key: "symbol", Value: "BTCUSDT"}})
		Expect(err).NotTo(HaveOccurred())
		obj := tenant(ctx, ns, "adopter", func(o *v1.BacktestPersistence) { o.Spec.Mongo.Database = dbName })
		DeferCleanup(deleteAndWait, ctx, obj)
		got := expectAllReady(ctx, client.ObjectKeyFromObject(obj))
		o, found := dbOwner(dbName)
		Expect(found).To(BeTrue())
		Expect(o).To(Equal(infra.Owner{UID: string(got.UID), Namespace: ns, Name: "adopter"}))
		n, err := mongoClient.Database(dbName).Collection("signal-items").CountDocuments(ctx, bson.D{})
		Expect(err).NotTo(HaveOccurred())
		Expect(n).To(BeEquivalentTo(1))
	})

	It("lets exactly one of two objects racing for a new database win", func() {
		dbName := "race_" + randSuffix()
		DeferCleanup(func() { _ = mongoClient.Database(dbName).Drop(context.Background()) })
		var objs []*v1.BacktestPersistence
		for _, name := range []string{"one", "two"} {
			ns := newNamespace(ctx)
			createSecret(ctx, ns, "mongo", "uri", mongoSrv.URI())
			createSecret(ctx, ns, "redis", "url", redisSrv.URL())
			obj := newBTP(ns, name)
			obj.Spec.Mongo.Database = dbName
			objs = append(objs, obj)
		}
		for _, obj := range objs {
			Expect(k8sClient.Create(ctx, obj)).To(Succeed())
			DeferCleanup(deleteAndWait, ctx, obj)
		}
		var winner, loser *v1.BacktestPersistence
		Eventually(func(g Gomega) {
			winner, loser = nil, nil
			for _, obj := range objs {
				c := condition(ctx, g, client.ObjectKeyFromObject(obj), v1.ConditionDataOwned)
				switch {
				case c.Status == metav1.ConditionTrue:
					g.Expect(winner).To(BeNil(), "two winners")
					winner = obj
				case c.Status == metav1.ConditionFalse && c.Reason == v1.ReasonDatabaseInUse:
					loser = obj
				}
			}
			g.Expect(winner).NotTo(BeNil())
			g.Expect(loser).NotTo(BeNil())
		}).WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(Succeed())
		o, found := dbOwner(dbName)
		Expect(found).To(BeTrue())
		Expect(o.UID).To(Equal(string(get(ctx, Default, client.ObjectKeyFromObject(winner)).UID)))
		expectAllReady(ctx, client.ObjectKeyFromObject(winner))
	})

	It("keeps Retained data for its namespace: a recreated object adopts it, another namespace cannot", func() {
		ns := newNamespace(ctx)
		dbName := "retained_" + randSuffix()
		DeferCleanup(func() { _ = mongoClient.Database(dbName).Drop(context.Background()) })
		first := tenant(ctx, ns, "first", func(o *v1.BacktestPersistence) { o.Spec.Mongo.Database = dbName })
		expectAllReady(ctx, client.ObjectKeyFromObject(first))
		deleteAndWait(ctx, first)
		o, found := dbOwner(dbName)
		Expect(found).To(BeTrue(), "Retain keeps the marker with the data")
		Expect(o.Name).To(Equal("first"))

		other := newNamespace(ctx)
		stranger := tenant(ctx, other, "stranger", func(o *v1.BacktestPersistence) { o.Spec.Mongo.Database = dbName })
		DeferCleanup(deleteAndWait, ctx, stranger)
		expectCondition(ctx, client.ObjectKeyFromObject(stranger), v1.ConditionDataOwned, metav1.ConditionFalse, v1.ReasonDatabaseInUse)

		second := newBTP(ns, "second")
		second.Spec.Mongo.Database = dbName
		Expect(k8sClient.Create(ctx, second)).To(Succeed())
		DeferCleanup(deleteAndWait, ctx, second)
		got := expectAllReady(ctx, client.ObjectKeyFromObject(second))
		o, _ = dbOwner(dbName)
		Expect(o.UID).To(Equal(string(got.UID)))
		expectCondition(ctx, client.ObjectKeyFromObject(stranger), v1.ConditionDataOwned, metav1.ConditionFalse, v1.ReasonDatabaseInUse)
	})
})
