// Package e2e_test runs the whole system as a user would: a control plane
// (envtest), FerretDB, redis-server and the operator binary as its own process;
// the tenant is created with kubectl, and real backtest-kit workers (Node, offline,
// synthetic exchange) persist through the gateway.
package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/backtestpersistence/operator/internal/testenv"
)

const (
	tenantNamespace = "backtests"
	tenantName      = "e2e"
	workerAccount   = "backtest-worker"
)

var (
	kubectlBin string
	kubeconfig string
	gatewayURL string
	mongoURI   string // the suite's FerretDB, for specs that prepare data behind the gateway
	token      string
	nodeDir    string // test/e2e/node
	workDir    string // scratch space of the scenarios
	manager    *managerProcess
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Whole system: operator, gateway and backtest-kit")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	var err error
	kubectlBin, err = testenv.Tool("kubectl")
	Expect(err).NotTo(HaveOccurred(), "kubectl is needed: run make envtest")
	_, err = exec.LookPath("node")
	Expect(err).NotTo(HaveOccurred(), "node (20 or newer) is needed for the backtest-kit workers")
	crd := repoPath("config", "crd", "bases", "persistence.backtestkit.dev_backtestpersistences.yaml")
	Expect(crd).To(BeAnExistingFile(), "the generated CRD is missing: run make manifests")

	By("installing the npm dependencies of the workers (cached)")
	run(ctx, repoPath("hack", "client-deps.sh"))
	nodeDir = repoPath("test", "e2e", "node")
	workDir = GinkgoT().TempDir()

	By("building the manager")
	managerBin := filepath.Join(GinkgoT().TempDir(), "manager")
	build := exec.CommandContext(ctx, "go", "build", "-o", managerBin, "./cmd")
	build.Dir = testenv.RepoRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "go build ./cmd: %s", out)

	By("starting the control plane, FerretDB and redis-server")
	env := testenv.Envtest()
	env.CRDDirectoryPaths = nil // the CRD is applied with kubectl, as a user does
	env.ErrorIfCRDPathMissing = false
	_, err = env.Start()
	Expect(err).NotTo(HaveOccurred(), "start envtest")
	DeferCleanup(func() { Expect(env.Stop()).To(Succeed()) })
	admin, err := env.AddUser(envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	raw, err := admin.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	kubeconfig = filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(os.WriteFile(kubeconfig, raw, 0o600)).To(Succeed())

	mongo, err := testenv.StartMongo(testenv.MongoOptions{})
	Expect(err).NotTo(HaveOccurred(), "start FerretDB")
	DeferCleanup(mongo.Close)
	mongoURI = mongo.URI()
	redis, err := testenv.StartRedis()
	Expect(err).NotTo(HaveOccurred(), "start redis-server")
	DeferCleanup(redis.Close)

	By("applying the CRD")
	kubectl(ctx, "apply", "--server-side", "-f", crd)
	kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s", "crd/backtestpersistences.persistence.backtestkit.dev")

	By("starting the operator as its own process")
	port := freePort()
	gatewayURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	manager = startManager(managerBin, port)
	DeferCleanup(manager.stop)

	By("creating the tenant: Secrets, BacktestPersistence, worker ServiceAccount and RoleBinding")
	kubectlApply(ctx, tenantManifests(mongo.URI(), redis.URL()))
	kubectl(ctx, "-n", tenantNamespace, "wait", "--for=condition=Ready", "--timeout=120s", "backtestpersistence/"+tenantName)

	By("minting a worker token")
	token = strings.TrimSpace(kubectl(ctx, "-n", tenantNamespace, "create", "token", workerAccount, "--duration=2h"))
	Expect(token).NotTo(BeEmpty())
})

// tenantManifests is what a user applies: the credentials, the tenant and the worker's access.
func tenantManifests(mongoURI, redisURL string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s
---
apiVersion: v1
kind: Secret
metadata: {name: e2e-mongodb, namespace: %[1]s}
stringData: {uri: %[3]q}
---
apiVersion: v1
kind: Secret
metadata: {name: e2e-redis, namespace: %[1]s}
stringData: {url: %[4]q}
---
apiVersion: persistence.backtestkit.dev/v1
kind: BacktestPersistence
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  mongo:
    uriSecretRef: {name: e2e-mongodb, key: uri}
  redis:
    urlSecretRef: {name: e2e-redis, key: url}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: %[5]s, namespace: %[1]s}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: backtest-worker-data, namespace: %[1]s}
rules:
- apiGroups: [persistence.backtestkit.dev]
  resources: [backtestpersistences/data]
  verbs: [get, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: backtest-worker-data, namespace: %[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: backtest-worker-data}
subjects:
- {kind: ServiceAccount, name: %[5]s, namespace: %[1]s}
`, tenantNamespace, tenantName, mongoURI, redisURL, workerAccount)
}

// tenantOnDatabase is another tenant of the namespace, on the suite's servers and a
// database of its own; the workers' Role already grants its data.
func tenantOnDatabase(name, database string) string {
	return fmt.Sprintf(`apiVersion: persistence.backtestkit.dev/v1
kind: BacktestPersistence
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  mongo:
    uriSecretRef: {name: e2e-mongodb, key: uri}
    database: %[3]s
  redis:
    urlSecretRef: {name: e2e-redis, key: url}
`, tenantNamespace, name, database)
}

// managerProcess is the operator binary running against the envtest API server.
type managerProcess struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

func startManager(bin string, gatewayPort int) *managerProcess {
	args := []string{
		"--gateway-insecure",
		fmt.Sprintf("--gateway-bind-address=127.0.0.1:%d", gatewayPort),
		fmt.Sprintf("--gateway-advertise-url=http://127.0.0.1:%d", gatewayPort),
		"--metrics-bind-address=0",
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", freePort()),
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "POD_NAMESPACE=backtest-persistence-system", "KUBECONFIG="+kubeconfig)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	Expect(cmd.Start()).To(Succeed(), "start the manager")
	m := &managerProcess{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(m.done) }()
	Eventually(func(g Gomega) {
		select {
		case <-m.done:
			Fail("the manager exited:\n" + out.String())
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", gatewayPort), time.Second)
		g.Expect(err).NotTo(HaveOccurred())
		_ = c.Close()
	}).WithTimeout(90*time.Second).WithPolling(250*time.Millisecond).Should(Succeed(), func() string { return "the gateway did not listen:\n" + out.String() })
	return m
}

func (m *managerProcess) stop() {
	_ = m.cmd.Process.Signal(os.Interrupt)
	select {
	case <-m.done:
	case <-time.After(20 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	if CurrentSpecReport().Failed() || os.Getenv("E2E_MANAGER_LOG") != "" {
		GinkgoWriter.Printf("manager output (tail):\n%s\n", tail(m.out.String(), 8000))
	}
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

func repoPath(elem ...string) string {
	return filepath.Join(append([]string{testenv.RepoRoot()}, elem...)...)
}

func freePort() int {
	p, err := testenv.FreePort()
	Expect(err).NotTo(HaveOccurred())
	return p
}

// run runs a command to completion and returns its standard output.
func run(ctx context.Context, name string, args ...string) string {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	Expect(err).NotTo(HaveOccurred(), "%s %s\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), stdout.String(), stderr.String())
	return stdout.String()
}

func kubectl(ctx context.Context, args ...string) string {
	return run(ctx, kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
}

func kubectlApply(ctx context.Context, manifests string) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, kubectlBin, "--kubeconfig", kubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifests)
	out, err := cmd.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "kubectl apply: %s", out)
}
