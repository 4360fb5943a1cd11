package controllers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/backtestpersistence/operator/internal/gateway"
	"github.com/backtestpersistence/operator/internal/infra"
	"github.com/backtestpersistence/operator/internal/testenv"
)

// tokenAudience is the audience the test gateway requires, the chart's default.
const tokenAudience = "backtest-persistence"

// testGateway is a gateway in its own manager next to the suite's controller, as
// the operator's process hosts both: the tenant registry serves only what the
// controller's conditions and the data's ownership records allow.
type testGateway struct {
	url    string
	http   *http.Client
	cs     *kubernetes.Clientset
	cancel context.CancelFunc
	done   chan struct{}
}

// startGateway starts a plain-HTTP gateway requiring tokenAudience and installs the
// shipped data roles; it stops when the spec's container ends.
func startGateway() *testGateway {
	GinkgoHelper()
	applyDataRoles(context.Background())
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	pools := infra.NewPools(infra.PoolOptions{ConnectTimeout: testProbeTimeout, RedisTimeout: testProbeTimeout, MongoMaxPoolSize: 8})
	_, err = gateway.Setup(mgr, gateway.Config{
		Listener: ln, Endpoint: "http://" + ln.Addr().String(), Audiences: []string{tokenAudience},
		OpTimeout: 2 * time.Second, AuthCacheTTL: time.Second, OpenTimeout: 10 * time.Second,
		ShutdownGrace: 2 * time.Second, Pools: pools,
	})
	Expect(err).NotTo(HaveOccurred())
	cs, err := kubernetes.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	g := &testGateway{url: "http://" + ln.Addr().String(), http: &http.Client{Timeout: 30 * time.Second}, cs: cs, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer GinkgoRecover()
		defer close(g.done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	DeferCleanup(func() {
		g.cancel()
		<-g.done
		pools.Close()
	})
	return g
}

// applyDataRoles installs the data-reader and data-writer ClusterRoles from config/rbac.
func applyDataRoles(ctx context.Context) {
	GinkgoHelper()
	for _, f := range []string{"data_reader_role.yaml", "data_writer_role.yaml"} {
		raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", f))
		Expect(err).NotTo(HaveOccurred())
		var role rbacv1.ClusterRole
		Expect(yaml.UnmarshalStrict(raw, &role)).To(Succeed(), f)
		if err := k8sClient.Create(ctx, &role); err != nil && !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred(), f)
		}
	}
}

// worker creates a ServiceAccount bound to the data-writer ClusterRole in ns.
func worker(ctx context.Context, ns, name string) {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})).To(Succeed())
	Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-data-writer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "backtestpersistence-data-writer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
	})).To(Succeed())
}

// token mints a token of the ServiceAccount through the TokenRequest API, bound to
// pod when given (as the kubelet does for a pod's tokens), for the audiences given
// (none: the API server's own, which is what a pod's default token carries).
func (g *testGateway) token(ctx context.Context, ns, sa string, pod *corev1.Pod, audiences ...string) string {
	GinkgoHelper()
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: ptr[int64](3600)}}
	if pod != nil {
		tr.Spec.BoundObjectRef = &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	res, err := g.cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, tr, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return res.Status.Token
}

// op posts one operation to a tenant and returns the status and body.
func (g *testGateway) op(token, ns, name, body string) (int, string) {
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/v1/namespaces/%s/persistences/%s/ops", g.url, ns, name), bytes.NewReader([]byte(body)))
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := g.http.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(out)
}
