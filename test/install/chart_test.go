package install_test

import (
	"fmt"
	"os"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// chartVariant is one set of values the chart must render, lint and have accepted.
type chartVariant struct {
	args  []string
	check func(objs []*unstructured.Unstructured)
}

// fullname is the chart's full name for release "btp".
const fullname = "btp-backtest-persistence-operator"

var _ = Describe("Helm chart", func() {
	DescribeTable("renders objects the API server accepts",
		func(ctx SpecContext, v chartVariant) {
			out, err := helmLint(ctx, v.args...)
			Expect(err).NotTo(HaveOccurred(), out)

			manifests, err := helmTemplate(ctx, v.args...)
			Expect(err).NotTo(HaveOccurred())
			objs, err := decode(manifests)
			Expect(err).NotTo(HaveOccurred())
			Expect(objs).NotTo(BeEmpty())
			for _, u := range objs {
				Expect(u.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/instance", "btp"), describe(u))
			}

			Expect(dryRunApply(ctx, objs)).To(Succeed(), "objects rendered: %v", kinds(objs))
			assertLeastPrivilege(objs)
			v.check(objs)
		},
		Entry("default values", chartVariant{check: func(objs []*unstructured.Unstructured) {
			Expect(ofKind(objs, "CustomResourceDefinition")).To(HaveLen(1))
			crd := ofKind(objs, "CustomResourceDefinition")[0]
			Expect(crd.GetAnnotations()).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))

			d := deployment(objs)
			Expect(*d.Spec.Replicas).To(BeNumerically(">", 1))
			c := d.Spec.Template.Spec.Containers[0]
			Expect(c.Image).To(Equal("backtest-persistence-operator:"+chartAppVersion()), "the tag defaults to appVersion")
			Expect(c.Args).To(ContainElements("--leader-elect", "--metrics-bind-address=:8443",
				"--health-probe-bind-address=:8081", "--gateway-bind-address=:9443",
				"--gateway-tls-cert-dir=/tmp/gateway-certs", "--gateway-service-name="+fullname+"-gateway",
				"--gateway-advertise-url=https://"+fullname+"-gateway."+releaseNamespace+".svc",
				"--gateway-token-audiences=backtest-persistence"), "workers need a token for this API by default")
			Expect(strings.Join(c.Args, " ")).NotTo(ContainSubstring("--watch-namespaces"))
			Expect(secretVolume(d)).To(Equal(fullname + "-gateway-tls"))

			Expect(ofKind(objs, "Role")).To(HaveLen(1), "only the leader-election Role")
			Expect(clusterRole(objs, fullname+"-manager").Rules).To(Equal(generatedRules()),
				"the manager ClusterRole grants exactly the generated rules")
			for _, access := range []string{"reader", "writer", "auditor"} {
				Expect(clusterRole(objs, fullname+"-data-"+access).Rules).To(Equal(kustomizeDataRules(access)),
					"the chart's data-%s grants what config/rbac does", access)
			}
			Expect(ofKind(objs, "Certificate")).To(BeEmpty())
			Expect(ofKind(objs, "ServiceMonitor")).To(BeEmpty())
			Expect(ofKind(objs, "NetworkPolicy")).To(BeEmpty())
		}}),
		Entry("namespaced mode", chartVariant{
			args: []string{"--set", "watchNamespaces={team-a,team-b}"},
			check: func(objs []*unstructured.Unstructured) {
				c := deployment(objs).Spec.Template.Spec.Containers[0]
				Expect(c.Args).To(ContainElement("--watch-namespaces=team-a,team-b"))
				for _, ns := range watchedNamespaces {
					role := role(objs, ns, fullname+"-manager")
					Expect(role.Rules).NotTo(BeEmpty())
					Expect(rolebindingExists(objs, ns, fullname+"-manager")).To(BeTrue(), "RoleBinding in %s", ns)
				}
				// Everything namespaced goes to the Roles; the ClusterRole keeps cluster-scoped APIs only.
				for _, cr := range ofKind(objs, "ClusterRole") {
					for _, rule := range toClusterRole(cr).Rules {
						Expect(rule.Resources).NotTo(ContainElement("secrets"), "ClusterRole %s", cr.GetName())
						Expect(rule.Resources).NotTo(ContainElement("backtestpersistences"), "ClusterRole %s", cr.GetName())
					}
				}
				var all []rbacv1.PolicyRule
				if cr := findObject(objs, "ClusterRole", "", fullname+"-manager"); cr != nil {
					all = append(all, toClusterRole(cr).Rules...)
				}
				all = append(all, role(objs, "team-a", fullname+"-manager").Rules...)
				Expect(all).To(ConsistOf(generatedRules()), "the split rules add up to the generated ones")
			},
		}),
		Entry("TLS from cert-manager with a self-signed Issuer", chartVariant{
			args: []string{"--set", "gateway.tls.certManager.enabled=true"},
			check: func(objs []*unstructured.Unstructured) {
				Expect(ofKind(objs, "Issuer")).To(HaveLen(1))
				certs := ofKind(objs, "Certificate")
				Expect(certs).To(HaveLen(1))
				secretName, _, _ := unstructured.NestedString(certs[0].Object, "spec", "secretName")
				Expect(secretVolume(deployment(objs))).To(Equal(secretName), "the manager mounts the issued Secret")
				dnsNames, _, _ := unstructured.NestedStringSlice(certs[0].Object, "spec", "dnsNames")
				Expect(dnsNames).To(ContainElement(fullname + "-gateway." + releaseNamespace + ".svc"))
				issuer, _, _ := unstructured.NestedString(certs[0].Object, "spec", "issuerRef", "name")
				Expect(issuer).To(Equal(ofKind(objs, "Issuer")[0].GetName()))
			},
		}),
		Entry("TLS from cert-manager with a ClusterIssuer", chartVariant{
			args: []string{"--set", "gateway.tls.certManager.enabled=true",
				"--set", "gateway.tls.certManager.issuerRef.name=corp-ca",
				"--set", "gateway.tls.certManager.issuerRef.kind=ClusterIssuer"},
			check: func(objs []*unstructured.Unstructured) {
				Expect(ofKind(objs, "Issuer")).To(BeEmpty())
				certs := ofKind(objs, "Certificate")
				Expect(certs).To(HaveLen(1))
				kind, _, _ := unstructured.NestedString(certs[0].Object, "spec", "issuerRef", "kind")
				Expect(kind).To(Equal("ClusterIssuer"))
			},
		}),
		Entry("ServiceMonitor on", chartVariant{
			args: []string{"--set", "metrics.serviceMonitor.enabled=true",
				"--set", "metrics.serviceMonitor.labels.release=prometheus"},
			check: func(objs []*unstructured.Unstructured) {
				sms := ofKind(objs, "ServiceMonitor")
				Expect(sms).To(HaveLen(1))
				Expect(sms[0].GetLabels()).To(HaveKeyWithValue("release", "prometheus"))
				selector, _, _ := unstructured.NestedStringMap(sms[0].Object, "spec", "selector", "matchLabels")
				svc := findObject(objs, "Service", releaseNamespace, fullname+"-metrics")
				Expect(svc).NotTo(BeNil())
				for k, v := range selector {
					Expect(svc.GetLabels()).To(HaveKeyWithValue(k, v), "the ServiceMonitor selects the metrics Service")
				}
				Expect(findObject(objs, "Service", releaseNamespace, fullname+"-gateway").GetLabels()).
					NotTo(HaveKeyWithValue("app.kubernetes.io/component", "metrics"), "and not the gateway Service")
				// Without a known CA the metrics certificate is self-signed: nothing to verify against.
				skip, _, _ := unstructured.NestedBool(smEndpoint(sms[0]), "tlsConfig", "insecureSkipVerify")
				Expect(skip).To(BeTrue())
				Expect(strings.Join(deployment(objs).Spec.Template.Spec.Containers[0].Args, " ")).NotTo(ContainSubstring("--metrics-cert-dir"))
			},
		}),
		Entry("ServiceMonitor verifying the certificate cert-manager issued", chartVariant{
			args: []string{"--set", "metrics.serviceMonitor.enabled=true", "--set", "gateway.tls.certManager.enabled=true"},
			check: func(objs []*unstructured.Unstructured) {
				sms := ofKind(objs, "ServiceMonitor")
				Expect(sms).To(HaveLen(1))
				tlsConfig, _, _ := unstructured.NestedMap(smEndpoint(sms[0]), "tlsConfig")
				certs := ofKind(objs, "Certificate")
				Expect(certs).To(HaveLen(1))
				secretName, _, _ := unstructured.NestedString(certs[0].Object, "spec", "secretName")
				Expect(tlsConfig).To(Equal(map[string]any{
					"ca":                 map[string]any{"secret": map[string]any{"name": secretName, "key": "ca.crt"}},
					"serverName":         fullname + "-gateway." + releaseNamespace + ".svc",
					"insecureSkipVerify": false,
				}))
				dnsNames, _, _ := unstructured.NestedStringSlice(certs[0].Object, "spec", "dnsNames")
				Expect(dnsNames).To(ContainElement(tlsConfig["serverName"]), "the certificate is valid for the name the scrape checks")
				d := deployment(objs)
				Expect(d.Spec.Template.Spec.Containers[0].Args).To(ContainElements("--metrics-cert-dir=/tmp/gateway-certs", "--gateway-tls-cert-dir=/tmp/gateway-certs"),
					"the metrics endpoint serves the certificate the CA signed")
				Expect(secretVolume(d)).To(Equal(secretName))
			},
		}),
		Entry("ServiceMonitor verifying an existing certificate with a provided CA", chartVariant{
			args: []string{"--set", "metrics.serviceMonitor.enabled=true", "--set", "gateway.tls.existingSecret=corp-tls",
				"--set", "metrics.serviceMonitor.caSecret.name=corp-ca", "--set", "metrics.serviceMonitor.caSecret.key=root.pem"},
			check: func(objs []*unstructured.Unstructured) {
				sms := ofKind(objs, "ServiceMonitor")
				Expect(sms).To(HaveLen(1))
				ca, _, _ := unstructured.NestedStringMap(smEndpoint(sms[0]), "tlsConfig", "ca", "secret")
				Expect(ca).To(Equal(map[string]string{"name": "corp-ca", "key": "root.pem"}))
				skip, _, _ := unstructured.NestedBool(smEndpoint(sms[0]), "tlsConfig", "insecureSkipVerify")
				Expect(skip).To(BeFalse())
				Expect(deployment(objs).Spec.Template.Spec.Containers[0].Args).To(ContainElement("--metrics-cert-dir=/tmp/gateway-certs"))
			},
		}),
		Entry("existing Secret, PodDisruptionBudget, NetworkPolicy and extras", chartVariant{
			args: []string{"-f", repoPath("test", "install", "testdata", "values-full.yaml")},
			check: func(objs []*unstructured.Unstructured) {
				d := deployment(objs)
				Expect(secretVolume(d)).To(Equal("gateway-tls-from-corp-pki"))
				c := d.Spec.Template.Spec.Containers[0]
				Expect(c.Image).To(HavePrefix("registry.example/backtest/operator@sha256:"))
				Expect(c.Args).To(ContainElements("--gateway-token-audiences=backtest-gateway",
					"--gateway-advertise-url=https://persistence.example.internal", "--zap-log-level=debug"))
				Expect(ofKind(objs, "PodDisruptionBudget")).To(HaveLen(1))
				Expect(ofKind(objs, "NetworkPolicy")).To(HaveLen(1))
				Expect(ofKind(objs, "ServiceAccount")).To(BeEmpty(), "serviceAccount.create=false")
				Expect(d.Spec.Template.Spec.ServiceAccountName).To(Equal("platform-operators"))
			},
		}),
		Entry("self-signed certificate generated by the manager", chartVariant{
			args: []string{"--set", "gateway.tls.selfSigned=true"},
			check: func(objs []*unstructured.Unstructured) {
				d := deployment(objs)
				Expect(secretVolume(d)).To(BeEmpty(), "nothing to mount")
				Expect(strings.Join(d.Spec.Template.Spec.Containers[0].Args, " ")).NotTo(ContainSubstring("--gateway-tls"))
				Expect(ofKind(objs, "Certificate")).To(BeEmpty())
			},
		}),
		Entry("CRDs left out, plain HTTP, no metrics, one replica", chartVariant{
			args: []string{"--set", "crds.enabled=false", "--set", "gateway.tls.insecure=true",
				"--set", "metrics.enabled=false", "--set", "replicaCount=1", "--set", "leaderElection.enabled=false"},
			check: func(objs []*unstructured.Unstructured) {
				Expect(ofKind(objs, "CustomResourceDefinition")).To(BeEmpty())
				d := deployment(objs)
				c := d.Spec.Template.Spec.Containers[0]
				Expect(c.Args).To(ContainElements("--gateway-insecure", "--metrics-bind-address=0"))
				Expect(c.Args).NotTo(ContainElement("--leader-elect"))
				Expect(secretVolume(d)).To(BeEmpty())
				Expect(ofKind(objs, "Role")).To(BeEmpty(), "no leader-election Role")
			},
		}),
	)

	It("keeps the CRD out of the keep policy when crds.keep=false", func(ctx SpecContext) {
		manifests, err := helmTemplate(ctx, "--set", "crds.keep=false")
		Expect(err).NotTo(HaveOccurred())
		objs, err := decode(manifests)
		Expect(err).NotTo(HaveOccurred())
		crds := ofKind(objs, "CustomResourceDefinition")
		Expect(crds).To(HaveLen(1))
		Expect(crds[0].GetAnnotations()).NotTo(HaveKey("helm.sh/resource-policy"))
	})

	DescribeTable("tells the user the next step after an install",
		func(ctx SpecContext, want []string, args ...string) {
			// The suite's API server already has the CRD, installed without Helm; Helm refuses to
			// adopt it, so the CRD is left out here (the NOTES do not depend on it).
			base := []string{"install", "btp", chartDir(), "--namespace", releaseNamespace,
				"--dry-run=client", "--kubeconfig", kubeconfig, "--set", "crds.enabled=false"}
			out, err := run(ctx, helmBin, append(base, args...)...)
			Expect(err).NotTo(HaveOccurred())
			Expect(out).To(ContainSubstring("NOTES:"))
			for _, w := range want {
				Expect(out).To(ContainSubstring(w))
			}
		},
		Entry("create the gateway's TLS Secret", []string{
			"NEXT STEP",
			"kubectl -n " + releaseNamespace + " create secret tls " + fullname + "-gateway-tls",
			"kubectl -n " + releaseNamespace + " rollout status deployment/" + fullname,
			"--clusterrole=" + fullname + "-data-writer",
			"https://" + fullname + "-gateway." + releaseNamespace + ".svc",
		}),
		Entry("cert-manager issues the certificate", []string{
			"cert-manager issues the gateway's certificate into the Secret " + fullname + "-gateway-tls",
			"watching: team-a, team-b",
		}, "--set", "gateway.tls.certManager.enabled=true", "--set", "watchNamespaces={team-a,team-b}"),
	)

	DescribeTable("values.schema.json rejects wrong values",
		func(ctx SpecContext, wantInError string, args ...string) {
			_, err := helmTemplate(ctx, args...)
			Expect(err).To(HaveOccurred(), "helm template must refuse %v", args)
			Expect(err.Error()).To(ContainSubstring("schema"))
			Expect(err.Error()).To(ContainSubstring(wantInError))
		},
		Entry("a string for an integer", "replicaCount", "--set-string", "replicaCount=two"),
		Entry("a string for a boolean", "crds", "--set-string", "crds.enabled=yes"),
		Entry("a value outside an enum", "pullPolicy", "--set", "image.pullPolicy=Sometimes"),
		Entry("a port out of range", "port", "--set", "gateway.port=70000"),
		Entry("an unknown key", "replicas", "--set", "replicas=3"),
	)

	It("refuses several replicas without leader election", func(ctx SpecContext) {
		_, err := helmTemplate(ctx, "--set", "leaderElection.enabled=false")
		Expect(err).To(MatchError(ContainSubstring("leaderElection.enabled")))
	})
})

// chartAppVersion reads appVersion from Chart.yaml.
func chartAppVersion() string {
	raw, err := os.ReadFile(repoPath("charts", "backtest-persistence-operator", "Chart.yaml"))
	Expect(err).NotTo(HaveOccurred())
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	Expect(yaml.Unmarshal(raw, &chart)).To(Succeed())
	Expect(chart.AppVersion).NotTo(BeEmpty())
	return chart.AppVersion
}

// generatedRules are the manager's rules controller-gen wrote to config/rbac/role.yaml.
func generatedRules() []rbacv1.PolicyRule {
	raw, err := os.ReadFile(repoPath("config", "rbac", "role.yaml"))
	Expect(err).NotTo(HaveOccurred(), "the generated manager role is missing: run make manifests")
	var role rbacv1.ClusterRole
	Expect(yaml.Unmarshal(raw, &role)).To(Succeed())
	Expect(role.Rules).NotTo(BeEmpty())
	return role.Rules
}

// kustomizeDataRules are the rules of config/rbac/data_<access>_role.yaml.
func kustomizeDataRules(access string) []rbacv1.PolicyRule {
	raw, err := os.ReadFile(repoPath("config", "rbac", "data_"+access+"_role.yaml"))
	Expect(err).NotTo(HaveOccurred())
	var role rbacv1.ClusterRole
	Expect(yaml.Unmarshal(raw, &role)).To(Succeed())
	Expect(role.Rules).NotTo(BeEmpty())
	return role.Rules
}

// findObject returns the object of a kind, namespace and name, or nil.
func findObject(objs []*unstructured.Unstructured, kind, namespace, name string) *unstructured.Unstructured {
	for _, u := range ofKind(objs, kind) {
		if u.GetNamespace() == namespace && u.GetName() == name {
			return u
		}
	}
	return nil
}

// convert turns an unstructured object into a typed one.
func convert(u *unstructured.Unstructured, into any) {
	ExpectWithOffset(2, runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into)).To(Succeed(), describe(u))
}

// deployment returns the single manager Deployment.
func deployment(objs []*unstructured.Unstructured) *appsv1.Deployment {
	ds := ofKind(objs, "Deployment")
	ExpectWithOffset(1, ds).To(HaveLen(1))
	var d appsv1.Deployment
	convert(ds[0], &d)
	return &d
}

// secretVolume returns the Secret the manager mounts its gateway certificate from ("" when none).
func secretVolume(d *appsv1.Deployment) string {
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "gateway-certs" && v.Secret != nil {
			return v.Secret.SecretName
		}
	}
	return ""
}

func toClusterRole(u *unstructured.Unstructured) *rbacv1.ClusterRole {
	var r rbacv1.ClusterRole
	convert(u, &r)
	return &r
}

// clusterRole returns the named ClusterRole, failing when it is absent.
func clusterRole(objs []*unstructured.Unstructured, name string) *rbacv1.ClusterRole {
	u := findObject(objs, "ClusterRole", "", name)
	ExpectWithOffset(1, u).NotTo(BeNil(), fmt.Sprintf("ClusterRole %s", name))
	return toClusterRole(u)
}

// role returns the named Role, failing when it is absent.
func role(objs []*unstructured.Unstructured, namespace, name string) *rbacv1.Role {
	u := findObject(objs, "Role", namespace, name)
	ExpectWithOffset(1, u).NotTo(BeNil(), fmt.Sprintf("Role %s/%s", namespace, name))
	var r rbacv1.Role
	convert(u, &r)
	return &r
}

func rolebindingExists(objs []*unstructured.Unstructured, namespace, name string) bool {
	return findObject(objs, "RoleBinding", namespace, name) != nil
}

// smEndpoint is the first endpoint of a ServiceMonitor.
func smEndpoint(sm *unstructured.Unstructured) map[string]any {
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	Expect(eps).NotTo(BeEmpty())
	return eps[0].(map[string]any)
}
