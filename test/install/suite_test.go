// Package install_test validates the two install paths of the operator, the Helm chart and
// the kustomize manifests, against a real Kubernetes API server (envtest): every rendered
// object is applied with server-side dry-run and must be accepted.
package install_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/backtestpersistence/operator/internal/testenv"
)

const (
	// releaseNamespace is where the chart and config/default install the manager.
	releaseNamespace = "backtest-persistence-system"
	// samplesNamespace is the tenant namespace of config/samples.
	samplesNamespace = "backtests"
	// restrictedNamespace enforces the restricted Pod Security Standard.
	restrictedNamespace = "restricted-pods"
)

// watchedNamespaces are the tenant namespaces of the namespaced-mode variant.
var watchedNamespaces = []string{"team-a", "team-b"}

var (
	env       *envtest.Environment
	k8sClient client.Client
	helmBin   string
	kubectl   string
	// kubeconfig is a kubeconfig file of an envtest administrator, for helm.
	kubeconfig string
)

func TestInstall(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Install paths")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	var err error
	helmBin, err = testenv.Tool("helm")
	Expect(err).NotTo(HaveOccurred(), "helm is needed to render the chart: run hack/tools.sh helm")
	kubectl, err = testenv.Tool("kubectl")
	Expect(err).NotTo(HaveOccurred(), "kubectl is needed to build the kustomize manifests: run hack/envtest.sh")
	_, err = os.Stat(generatedCRDPath())
	Expect(err).NotTo(HaveOccurred(), "the generated CRD is missing: run make manifests")

	env = testenv.Envtest(
		filepath.Join(testenv.RepoRoot(), "config", "crd", "bases"),
		filepath.Join(testenv.RepoRoot(), "test", "install", "testdata", "crds"),
	)
	cfg, err := env.Start()
	Expect(err).NotTo(HaveOccurred(), "start envtest")
	DeferCleanup(func() {
		Expect(env.Stop()).To(Succeed())
	})

	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme.Scheme})
	Expect(err).NotTo(HaveOccurred())

	admin, err := env.AddUser(envtest.User{Name: "install-admin", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	raw, err := admin.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	kubeconfig = filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(os.WriteFile(kubeconfig, raw, 0o600)).To(Succeed())

	namespaces := map[string]map[string]string{
		releaseNamespace: nil,
		samplesNamespace: nil,
		restrictedNamespace: {
			"pod-security.kubernetes.io/enforce":         "restricted",
			"pod-security.kubernetes.io/enforce-version": "latest",
		},
	}
	for _, ns := range watchedNamespaces {
		namespaces[ns] = nil
	}
	for name, labels := range namespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		Expect(k8sClient.Create(ctx, ns)).To(Succeed(), fmt.Sprintf("create namespace %s", name))
	}
})

// repoPath joins elements onto the repository's top folder.
func repoPath(elem ...string) string {
	return filepath.Join(append([]string{testenv.RepoRoot()}, elem...)...)
}

// generatedCRDPath is the CRD controller-gen writes from api/v1.
func generatedCRDPath() string {
	return repoPath("config", "crd", "bases", "persistence.backtestkit.dev_backtestpersistences.yaml")
}

// chartDir is the Helm chart of the operator.
func chartDir() string {
	return repoPath("charts", "backtest-persistence-operator")
}
