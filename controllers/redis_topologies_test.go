package controllers

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/infra"
	"github.com/backtestpersistence/operator/internal/persist"
	"github.com/backtestpersistence/operator/internal/testenv"
)

// failoverTimeout bounds waiting for readiness after a failover: go-redis clients
// learn a cluster's new master on their next slot map reload.
const failoverTimeout = 90 * time.Second

// A tenant whose Redis Secret names a Sentinel set or a Cluster: the controller
// probes it through the shared pools and reports it Ready; a store on the tenant's
// database and prefix, with the client the controller uses, writes and reads
// through the cache; after the master is killed and a replica promoted the tenant
// is Ready again and the store still works.
var _ = Describe("BacktestPersistence on Redis Sentinel and Redis Cluster", Ordered, func() {
	var (
		ctx      context.Context
		sentinel *testenv.Sentinel
		cluster  *testenv.Cluster
	)
	BeforeAll(func() {
		ctx = context.Background()
		var err error
		sentinel, err = testenv.StartSentinel(testenv.SentinelOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(sentinel.Close)
		cluster, err = testenv.StartCluster()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(cluster.Close)
	})

	// tenantOn creates a tenant on the suite's MongoDB and the given Redis URL and
	// waits until it is Ready.
	tenantOn := func(redisURL string) *v1.BacktestPersistence {
		ns := newNamespace(ctx)
		createSecret(ctx, ns, "mongo", "uri", mongoSrv.URI())
		createSecret(ctx, ns, "redis", "url", redisURL)
		obj := newBTP(ns, "store")
		Expect(k8sClient.Create(ctx, obj)).To(Succeed())
		DeferCleanup(func() { deleteAndWait(context.Background(), obj) })
		return expectAllReady(ctx, client.ObjectKeyFromObject(obj))
	}

	// storeOf opens a store of the tenant with the pooled clients the controller uses.
	storeOf := func(obj *v1.BacktestPersistence, redisURL string) *persist.Store {
		mc, releaseMongo, err := suitePools.Mongo(ctx, mongoSrv.URI())
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(releaseMongo)
		rc, releaseRedis, err := suitePools.Redis(ctx, redisURL)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(releaseRedis)
		s, err := persist.Open(persist.Options{Database: mc.Database(infra.DatabaseName(obj)), Redis: rc,
			KeyPrefix: infra.KeyPrefix(obj), HealthInterval: 200 * time.Millisecond})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(s.Close)
		Expect(s.Init(ctx)).To(Succeed())
		return s
	}

	key := map[string]any{"signalId": "topology", "bucketName": "b"}
	writeRead := func(g Gomega, s *persist.Store, n int) {
		value, _ := json.Marshal(map[string]any{"id": "x", "data": n, "when": 1})
		_, err := s.Do(ctx, persist.Request{Kind: persist.KindState, Op: persist.OpWrite, Key: key, Value: value})
		g.Expect(err).NotTo(HaveOccurred())
		res, err := s.Do(ctx, persist.Request{Kind: persist.KindState, Op: persist.OpRead, Key: key})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Value).To(MatchJSON(value))
	}
	// expectCached waits until the store uses the cache and a read is a hit.
	expectCached := func(s *persist.Store, n int) {
		GinkgoHelper()
		Eventually(func(g Gomega) {
			g.Expect(s.CacheHealth().InUse).To(BeTrue(), "cache in use: last error %v", s.CacheHealth().LastErr)
			writeRead(g, s, n)
		}).WithTimeout(failoverTimeout).WithPolling(pollInterval).Should(Succeed())
	}
	expectRedisReadyAgain := func(obj *v1.BacktestPersistence) {
		GinkgoHelper()
		time.Sleep(2 * testInterval) // let health checks run against the new topology
		Eventually(func(g Gomega) {
			c := condition(ctx, g, client.ObjectKeyFromObject(obj), v1.ConditionRedisReady)
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue), c.Message)
		}).WithTimeout(failoverTimeout).WithPolling(pollInterval).Should(Succeed())
	}

	It("is Ready on a Sentinel URL, the store works, and survives a failover", func() {
		obj := tenantOn(sentinel.URL())
		Expect(obj.Status.RedisVersion).NotTo(BeEmpty())
		s := storeOf(obj, sentinel.URL())
		expectCached(s, 1)
		_, err := sentinel.KillMaster()
		Expect(err).NotTo(HaveOccurred())
		expectRedisReadyAgain(obj)
		expectCached(s, 2)
	})

	It("is Ready on a Cluster URL, the store works, and survives a failover", func() {
		obj := tenantOn(cluster.URL())
		Expect(obj.Status.RedisVersion).NotTo(BeEmpty())
		s := storeOf(obj, cluster.URL())
		expectCached(s, 1)
		// The tenant's keys share one slot (the hash tag of the prefix): kill its master.
		admin := cluster.Client()
		defer admin.Close()
		var (
			mu        sync.Mutex
			tenantKey string
		)
		Expect(admin.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			keys, err := c.Keys(ctx, infra.KeyPrefix(obj)+"*").Result()
			if len(keys) > 0 {
				mu.Lock()
				tenantKey = keys[0]
				mu.Unlock()
			}
			return err
		})).To(Succeed())
		Expect(tenantKey).NotTo(BeEmpty(), "no key of the tenant in the cluster")
		_, _, err := cluster.KillMasterOf(tenantKey)
		Expect(err).NotTo(HaveOccurred())
		expectRedisReadyAgain(obj)
		expectCached(s, 2)
	})
})
