package install_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var _ = Describe("Kustomize manifests", func() {
	It("config/default builds into objects the API server accepts", func(ctx SpecContext) {
		manifests, err := kustomize(ctx, repoPath("config", "default"))
		Expect(err).NotTo(HaveOccurred())
		objs, err := decode(manifests)
		Expect(err).NotTo(HaveOccurred())
		Expect(dryRunApply(ctx, objs)).To(Succeed(), "objects built: %v", kinds(objs))

		Expect(kinds(objs)).To(HaveKeyWithValue("CustomResourceDefinition", 1))
		Expect(kinds(objs)).To(HaveKeyWithValue("Deployment", 1))
		ns := ofKind(objs, "Namespace")
		Expect(ns).To(HaveLen(1))
		Expect(ns[0].GetName()).To(Equal(releaseNamespace))
		Expect(ns[0].GetLabels()).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "restricted"))

		d := deployment(objs)
		Expect(d.Namespace).To(Equal(releaseNamespace))
		c := d.Spec.Template.Spec.Containers[0]
		Expect(c.Args).To(ContainElements("--leader-elect", "--metrics-bind-address=:8443",
			"--health-probe-bind-address=:8081", "--gateway-bind-address=:9443",
			"--gateway-tls-cert-dir=/tmp/gateway-certs", "--gateway-token-audiences=backtest-persistence"))

		// The advertised URL names the gateway Service that kustomize actually produced.
		gateway := findObject(objs, "Service", releaseNamespace, "backtest-persistence-gateway")
		Expect(gateway).NotTo(BeNil(), "gateway Service")
		url := fmt.Sprintf("https://%s.%s.svc", gateway.GetName(), releaseNamespace)
		Expect(c.Args).To(ContainElements("--gateway-advertise-url="+url,
			"--gateway-service-name="+gateway.GetName()))

		// Every binding names the ServiceAccount the Deployment runs as, and a role that exists.
		for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
			for _, u := range ofKind(objs, kind) {
				var b rbacv1.RoleBinding
				convert(u, &b)
				Expect(b.Subjects).To(HaveLen(1), describe(u))
				Expect(b.Subjects[0].Name).To(Equal(d.Spec.Template.Spec.ServiceAccountName), describe(u))
				Expect(b.Subjects[0].Namespace).To(Equal(releaseNamespace), describe(u))
				Expect(findObject(objs, b.RoleRef.Kind, u.GetNamespace(), b.RoleRef.Name)).NotTo(BeNil(),
					"%s refers to %s %s", describe(u), b.RoleRef.Kind, b.RoleRef.Name)
			}
		}
		Expect(clusterRole(objs, "backtest-persistence-manager-role").Rules).To(Equal(generatedRules()))
		assertLeastPrivilege(objs)
	})

	It("config/certmanager and config/network-policy, enabled in config/default, are accepted", func(ctx SpecContext) {
		// The same namespace and name prefix config/default gives them when uncommented there.
		dir := GinkgoT().TempDir()
		kustomization := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: %s
namePrefix: backtest-persistence-
resources:
- %s
- %s
`, releaseNamespace, relativeTo(dir, repoPath("config", "certmanager")), relativeTo(dir, repoPath("config", "network-policy")))
		Expect(os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o600)).To(Succeed())
		manifests, err := kustomize(ctx, dir)
		Expect(err).NotTo(HaveOccurred())
		objs, err := decode(manifests)
		Expect(err).NotTo(HaveOccurred())
		Expect(kinds(objs)).To(Equal(map[string]int{"Issuer": 1, "Certificate": 1, "NetworkPolicy": 2}))
		Expect(dryRunApply(ctx, objs)).To(Succeed())

		defaults, err := kustomize(ctx, repoPath("config", "default"))
		Expect(err).NotTo(HaveOccurred())
		defaultObjs, err := decode(defaults)
		Expect(err).NotTo(HaveOccurred())
		cert := ofKind(objs, "Certificate")[0]
		secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
		Expect(secretVolume(deployment(defaultObjs))).To(Equal(secretName), "the manager mounts the issued Secret")
		issuer, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name")
		Expect(issuer).To(Equal(ofKind(objs, "Issuer")[0].GetName()))
		dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
		Expect(dnsNames).To(ContainElement("backtest-persistence-gateway." + releaseNamespace + ".svc"))
	})

	It("config/samples builds into a tenant the API server accepts", func(ctx SpecContext) {
		manifests, err := kustomize(ctx, repoPath("config", "samples"))
		Expect(err).NotTo(HaveOccurred())
		objs, err := decode(manifests)
		Expect(err).NotTo(HaveOccurred())
		Expect(kinds(objs)).To(Equal(map[string]int{
			"Secret": 2, "BacktestPersistence": 1, "ServiceAccount": 1, "Role": 1, "RoleBinding": 1, "Deployment": 1,
		}))
		for _, u := range objs {
			Expect(u.GetNamespace()).To(Equal(samplesNamespace), describe(u))
		}
		Expect(dryRunApply(ctx, objs)).To(Succeed())

		// The worker's Role grants data access to the sample's store, in the verbs the gateway checks.
		r := role(objs, samplesNamespace, "backtest-worker-data")
		Expect(r.Rules).To(HaveLen(1))
		Expect(r.Rules[0].Resources).To(Equal([]string{"backtestpersistences/data"}))
		Expect(r.Rules[0].Verbs).To(ConsistOf("get", "update"))
		Expect(r.Rules[0].ResourceNames).To(Equal([]string{ofKind(objs, "BacktestPersistence")[0].GetName()}))

		// The worker authenticates with a projected token for the gateway's default audience.
		var w appsv1.Deployment
		convert(ofKind(objs, "Deployment")[0], &w)
		Expect(w.Spec.Template.Spec.ServiceAccountName).To(Equal(ofKind(objs, "ServiceAccount")[0].GetName()))
		var audiences []string
		for _, v := range w.Spec.Template.Spec.Volumes {
			if v.Projected == nil {
				continue
			}
			for _, src := range v.Projected.Sources {
				if src.ServiceAccountToken != nil {
					audiences = append(audiences, src.ServiceAccountToken.Audience)
				}
			}
		}
		Expect(audiences).To(Equal([]string{"backtest-persistence"}))
	})
})

// relativeTo returns target relative to dir (kustomize refuses absolute resource paths).
func relativeTo(dir, target string) string {
	rel, err := filepath.Rel(dir, target)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return rel
}

// assertLeastPrivilege checks every role: no wildcard, Secrets only read, and the reviews
// only created.
func assertLeastPrivilege(objs []*unstructured.Unstructured) {
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, u := range ofKind(objs, kind) {
			var r rbacv1.ClusterRole
			convert(u, &r)
			for _, rule := range r.Rules {
				for _, field := range [][]string{rule.Verbs, rule.Resources, rule.APIGroups} {
					ExpectWithOffset(1, field).NotTo(ContainElement("*"), "%s has a wildcard", describe(u))
				}
				for _, res := range rule.Resources {
					switch {
					case res == "secrets":
						ExpectWithOffset(1, rule.Verbs).To(HaveEach(BeElementOf("get", "list", "watch")),
							"%s: Secrets are read-only", describe(u))
					case res == "tokenreviews" || res == "subjectaccessreviews":
						ExpectWithOffset(1, rule.Verbs).To(Equal([]string{"create"}), "%s: %s", describe(u), res)
					case strings.HasSuffix(res, "/data"):
						// get: read, update: write, list: scan (enumerate a tenant's keys).
						ExpectWithOffset(1, rule.Verbs).To(HaveEach(BeElementOf("get", "update", "list")), describe(u))
					}
				}
			}
		}
	}
}
