package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/internal/gateway"
	"github.com/backtestpersistence/operator/internal/infra"
	"github.com/backtestpersistence/operator/internal/loadgen"
	"github.com/backtestpersistence/operator/internal/persist"
	"github.com/backtestpersistence/operator/internal/testenv"
)

// The integration suite: a real API server (envtest) that mints and reviews
// service-account tokens, two tenants in two namespaces each on its own FerretDB and
// redis-server, and two gateway instances in two managers with leader election. The
// test plays the controller: it creates the indexes and sets the infrastructure
// conditions the registry waits for.

const audience = "backtest-persistence"

// instance is one manager running the gateway.
type instance struct {
	mgr      ctrl.Manager
	gw       *gateway.Gateway
	url      string
	endpoint string
	cancel   context.CancelFunc
	done     chan struct{}
}

// tenantEnv is one tenant with its servers.
type tenantEnv struct {
	ns, name string
	mongo    *testenv.Mongo
	redis    *testenv.Redis
	mclient  *mongo.Client
	obj      *v1.BacktestPersistence
	direct   *persist.Store // a store on the same database and prefix, as the controller would open it
}

var suite struct {
	env     *envtest.Environment
	cfg     *rest.Config
	k8s     client.Client
	cs      *kubernetes.Clientset
	scheme  *runtime.Scheme
	a, b    *tenantEnv
	gws     [2]*instance
	http    *http.Client
	certPEM []byte
	certs   gateway.CertSource
	tokens  map[string]string
}

func TestMain(m *testing.M) {
	if os.Getenv(loadgen.EnvVar) != "" { // re-executed by the benchmark as its load client
		os.Exit(loadgen.Main())
	}
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	redis.SetLogger(quietRedis{}) // connection-refused noise while the fault tests kill servers
	if err := setupSuite(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway suite setup:", err)
		teardownSuite()
		return 1
	}
	defer teardownSuite()
	return m.Run()
}

func setupSuite() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	suite.scheme = runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(suite.scheme))
	utilruntime.Must(v1.AddToScheme(suite.scheme))

	suite.env = testenv.Envtest()
	cfg, err := suite.env.Start()
	if err != nil {
		return fmt.Errorf("start envtest: %w", err)
	}
	suite.cfg = cfg
	if suite.k8s, err = client.New(cfg, client.Options{Scheme: suite.scheme}); err != nil {
		return err
	}
	if suite.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if err := applyDataRoles(ctx); err != nil {
		return err
	}
	if suite.a, err = newTenant(ctx, "tenant-a", "store"); err != nil {
		return err
	}
	if suite.b, err = newTenant(ctx, "tenant-b", "store"); err != nil {
		return err
	}
	suite.tokens = map[string]string{}
	for _, sa := range []struct{ ns, name, role, aud, token string }{
		{"tenant-a", "writer", "backtestpersistence-data-writer", audience, "a-writer"},
		{"tenant-a", "reader", "backtestpersistence-data-reader", audience, "a-reader"},
		{"tenant-a", "auditor", "backtestpersistence-data-auditor", audience, "a-auditor"},
		{"tenant-a", "writer", "", "", "a-writer-api-audience"},
		{"tenant-b", "writer", "backtestpersistence-data-writer", audience, "b-writer"},
	} {
		tok, err := serviceAccountToken(ctx, sa.ns, sa.name, sa.role, sa.aud)
		if err != nil {
			return err
		}
		suite.tokens[sa.token] = tok
	}

	cert, certPEM, err := gateway.SelfSignedCert([]string{"127.0.0.1"})
	if err != nil {
		return err
	}
	suite.certPEM = certPEM
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	suite.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     time.Minute,
	}}
	suite.certs = gateway.NewStaticCertSource(cert)
	for i := range suite.gws {
		if suite.gws[i], err = startInstance(i, suite.certs); err != nil {
			return err
		}
	}
	// Both replicas serve both tenants once the registry has opened the stores.
	return waitFor(ctx, func() error {
		for _, g := range suite.gws {
			for _, tn := range []*tenantEnv{suite.a, suite.b} {
				status, body := post(g, suite.tokens[tn.ns[len("tenant-"):]+"-writer"], opsPath(tn.ns, tn.name),
					`{"kind":"log","op":"read","key":{}}`)
				if status != 200 {
					return fmt.Errorf("%s via %s: %d %s", tn.ns, g.url, status, body)
				}
			}
		}
		return nil
	})
}

// close stops what newTenant started for tn (nothing when tn is nil).
func (tn *tenantEnv) close() {
	if tn == nil {
		return
	}
	if tn.direct != nil {
		tn.direct.Close()
	}
	if tn.mclient != nil {
		_ = tn.mclient.Disconnect(context.Background())
	}
	tn.redis.Close()
	tn.mongo.Close()
}

func teardownSuite() {
	for _, g := range suite.gws {
		if g != nil {
			g.cancel()
			<-g.done
		}
	}
	for _, tn := range []*tenantEnv{suite.a, suite.b} {
		tn.close()
	}
	if suite.env != nil {
		_ = suite.env.Stop()
	}
}

// applyDataRoles installs the shipped reader and writer ClusterRoles from config/rbac.
func applyDataRoles(ctx context.Context) error {
	for _, f := range []string{"data_reader_role.yaml", "data_writer_role.yaml", "data_auditor_role.yaml"} {
		raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", f))
		if err != nil {
			return err
		}
		var role rbacv1.ClusterRole
		if err := yaml.UnmarshalStrict(raw, &role); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if err := suite.k8s.Create(ctx, &role); err != nil {
			return fmt.Errorf("create %s: %w", f, err)
		}
	}
	return nil
}

// newTenant starts the tenant's servers, creates its namespace, Secret and
// BacktestPersistence, creates the indexes and reports the infrastructure ready.
func newTenant(ctx context.Context, ns, name string) (*tenantEnv, error) {
	tn := &tenantEnv{ns: ns, name: name}
	var err error
	if tn.mongo, err = testenv.StartMongo(testenv.MongoOptions{}); err != nil {
		return tn, err
	}
	if tn.redis, err = testenv.StartRedis(); err != nil {
		return tn, err
	}
	if err := suite.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return tn, err
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "conn"},
		StringData: map[string]string{"mongo": tn.mongo.URI(), "redis": tn.redis.URL()}}
	if err := suite.k8s.Create(ctx, sec); err != nil {
		return tn, err
	}
	tn.obj = &v1.BacktestPersistence{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.BacktestPersistenceSpec{
			Mongo: v1.MongoSpec{URISecretRef: v1.SecretKeySelector{Name: "conn", Key: "mongo"}},
			Redis: v1.RedisSpec{URLSecretRef: v1.SecretKeySelector{Name: "conn", Key: "redis"}},
		}}
	if err := suite.k8s.Create(ctx, tn.obj); err != nil {
		return tn, err
	}
	if tn.mclient, err = tn.mongo.Client(); err != nil {
		return tn, err
	}
	rc := tn.redis.Client()
	tn.direct, err = persist.Open(tn.directOptions(rc))
	if err != nil {
		return tn, err
	}
	if err := tn.direct.Init(ctx); err != nil { // creates the indexes, as the index migration would
		return tn, err
	}
	if err := claimData(ctx, tn.obj, tn.mclient, rc); err != nil {
		return tn, err
	}
	return tn, setConditions(ctx, tn, metav1.ConditionTrue, "Succeeded", "probe succeeded",
		v1.ConditionMongoReady, v1.ConditionRedisReady, v1.ConditionDataOwned, v1.ConditionIndexesReady)
}

// claimData records obj as the owner of its database and key space on these servers,
// as the controller's ownership step would; the registry opens a store only then.
func claimData(ctx context.Context, obj *v1.BacktestPersistence, mc *mongo.Client, rc redis.UniversalClient) error {
	owner := infra.OwnerOf(obj)
	if err := (infra.DatabaseClaim{DB: mc.Database(infra.DatabaseName(obj))}).Claim(ctx, owner); err != nil {
		return err
	}
	return infra.KeySpaceClaim{Client: rc, Prefix: infra.KeyPrefix(obj)}.Claim(ctx, owner)
}

// setConditions sets conditions on a tenant, as the controller would.
func setConditions(ctx context.Context, tn *tenantEnv, status metav1.ConditionStatus, reason, msg string, types ...string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var obj v1.BacktestPersistence
		if err := suite.k8s.Get(ctx, client.ObjectKeyFromObject(tn.obj), &obj); err != nil {
			return err
		}
		for _, t := range types {
			meta.SetStatusCondition(&obj.Status.Conditions, metav1.Condition{Type: t, Status: status,
				Reason: reason, Message: msg, ObservedGeneration: obj.Generation})
		}
		return suite.k8s.Status().Update(ctx, &obj)
	})
}

// serviceAccountToken creates the ServiceAccount (and a RoleBinding to role, if
// any) and mints a token for it through the TokenRequest API.
func serviceAccountToken(ctx context.Context, ns, name, role, aud string) (string, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := suite.k8s.Create(ctx, sa); err != nil && !isAlreadyExists(err) {
		return "", err
	}
	if role != "" {
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-data"},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}}}
		if err := suite.k8s.Create(ctx, rb); err != nil && !isAlreadyExists(err) {
			return "", err
		}
	}
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
	if aud != "" {
		tr.Spec.Audiences = []string{aud}
	}
	res, err := suite.cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, tr, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for %s/%s: %w", ns, name, err)
	}
	return res.Status.Token, nil
}

func isAlreadyExists(err error) bool {
	var s interface{ Status() metav1.Status }
	return errors.As(err, &s) && s.Status().Reason == metav1.StatusReasonAlreadyExists
}

// startInstance starts a manager with leader election and the gateway on a loopback port.
func startInstance(i int, certs gateway.CertSource) (*instance, error) {
	mgr, err := ctrl.NewManager(suite.cfg, ctrl.Options{
		Scheme:                        suite.scheme,
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                true,
		LeaderElectionID:              "gateway-suite",
		LeaderElectionNamespace:       "default",
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 ptr.To(4 * time.Second),
		RenewDeadline:                 ptr.To(3 * time.Second),
		RetryPeriod:                   ptr.To(500 * time.Millisecond),
		Controller:                    config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	in := &instance{mgr: mgr, url: "https://" + ln.Addr().String(), endpoint: fmt.Sprintf("https://gateway-%d.test.svc", i), done: make(chan struct{})}
	in.gw, err = gateway.Setup(mgr, gateway.Config{
		Listener: ln, Certs: certs, Endpoint: in.endpoint, Audiences: []string{audience},
		OpTimeout: 2 * time.Second, AuthCacheTTL: 2 * time.Second, OpenTimeout: 10 * time.Second,
		ShutdownGrace: 5 * time.Second, Pools: infra.NewPools(infra.PoolOptions{ConnectTimeout: 2 * time.Second}),
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	go func() {
		defer close(in.done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager", i, "stopped:", err)
		}
	}()
	return in, nil
}

// leader returns the instance that leads, or nil.
func leader() *instance {
	var l *instance
	for _, g := range suite.gws {
		select {
		case <-g.mgr.Elected():
			if l != nil {
				return nil // two leaders would be a bug; report none
			}
			l = g
		default:
		}
	}
	return l
}

func opsPath(ns, name string) string {
	return "/v1/namespaces/" + ns + "/persistences/" + name + "/ops"
}
func batchPath(ns, name string) string {
	return "/v1/namespaces/" + ns + "/persistences/" + name + "/batch"
}

// call sends one request and returns its status and body.
func call(g *instance, method, token, path string, body []byte) (int, []byte) {
	req, err := http.NewRequest(method, g.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, []byte(err.Error())
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := suite.http.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, out
}

func post(g *instance, token, path, body string) (int, []byte) {
	return call(g, http.MethodPost, token, path, []byte(body))
}

// waitFor polls fn until it succeeds or ctx ends.
func waitFor(ctx context.Context, fn func() error) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last error: %v", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// eventually fails the test unless fn succeeds within timeout.
func eventually(t *testing.T, timeout time.Duration, fn func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := waitFor(ctx, fn); err != nil {
		t.Fatal(err)
	}
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...interface{}) {}

// directOptions are the options of a store on the tenant's database and prefix, with
// the gateway's cache identity, as the controller opens it (the suite's direct store).
func (tn *tenantEnv) directOptions(rc *redis.Client) persist.Options {
	db := infra.DatabaseName(tn.obj)
	return persist.Options{Database: tn.mclient.Database(db), CacheIdentity: infra.CacheIdentity(tn.mongo.URI(), db),
		Redis: rc, KeyPrefix: infra.KeyPrefix(tn.obj), OpTimeout: 5 * time.Second}
}
