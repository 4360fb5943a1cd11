package install_test

import (
	"bytes"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("The chart's copies of the generated files", func() {
	It("holds every generated CRD byte for byte, and no other", func() {
		generated, err := filepath.Glob(repoPath("config", "crd", "bases", "*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(generated).NotTo(BeEmpty(), "no generated CRD: run make manifests")
		inChart, err := filepath.Glob(filepath.Join(chartDir(), "files", "crds", "*.yaml"))
		Expect(err).NotTo(HaveOccurred())

		var generatedNames, chartNames []string
		for _, p := range generated {
			generatedNames = append(generatedNames, filepath.Base(p))
			want, err := os.ReadFile(p)
			Expect(err).NotTo(HaveOccurred())
			got, err := os.ReadFile(filepath.Join(chartDir(), "files", "crds", filepath.Base(p)))
			Expect(err).NotTo(HaveOccurred(), "the chart lacks %s: run make manifests", filepath.Base(p))
			Expect(bytes.Equal(got, want)).To(BeTrue(),
				"the chart's %s differs from the generated CRD: run make manifests", filepath.Base(p))
		}
		for _, p := range inChart {
			chartNames = append(chartNames, filepath.Base(p))
		}
		Expect(chartNames).To(ConsistOf(generatedNames))
	})

	It("holds the generated manager role byte for byte", func() {
		want, err := os.ReadFile(repoPath("config", "rbac", "role.yaml"))
		Expect(err).NotTo(HaveOccurred(), "no generated manager role: run make manifests")
		got, err := os.ReadFile(filepath.Join(chartDir(), "files", "rbac", "manager-role.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(bytes.Equal(got, want)).To(BeTrue(), "the chart's manager role differs from config/rbac/role.yaml: run make manifests")
	})

	It("is what hack/sync-chart-crds.sh --check finds up to date", func(ctx SpecContext) {
		out, err := run(ctx, repoPath("hack", "sync-chart-crds.sh"), "--check")
		Expect(err).NotTo(HaveOccurred(), out)
	})

	It("renders the generated CRD unchanged apart from the release's labels and keep policy", func(ctx SpecContext) {
		raw, err := os.ReadFile(generatedCRDPath())
		Expect(err).NotTo(HaveOccurred())
		want, err := decode(string(raw))
		Expect(err).NotTo(HaveOccurred())
		Expect(want).To(HaveLen(1))

		manifests, err := helmTemplate(ctx)
		Expect(err).NotTo(HaveOccurred())
		objs, err := decode(manifests)
		Expect(err).NotTo(HaveOccurred())
		rendered := ofKind(objs, "CustomResourceDefinition")
		Expect(rendered).To(HaveLen(1))
		got := rendered[0]

		Expect(got.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "Helm"))
		Expect(got.GetAnnotations()).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))
		annotations := got.GetAnnotations()
		delete(annotations, "helm.sh/resource-policy")
		got.SetAnnotations(annotations)
		got.SetLabels(want[0].GetLabels())
		Expect(got.Object).To(Equal(want[0].Object))
	})

	It("travels in the packaged chart", func(ctx SpecContext) {
		dir := GinkgoT().TempDir()
		_, err := run(ctx, helmBin, "package", chartDir(), "--destination", dir)
		Expect(err).NotTo(HaveOccurred())
		packages, err := filepath.Glob(filepath.Join(dir, "*.tgz"))
		Expect(err).NotTo(HaveOccurred())
		Expect(packages).To(HaveLen(1))
		manifests, err := run(ctx, helmBin, "template", "btp", packages[0], "--namespace", releaseNamespace)
		Expect(err).NotTo(HaveOccurred())
		objs, err := decode(manifests)
		Expect(err).NotTo(HaveOccurred())
		Expect(ofKind(objs, "CustomResourceDefinition")).To(HaveLen(1))
		Expect(clusterRole(objs, fullname+"-manager").Rules).To(Equal(generatedRules()))
	})
})
