package controllers

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/persist"
	"github.com/backtestpersistence/operator/internal/testenv"
)

// failureWait bounds how long a kill or restart may take to show: two health
// intervals plus a probe timeout, with slack for a loaded machine.
const failureWait = 2*testInterval + testProbeTimeout + 20*time.Second

var _ = Describe("BacktestPersistence under server failures", Ordered, func() {
	var (
		ctx context.Context
		key types.NamespacedName
	)
	BeforeAll(func() {
		ctx = context.Background()
		if mongoSrv.External() || redisSrv.External() {
			Skip("MONGODB_URI or REDIS_URL names an external server: kill and restart are not possible")
		}
		ns := newNamespace(ctx)
		obj := tenant(ctx, ns, "faults", nil)
		key = client.ObjectKeyFromObject(obj)
		DeferCleanup(deleteAndWait, ctx, obj)
		expectAllReady(ctx, key)
	})

	It("reports Redis down after it is killed and up after it restarts, without a manager restart", func() {
		Expect(redisSrv.Stop()).To(Succeed())
		Eventually(func(g Gomega) {
			c := condition(ctx, g, key, v1.ConditionRedisReady)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(v1.ReasonUnreachable))
		}).WithTimeout(failureWait).WithPolling(pollInterval).Should(Succeed())
		expectCondition(ctx, key, v1.ConditionReady, metav1.ConditionFalse, v1.ReasonUnreachable)
		// MongoDB is unaffected.
		Expect(condition(ctx, Default, key, v1.ConditionMongoReady).Status).To(Equal(metav1.ConditionTrue))

		Expect(redisSrv.Start()).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(condition(ctx, g, key, v1.ConditionRedisReady).Status).To(Equal(metav1.ConditionTrue))
		}).WithTimeout(failureWait).WithPolling(pollInterval).Should(Succeed())
		expectAllReady(ctx, key)
	})

	It("reports MongoDB down after FerretDB is killed and up after it restarts", func() {
		Expect(mongoSrv.Stop()).To(Succeed())
		Eventually(func(g Gomega) {
			c := condition(ctx, g, key, v1.ConditionMongoReady)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(v1.ReasonUnreachable))
		}).WithTimeout(failureWait).WithPolling(pollInterval).Should(Succeed())
		expectCondition(ctx, key, v1.ConditionIndexesReady, metav1.ConditionUnknown, v1.ReasonDependencyNotReady)
		Expect(condition(ctx, Default, key, v1.ConditionRedisReady).Status).To(Equal(metav1.ConditionTrue))

		Expect(mongoSrv.Start()).To(Succeed())
		// The suite's own client drops its connections from before the restart on first use.
		Eventually(func() error { return mongoClient.Ping(ctx, nil) }).WithTimeout(eventuallyTimeout).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(condition(ctx, g, key, v1.ConditionMongoReady).Status).To(Equal(metav1.ConditionTrue))
		}).WithTimeout(failureWait).WithPolling(pollInterval).Should(Succeed())
		got := expectAllReady(ctx, key)
		// The re-run after the outage found every index in place.
		Expect(got.Status.Indexes.Created + got.Status.Indexes.Replaced).To(BeZero())
	})
})

var _ = Describe("BacktestPersistence Secrets and indexes", func() {
	var ctx context.Context
	BeforeEach(func() { ctx = context.Background() })

	It("follows a rotated Secret to another FerretDB and records the new Secret version", func() {
		other, err := testenv.StartMongo(testenv.MongoOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(other.Close)
		if other.External() {
			Skip("MONGODB_URI names an external server: a second server cannot be started")
		}
		ns := newNamespace(ctx)
		obj := tenant(ctx, ns, "rotate", nil)
		key := client.ObjectKeyFromObject(obj)
		DeferCleanup(deleteAndWait, ctx, obj)
		before := expectAllReady(ctx, key)

		sec := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mongo"}, sec)).To(Succeed())
		sec.Data["uri"] = []byte(other.URI())
		Expect(k8sClient.Update(ctx, sec)).To(Succeed())

		Eventually(func(g Gomega) {
			got := get(ctx, g, key)
			g.Expect(got.Status.AppliedSecrets).To(ContainElement(v1.AppliedSecret{Name: "mongo", ResourceVersion: sec.ResourceVersion}))
			c := meta.FindStatusCondition(got.Status.Conditions, v1.ConditionIndexesReady)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(got.Status.Indexes.Created).To(BeNumerically(">", 0), "indexes were not created on the new server")
		}).WithTimeout(eventuallyTimeout).WithPolling(pollInterval).Should(Succeed())
		after := expectAllReady(ctx, key)
		Expect(after.Generation).To(Equal(before.Generation))

		oc, err := other.Client()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = oc.Disconnect(context.Background()) })
		expectIndexesAsTable(ctx, oc.Database(after.Status.Database))
	})

	It("repairs the legacy candle index, keeps unknown indexes, and a re-run changes nothing", func() {
		ns := newNamespace(ctx)
		dbName := "legacy_" + randSuffix()
		db := mongoClient.Database(dbName)
		DeferCleanup(func() { _ = db.Drop(context.Background()) })
		candles := db.Collection("candle-items")
		_, err := candles.Indexes().CreateOne(ctx, mongo.IndexModel{
			Keys:    bson.D{{Key: "symbol", Value: 1}, {Key: "interval", Value: 1}, {Key: "timestamp", Value: 1}},
			Options: options.Index().SetName("symbol_1_interval_1_timestamp_1").SetUnique(true)})
		Expect(err).NotTo(HaveOccurred())
		_, err = candles.Indexes().CreateOne(ctx, mongo.IndexModel{
			Keys: bson.D{{Key: "volume", Value: -1}}, Options: options.Index().SetName("user_volume")})
		Expect(err).NotTo(HaveOccurred())

		obj := tenant(ctx, ns, "legacy", func(o *v1.BacktestPersistence) { o.Spec.Mongo.Database = dbName })
		key := client.ObjectKeyFromObject(obj)
		DeferCleanup(deleteAndWait, ctx, obj)
		got := expectAllReady(ctx, key)
		Expect(got.Status.Database).To(Equal(dbName))
		Expect(got.Status.Indexes.Replaced).To(BeEquivalentTo(1))
		Expect(int(got.Status.Indexes.Created)).To(Equal(totalIndexes()))

		expectIndexesAsTable(ctx, db)
		listed, err := persist.ListIndexes(ctx, candles)
		Expect(err).NotTo(HaveOccurred())
		names := []string{}
		for _, l := range listed {
			names = append(names, l.Name)
		}
		Expect(names).NotTo(ContainElement("symbol_1_interval_1_timestamp_1"))
		Expect(names).To(ContainElement("user_volume"))

		// A new generation runs the migration again: nothing to do.
		Eventually(func() error {
			cur := &v1.BacktestPersistence{}
			if err := k8sClient.Get(ctx, key, cur); err != nil {
				return err
			}
			cur.Spec.HealthCheckInterval = metav1.Duration{Duration: testInterval + time.Second}
			return k8sClient.Update(ctx, cur)
		}).WithTimeout(eventuallyTimeout).Should(Succeed())
		again := expectAllReady(ctx, key)
		Expect(again.Generation).To(BeNumerically(">", got.Generation))
		Expect(*again.Status.Indexes).To(Equal(v1.IndexStatus{Unchanged: int32(totalIndexes())}))
		listed, err = persist.ListIndexes(ctx, candles)
		Expect(err).NotTo(HaveOccurred())
		Expect(listed).To(ContainElement(HaveField("Name", "user_volume")))
	})

	It("keeps the gateway's StoreReady and requires it once reported", func() {
		ns := newNamespace(ctx)
		obj := tenant(ctx, ns, "store", nil)
		key := client.ObjectKeyFromObject(obj)
		DeferCleanup(deleteAndWait, ctx, obj)
		expectAllReady(ctx, key)

		setStore := func(status metav1.ConditionStatus, reason string) {
			Eventually(func() error {
				cur := &v1.BacktestPersistence{}
				if err := k8sClient.Get(ctx, key, cur); err != nil {
					return err
				}
				base := cur.DeepCopy()
				meta.SetStatusCondition(&cur.Status.Conditions, metav1.Condition{Type: v1.ConditionStoreReady,
					Status: status, Reason: reason, Message: "from the gateway", ObservedGeneration: cur.Generation})
				return k8sClient.Status().Patch(ctx, cur, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
			}).WithTimeout(eventuallyTimeout).Should(Succeed())
		}
		setStore(metav1.ConditionFalse, "OpenFailed")
		expectCondition(ctx, key, v1.ConditionReady, metav1.ConditionFalse, "OpenFailed")
		// Health checks keep running and do not erase it.
		start := counter.count(key)
		Eventually(func() int { return counter.count(key) }).WithTimeout(eventuallyTimeout).Should(BeNumerically(">=", start+2))
		Expect(condition(ctx, Default, key, v1.ConditionStoreReady).Reason).To(Equal("OpenFailed"))

		setStore(metav1.ConditionTrue, "Serving")
		expectCondition(ctx, key, v1.ConditionReady, metav1.ConditionTrue, v1.ReasonSucceeded)
	})

	It("rejects specs the schema can check", func() {
		ns := newNamespace(ctx)
		bad := []func(*v1.BacktestPersistence){
			func(o *v1.BacktestPersistence) { o.Spec.Mongo.Database = "admin" },
			func(o *v1.BacktestPersistence) { o.Spec.Mongo.Database = "has.dot" },
			func(o *v1.BacktestPersistence) {
				o.Spec.HealthCheckInterval = metav1.Duration{Duration: 100 * time.Millisecond}
			},
			func(o *v1.BacktestPersistence) { o.Spec.Adapters = []string{"signal", "nosuchkind"} },
			func(o *v1.BacktestPersistence) { o.Spec.DeletionPolicy = "Orphan" },
			func(o *v1.BacktestPersistence) { o.Spec.Redis.KeyPrefix = "a*b" },
			func(o *v1.BacktestPersistence) { o.Spec.Mongo.URISecretRef.Name = "" },
		}
		for i, mutate := range bad {
			obj := newBTP(ns, "bad-"+randSuffix())
			mutate(obj)
			Expect(k8sClient.Create(ctx, obj)).NotTo(Succeed(), "case %d was accepted", i)
		}
		// Defaults, and immutability of the database.
		obj := newBTP(ns, "defaults")
		obj.Spec.HealthCheckInterval = metav1.Duration{}
		obj.Spec.Mongo.Database = "fixed_db"
		Expect(k8sClient.Create(ctx, obj)).To(Succeed())
		DeferCleanup(deleteAndWait, ctx, obj)
		Expect(obj.Spec.DeletionPolicy).To(Equal(v1.DeletionPolicyRetain))
		Expect(obj.Spec.HealthCheckInterval.Duration).To(Equal(30 * time.Second))
		Expect(obj.Spec.Cache.Enabled).To(HaveValue(BeTrue()))
		Eventually(func() error {
			cur := &v1.BacktestPersistence{}
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), cur); err != nil {
				return err
			}
			cur.Spec.Mongo.Database = "moved_db"
			return k8sClient.Update(ctx, cur)
		}).Should(MatchError(ContainSubstring("database is immutable")))
	})
})

var _ = Describe("BacktestPersistence deletion", func() {
	It("Retain keeps the data; Delete drops the database and only that tenant's Redis keys", func() {
		ctx := context.Background()
		ns := newNamespace(ctx)
		createSecret(ctx, ns, "mongo", "uri", mongoSrv.URI())
		createSecret(ctx, ns, "redis", "url", redisSrv.URL())
		mk := func(name, policy string) (*v1.BacktestPersistence, *v1.BacktestPersistence) {
			obj := newBTP(ns, name)
			obj.Spec.DeletionPolicy = policy
			Expect(k8sClient.Create(ctx, obj)).To(Succeed())
			return obj, expectAllReady(ctx, client.ObjectKeyFromObject(obj))
		}
		delObj, del := mk("drop", v1.DeletionPolicyDelete)
		keepObj, keep := mk("keep", v1.DeletionPolicyRetain)
		DeferCleanup(func() { _ = mongoClient.Database(keep.Status.Database).Drop(context.Background()) })

		// Data of both tenants, plus a key that shares the deleted tenant's prefix text
		// without its separator.
		for _, t := range []*v1.BacktestPersistence{del, keep} {
			// Eventually: the suite's own client may hold connections from before a FerretDB restart.
			Eventually(func() error {
				_, err := mongoClient.Database(t.Status.Database).Collection("signal-items").InsertOne(ctx, bson.D{{Key: "symbol", Value: "BTC"}})
				return err
			}).WithTimeout(eventuallyTimeout).Should(Succeed())
			for i := 0; i < 1200; i++ { // more than one SCAN batch
				Expect(redisClient.Set(ctx, t.Status.KeyPrefix+"k"+itoa(i), "v", 0).Err()).To(Succeed())
			}
		}
		lookalike := del.Status.KeyPrefix[:len(del.Status.KeyPrefix)-1] + "x"
		Expect(redisClient.Set(ctx, lookalike, "v", 0).Err()).To(Succeed())
		DeferCleanup(func() { redisClient.Del(context.Background(), lookalike) })

		deleteAndWait(ctx, delObj)
		dbs, err := mongoClient.ListDatabaseNames(ctx, bson.D{})
		Expect(err).NotTo(HaveOccurred())
		Expect(dbs).NotTo(ContainElement(del.Status.Database))
		Expect(dbs).To(ContainElement(keep.Status.Database))
		Expect(redisClient.Keys(ctx, del.Status.KeyPrefix+"*").Val()).To(BeEmpty())
		Expect(redisClient.Keys(ctx, keep.Status.KeyPrefix+"*").Val()).To(HaveLen(1200))
		Expect(redisClient.Exists(ctx, lookalike).Val()).To(BeEquivalentTo(1))

		deleteAndWait(ctx, keepObj)
		dbs, err = mongoClient.ListDatabaseNames(ctx, bson.D{})
		Expect(err).NotTo(HaveOccurred())
		Expect(dbs).To(ContainElement(keep.Status.Database))
		n, err := mongoClient.Database(keep.Status.Database).Collection("signal-items").CountDocuments(ctx, bson.D{})
		Expect(err).NotTo(HaveOccurred())
		Expect(n).To(BeEquivalentTo(1))
		Expect(redisClient.Keys(ctx, keep.Status.KeyPrefix+"*").Val()).To(HaveLen(1200))
		redisClient.Del(ctx, redisClient.Keys(ctx, keep.Status.KeyPrefix+"*").Val()...)
	})

	It("blocks a Delete while MongoDB cannot be reached, and lets go once the policy becomes Retain", func() {
		ctx := context.Background()
		ns := newNamespace(ctx)
		port, err := testenv.FreePort()
		Expect(err).NotTo(HaveOccurred())
		createSecret(ctx, ns, "mongo", "uri", "mongodb://127.0.0.1:"+itoa(port)+"/")
		createSecret(ctx, ns, "redis", "url", redisSrv.URL())
		obj := newBTP(ns, "stuck")
		obj.Spec.DeletionPolicy = v1.DeletionPolicyDelete
		Expect(k8sClient.Create(ctx, obj)).To(Succeed())
		key := client.ObjectKeyFromObject(obj)
		expectCondition(ctx, key, v1.ConditionMongoReady, metav1.ConditionFalse, v1.ReasonUnreachable)

		Expect(k8sClient.Delete(ctx, obj)).To(Succeed())
		Eventually(func(g Gomega) {
			var events eventsv1.EventList
			g.Expect(k8sClient.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
			g.Expect(events.Items).To(ContainElement(HaveField("Reason", "DeleteFailed")))
		}).WithTimeout(eventuallyTimeout).Should(Succeed())
		Expect(k8sClient.Get(ctx, key, obj)).To(Succeed(), "the object went away although its data could not be deleted")

		Eventually(func() error {
			cur := &v1.BacktestPersistence{}
			if err := k8sClient.Get(ctx, key, cur); err != nil {
				return err
			}
			cur.Spec.DeletionPolicy = v1.DeletionPolicyRetain
			return k8sClient.Update(ctx, cur)
		}).WithTimeout(eventuallyTimeout).Should(Succeed())
		deleteAndWait(ctx, obj)
	})

	It("shares one client per endpoint among tenants and closes it when the last tenant goes", func() {
		ctx := context.Background()
		// Earlier specs' objects are gone, so no tenant holds a client.
		Eventually(func() int { return suitePools.Len() }).WithTimeout(eventuallyTimeout).Should(BeZero())
		ns := newNamespace(ctx)
		a := tenant(ctx, ns, "share-a", nil)
		b := newBTP(ns, "share-b")
		Expect(k8sClient.Create(ctx, b)).To(Succeed())
		expectAllReady(ctx, client.ObjectKeyFromObject(a))
		expectAllReady(ctx, client.ObjectKeyFromObject(b))
		Expect(suitePools.Len()).To(Equal(2), "one MongoDB and one Redis client for both tenants")
		deleteAndWait(ctx, a)
		Expect(suitePools.Len()).To(Equal(2), "a client was closed while a tenant still uses it")
		deleteAndWait(ctx, b)
		Eventually(func() int { return suitePools.Len() }).WithTimeout(eventuallyTimeout).Should(BeZero())
	})
})
