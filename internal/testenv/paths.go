package testenv

import (
	"os"
	"path/filepath"
	"runtime"
)

// RepoRoot is the repository's top folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BinDir is where hack/ builds the tools: kube-apiserver, etcd, kubectl, ferretdb, helm.
func BinDir() string {
	if d := os.Getenv("BTP_BIN_DIR"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "bin")
}

// Tool returns the path of a tool built into bin/, or an error telling how to build it.
func Tool(name string) (string, error) {
	p := filepath.Join(BinDir(), name)
	if _, err := os.Stat(p); err != nil {
		return "", &missingToolError{name: name, path: p}
	}
	return p, nil
}

type missingToolError struct{ name, path string }

func (e *missingToolError) Error() string {
	return e.name + " not found at " + e.path + ": run `make setup` (hack/tools.sh and hack/envtest.sh build it)"
}
