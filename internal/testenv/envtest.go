package testenv

import (
	"os"
	"path/filepath"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Envtest returns an envtest environment whose kube-apiserver, etcd and kubectl
// come from bin/ (hack/envtest.sh builds them), installing the CRDs found in
// crdDirs (default: config/crd/bases). Start it with Start(), end it with Stop().
func Envtest(crdDirs ...string) *envtest.Environment {
	if len(crdDirs) == 0 {
		crdDirs = []string{filepath.Join(RepoRoot(), "config", "crd", "bases")}
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		_ = os.Setenv("KUBEBUILDER_ASSETS", BinDir())
	}
	return &envtest.Environment{
		BinaryAssetsDirectory: BinDir(),
		CRDDirectoryPaths:     crdDirs,
		ErrorIfCRDPathMissing: true,
	}
}
