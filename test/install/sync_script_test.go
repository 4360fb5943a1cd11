package install_test

import (
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The script is run from a copy in a scratch tree, so these specs never touch the repository.
var _ = Describe("hack/sync-chart-crds.sh", func() {
	var root, script string

	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		Expect(os.MkdirAll(filepath.Dir(p), 0o755)).To(Succeed())
		Expect(os.WriteFile(p, []byte(content), 0o644)).To(Succeed())
	}
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(root, rel))
		Expect(err).NotTo(HaveOccurred())
		return string(b)
	}
	const chartFiles = "charts/backtest-persistence-operator/files"

	BeforeEach(func() {
		root = GinkgoT().TempDir()
		src, err := os.ReadFile(repoPath("hack", "sync-chart-crds.sh"))
		Expect(err).NotTo(HaveOccurred())
		script = filepath.Join(root, "hack", "sync-chart-crds.sh")
		Expect(os.MkdirAll(filepath.Dir(script), 0o755)).To(Succeed())
		Expect(os.WriteFile(script, src, 0o755)).To(Succeed())
	})

	It("does nothing while nothing has been generated", func(ctx SpecContext) {
		_, err := run(ctx, script)
		Expect(err).NotTo(HaveOccurred())
		_, err = run(ctx, script, "--check")
		Expect(err).NotTo(HaveOccurred())
		Expect(filepath.Join(root, "charts")).NotTo(BeADirectory())
	})

	It("copies the generated CRDs and role, drops stale CRDs, and reports drift with --check", func(ctx SpecContext) {
		write("config/crd/bases/a.yaml", "kind: CustomResourceDefinition # a\n")
		write("config/rbac/role.yaml", "kind: ClusterRole\n")
		write(chartFiles+"/crds/removed.yaml", "kind: CustomResourceDefinition # gone from the API\n")

		_, err := run(ctx, script, "--check")
		Expect(err).To(MatchError(ContainSubstring("chart out of date")))

		_, err = run(ctx, script)
		Expect(err).NotTo(HaveOccurred())
		Expect(read(chartFiles + "/crds/a.yaml")).To(Equal("kind: CustomResourceDefinition # a\n"))
		Expect(read(chartFiles + "/rbac/manager-role.yaml")).To(Equal("kind: ClusterRole\n"))
		Expect(filepath.Join(root, chartFiles, "crds", "removed.yaml")).NotTo(BeAnExistingFile())
		_, err = run(ctx, script, "--check")
		Expect(err).NotTo(HaveOccurred())

		write("config/crd/bases/a.yaml", "kind: CustomResourceDefinition # a, regenerated\n")
		_, err = run(ctx, script, "--check")
		Expect(err).To(MatchError(ContainSubstring("a.yaml differs")))
	})
})
