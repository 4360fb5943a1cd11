package install_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// flagLine matches a flag in the usage text of Go's flag package ("  -name type").
var flagLine = regexp.MustCompile(`(?m)^  -([a-z0-9][a-z0-9-]*)`)

var _ = Describe("The manager's command line in the manifests", func() {
	It("uses only flags the manager defines", func(ctx SpecContext) {
		known := managerFlags(ctx)
		Expect(known).To(HaveKey("leader-elect"), "the usage text was parsed")

		renders := map[string]func() (string, error){
			"chart defaults":   func() (string, error) { return helmTemplate(ctx) },
			"chart namespaced": func() (string, error) { return helmTemplate(ctx, "--set", "watchNamespaces={team-a,team-b}") },
			"chart cert-manager": func() (string, error) {
				return helmTemplate(ctx, "--set", "gateway.tls.certManager.enabled=true")
			},
			"chart production-like": func() (string, error) {
				return helmTemplate(ctx, "-f", repoPath("test", "install", "testdata", "values-full.yaml"))
			},
			"chart plain HTTP, no metrics": func() (string, error) {
				return helmTemplate(ctx, "--set", "gateway.tls.insecure=true", "--set", "metrics.enabled=false")
			},
			"config/default": func() (string, error) { return kustomize(ctx, repoPath("config", "default")) },
		}
		for name, render := range renders {
			manifests, err := render()
			Expect(err).NotTo(HaveOccurred(), name)
			objs, err := decode(manifests)
			Expect(err).NotTo(HaveOccurred(), name)
			c := deployment(objs).Spec.Template.Spec.Containers[0]
			Expect(c.Command).To(Equal([]string{"/manager"}), name)
			for _, arg := range c.Args {
				Expect(arg).To(HavePrefix("--"), "%s: %s", name, arg)
				flagName, _, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
				Expect(known).To(HaveKey(flagName), "%s passes %s, which the manager does not define", name, arg)
			}
		}
	})
})

// managerFlags builds the manager from ./cmd and returns the flags its usage text lists.
func managerFlags(ctx context.Context) map[string]bool {
	bin := filepath.Join(GinkgoT().TempDir(), "manager")
	buildCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(buildCtx, "go", "build", "-o", bin, "./cmd")
	build.Dir = repoPath()
	out, err := build.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "build the manager: %s", out)

	// -h prints the usage on standard error and exits 0 (flag.ExitOnError).
	usage, err := exec.CommandContext(ctx, bin, "-h").CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "%s -h: %s", bin, usage)
	flags := map[string]bool{}
	for _, m := range flagLine.FindAllStringSubmatch(string(usage), -1) {
		flags[m[1]] = true
	}
	return flags
}
