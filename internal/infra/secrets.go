package infra

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/backtestpersistence/operator/api/v1"
)

// Endpoints are the connection settings of a tenant, read from its Secrets.
type Endpoints struct {
	// MongoURI is the mongodb:// or mongodb+srv:// connection string.
	MongoURI string
	// RedisURL is the redis:// or rediss:// URL.
	RedisURL string
	// MongoTLS and RedisTLS are the spec's TLS settings with their CA bundles, nil when unset.
	MongoTLS, RedisTLS *TLSMaterial
	// SecretVersions are the Secrets read and their resource versions, sorted by name.
	SecretVersions []v1.AppliedSecret
}

// SecretNames lists the names of the Secrets a BacktestPersistence references.
func SecretNames(obj *v1.BacktestPersistence) []string {
	names := []string{obj.Spec.Mongo.URISecretRef.Name, obj.Spec.Redis.URLSecretRef.Name}
	for _, t := range []*v1.TLSSpec{obj.Spec.Mongo.TLS, obj.Spec.Redis.TLS} {
		if t != nil && t.CASecretRef != nil {
			names = append(names, t.CASecretRef.Name)
		}
	}
	return uniqueSorted(names)
}

// ResolveSecrets reads the Secrets a BacktestPersistence references (in its own
// namespace) and returns the connection settings. A missing Secret is a
// *SecretMissingError, a missing or empty key a *KeyMissingError. The strings are
// returned as stored (trimmed of surrounding whitespace) and not yet validated.
func ResolveSecrets(ctx context.Context, r client.Reader, obj *v1.BacktestPersistence) (Endpoints, error) {
	rs := &secretReader{r: r, ns: obj.Namespace, seen: map[string]string{}}
	var ep Endpoints
	var err error
	if ep.MongoURI, err = rs.value(ctx, obj.Spec.Mongo.URISecretRef); err != nil {
		return Endpoints{}, err
	}
	if ep.RedisURL, err = rs.value(ctx, obj.Spec.Redis.URLSecretRef); err != nil {
		return Endpoints{}, err
	}
	if ep.MongoTLS, err = rs.tls(ctx, obj.Spec.Mongo.TLS); err != nil {
		return Endpoints{}, err
	}
	if ep.RedisTLS, err = rs.tls(ctx, obj.Spec.Redis.TLS); err != nil {
		return Endpoints{}, err
	}
	for _, name := range uniqueSorted(keys(rs.seen)) {
		ep.SecretVersions = append(ep.SecretVersions, v1.AppliedSecret{Name: name, ResourceVersion: rs.seen[name]})
	}
	return ep, nil
}

// secretReader reads each Secret once per resolution, so all values come from one version.
type secretReader struct {
	r     client.Reader
	ns    string
	cache map[string]*corev1.Secret
	seen  map[string]string
}

func (s *secretReader) get(ctx context.Context, name string) (*corev1.Secret, error) {
	if sec, ok := s.cache[name]; ok {
		return sec, nil
	}
	sec := &corev1.Secret{}
	if err := s.r.Get(ctx, types.NamespacedName{Namespace: s.ns, Name: name}, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &SecretMissingError{Namespace: s.ns, Name: name}
		}
		return nil, fmt.Errorf("get secret %s/%s: %w", s.ns, name, err)
	}
	if s.cache == nil {
		s.cache = map[string]*corev1.Secret{}
	}
	s.cache[name] = sec
	s.seen[name] = sec.ResourceVersion
	return sec, nil
}

func (s *secretReader) value(ctx context.Context, ref v1.SecretKeySelector) (string, error) {
	sec, err := s.get(ctx, ref.Name)
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(sec.Data[ref.Key]))
	if v == "" {
		v = strings.TrimSpace(sec.StringData[ref.Key])
	}
	if v == "" {
		return "", &KeyMissingError{Namespace: s.ns, Name: ref.Name, Key: ref.Key}
	}
	return v, nil
}

func (s *secretReader) tls(ctx context.Context, spec *v1.TLSSpec) (*TLSMaterial, error) {
	if spec == nil {
		return nil, nil
	}
	m := &TLSMaterial{ServerName: spec.ServerName, InsecureSkipVerify: spec.InsecureSkipVerify}
	if spec.CASecretRef != nil {
		pem, err := s.value(ctx, *spec.CASecretRef)
		if err != nil {
			return nil, err
		}
		m.CAPEM = []byte(pem)
	}
	return m, nil
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
