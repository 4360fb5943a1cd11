package install_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var _ = Describe("The manager's pod under the restricted Pod Security Standard", func() {
	DescribeTable("is admitted",
		func(ctx SpecContext, render func(ctx context.Context) (string, error)) {
			manifests, err := render(ctx)
			Expect(err).NotTo(HaveOccurred())
			objs, err := decode(manifests)
			Expect(err).NotTo(HaveOccurred())
			pod := podFromTemplate(deployment(objs))
			Expect(createPodDryRun(ctx, pod)).To(Succeed())
		},
		Entry("chart, default values", func(ctx context.Context) (string, error) { return helmTemplate(ctx) }),
		Entry("chart, production-like values", func(ctx context.Context) (string, error) {
			return helmTemplate(ctx, "-f", repoPath("test", "install", "testdata", "values-full.yaml"))
		}),
		Entry("chart, plain HTTP without metrics", func(ctx context.Context) (string, error) {
			return helmTemplate(ctx, "--set", "gateway.tls.insecure=true", "--set", "metrics.enabled=false")
		}),
		Entry("config/default", func(ctx context.Context) (string, error) {
			return kustomize(ctx, repoPath("config", "default"))
		}),
	)

	// The namespace really enforces the standard: the same pod loosened in one way is refused.
	DescribeTable("is refused once loosened",
		func(ctx SpecContext, loosen func(*corev1.Pod)) {
			manifests, err := helmTemplate(ctx)
			Expect(err).NotTo(HaveOccurred())
			objs, err := decode(manifests)
			Expect(err).NotTo(HaveOccurred())
			pod := podFromTemplate(deployment(objs))
			loosen(pod)
			err = createPodDryRun(ctx, pod)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring("violates PodSecurity"))
		},
		Entry("privilege escalation allowed", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
		}),
		Entry("capabilities kept", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext.Capabilities = nil
		}),
		Entry("no seccomp profile", func(p *corev1.Pod) {
			p.Spec.SecurityContext.SeccompProfile = nil
		}),
		Entry("root allowed", func(p *corev1.Pod) {
			p.Spec.SecurityContext.RunAsNonRoot = nil
			p.Spec.SecurityContext.RunAsUser = nil
			p.Spec.Containers[0].SecurityContext.RunAsNonRoot = nil
		}),
	)
})

// podFromTemplate turns the Deployment's pod template into a Pod in the restricted namespace.
func podFromTemplate(d *appsv1.Deployment) *corev1.Pod {
	tmpl := d.Spec.Template.DeepCopy()
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        d.Name,
			Namespace:   restrictedNamespace,
			Labels:      tmpl.Labels,
			Annotations: tmpl.Annotations,
		},
		Spec: tmpl.Spec,
	}
}

// createPodDryRun creates the pod with server-side dry-run, running the admission chain.
func createPodDryRun(ctx context.Context, pod *corev1.Pod) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return k8sClient.Create(ctx, pod, client.DryRunAll)
}
