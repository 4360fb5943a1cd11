package controllers

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/infra"
	"github.com/backtestpersistence/operator/internal/testenv"
)

// Settings of the suite: short intervals so failures and recoveries show quickly.
const (
	testInterval     = 2 * time.Second
	testProbeTimeout = 2 * time.Second
)

var (
	testEnv    *envtest.Environment
	cfg        *rest.Config
	k8sClient  client.Client
	kubeconfig string
	scheme     = runtime.NewScheme()

	mongoSrv    *testenv.Mongo
	redisSrv    *testenv.Redis
	mongoClient *mongo.Client
	redisClient *redis.Client

	counter     *countingReconciler
	suitePools  *infra.Pools
	stopManager context.CancelFunc
	managerDone chan struct{}
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers Suite")
}

// countingReconciler counts reconciles per object, to prove there is no hot loop.
type countingReconciler struct {
	inner reconcile.Reconciler
	mu    sync.Mutex
	n     map[types.NamespacedName]int
}

func (c *countingReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	c.mu.Lock()
	c.n[req.NamespacedName]++
	c.mu.Unlock()
	return c.inner.Reconcile(ctx, req)
}

func (c *countingReconciler) count(key types.NamespacedName) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1.AddToScheme(scheme))

	By("starting the API server")
	testEnv = testenv.Envtest()
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	// A kubeconfig for kubectl against the envtest API server.
	user, err := testEnv.AddUser(envtest.User{Name: "suite-admin", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	kc, err := user.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	kubeconfig = filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(os.WriteFile(kubeconfig, kc, 0o600)).To(Succeed())

	By("starting FerretDB and redis-server")
	mongoSrv, err = testenv.StartMongo(testenv.MongoOptions{})
	Expect(err).NotTo(HaveOccurred())
	redisSrv, err = testenv.StartRedis()
	Expect(err).NotTo(HaveOccurred())
	mongoClient, err = mongoSrv.Client()
	Expect(err).NotTo(HaveOccurred())
	redisClient = redisSrv.Client()

	By("starting the manager")
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	infra.RouteRedisLogs(ctrl.Log.WithName("redis"))
	suitePools = infra.NewPools(infra.PoolOptions{ConnectTimeout: testProbeTimeout, RedisTimeout: testProbeTimeout, MongoMaxPoolSize: 8})
	r := &BacktestPersistenceReconciler{
		Client:       mgr.GetClient(),
		Pools:        suitePools,
		ProbeTimeout: testProbeTimeout,
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopManager = cancel
	b, err := r.builder(ctx, mgr)
	Expect(err).NotTo(HaveOccurred())
	counter = &countingReconciler{inner: r, n: map[types.NamespacedName]int{}}
	Expect(b.Complete(counter)).To(Succeed())
	managerDone = make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(managerDone)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	if stopManager != nil {
		stopManager()
		<-managerDone
	}
	if mongoClient != nil {
		_ = mongoClient.Disconnect(context.Background())
	}
	if redisClient != nil {
		_ = redisClient.Close()
	}
	mongoSrv.Close()
	if redisSrv != nil {
		redisSrv.Close()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

func ptr[T any](v T) *T { return &v }
