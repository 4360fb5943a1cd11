package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"

	"github.com/backtestpersistence/operator/internal/gateway"
	"github.com/backtestpersistence/operator/internal/infra"
)

// gatewayOptions are the command-line settings of the gateway.
type gatewayOptions struct {
	bindAddress   string
	insecure      bool
	tlsCertDir    string
	tlsSecret     string
	advertiseURL  string
	serviceName   string
	audiences     string
	maxBodyBytes  int64
	maxBatchOps   int
	maxConns      int
	maxConnsPerIP int
	reviewsPerSec float64
	opTimeout     time.Duration
	authCacheTTL  time.Duration
	openTimeout   time.Duration
	shutdownGrace time.Duration
}

// bindGatewayFlags registers the gateway's flags.
func bindGatewayFlags(fs *flag.FlagSet) *gatewayOptions {
	o := &gatewayOptions{}
	fs.StringVar(&o.bindAddress, "gateway-bind-address", ":9443", "Address the gateway's HTTP API listens on (every replica serves it).")
	fs.BoolVar(&o.insecure, "gateway-insecure", false, "Serve the gateway over plain HTTP. For local runs only: bearer tokens then travel in clear text.")
	fs.StringVar(&o.tlsCertDir, "gateway-tls-cert-dir", "", "Directory with tls.crt and tls.key of the gateway (a mounted kubernetes.io/tls Secret, e.g. from cert-manager); reloaded when they change.")
	fs.StringVar(&o.tlsSecret, "gateway-tls-secret", "", "namespace/name of a kubernetes.io/tls Secret to serve, read through the API and refreshed every minute (alternative to --gateway-tls-cert-dir).")
	fs.StringVar(&o.advertiseURL, "gateway-advertise-url", "", "URL workers use to reach the gateway, written to status.endpoint. Default: https://<service>.<namespace>.svc.")
	fs.StringVar(&o.serviceName, "gateway-service-name", "backtest-persistence-gateway", "Name of the gateway's Service, for the default advertised URL and self-signed certificate.")
	fs.StringVar(&o.audiences, "gateway-token-audiences", "", "Comma-separated audiences a worker's token must be bound to (e.g. a projected token for this API). Empty: the API server's own audiences.")
	fs.Int64Var(&o.maxBodyBytes, "gateway-max-body-bytes", gateway.DefaultLimits.MaxBodyBytes, "Largest request body the gateway accepts (413 beyond).")
	fs.IntVar(&o.maxBatchOps, "gateway-max-batch-ops", gateway.DefaultLimits.MaxBatchOps, "Most operations in one batch call (413 beyond).")
	fs.IntVar(&o.maxConns, "gateway-max-conns", gateway.DefaultLimits.MaxConns, "Most connections the gateway serves at once (further ones get 503 and are closed).")
	fs.IntVar(&o.maxConnsPerIP, "gateway-max-conns-per-ip", gateway.DefaultLimits.MaxConnsPerIP, "Most connections the gateway serves at once from one client address.")
	fs.Float64Var(&o.reviewsPerSec, "gateway-token-reviews-per-second", gateway.DefaultTokenReviewsPerSecond, "Rate of TokenReviews for tokens not in the cache (bursts of twice as many); a new token beyond it gets 503, cached tokens are unaffected.")
	fs.DurationVar(&o.opTimeout, "gateway-op-timeout", 5*time.Second, "Timeout of one store operation behind the gateway (503 when it fires).")
	fs.DurationVar(&o.authCacheTTL, "gateway-auth-cache-ttl", 10*time.Second, "How long TokenReview and SubjectAccessReview decisions are cached (denials: a fifth of it).")
	fs.DurationVar(&o.openTimeout, "gateway-store-open-timeout", 15*time.Second, "Timeout of opening one tenant's store.")
	fs.DurationVar(&o.shutdownGrace, "gateway-shutdown-grace", 15*time.Second, "How long in-flight requests may finish at shutdown.")
	return o
}

// setupGateway adds the gateway (HTTP API, tenant registry) to the manager.
// pools are the connection pools the reconciler also uses, so a tenant's clients are shared.
func setupGateway(mgr ctrl.Manager, opts *gatewayOptions, pools *infra.Pools) error {
	log := ctrl.Log.WithName("gateway")
	namespace := podNamespace()
	endpoint := opts.advertiseURL
	if endpoint == "" {
		scheme := "https"
		if opts.insecure {
			scheme = "http"
		}
		endpoint = fmt.Sprintf("%s://%s.%s.svc", scheme, opts.serviceName, namespace)
	}
	certs, err := gatewayCerts(mgr, opts, namespace, log.Info)
	if err != nil {
		return err
	}
	_, err = gateway.Setup(mgr, gateway.Config{
		BindAddress: opts.bindAddress,
		Certs:       certs,
		Endpoint:    endpoint,
		Audiences:   splitList(opts.audiences),
		Limits: gateway.Limits{MaxBodyBytes: opts.maxBodyBytes, MaxBatchOps: opts.maxBatchOps,
			MaxConns: opts.maxConns, MaxConnsPerIP: opts.maxConnsPerIP},
		TokenReviewsPerSecond: opts.reviewsPerSec,
		OpTimeout:             opts.opTimeout,
		AuthCacheTTL:          opts.authCacheTTL,
		OpenTimeout:           opts.openTimeout,
		ShutdownGrace:         opts.shutdownGrace,
		Pools:                 pools,
	})
	return err
}

// gatewayCerts chooses the serving certificate: none with --gateway-insecure; the
// files of --gateway-tls-cert-dir (watched); the Secret of --gateway-tls-secret
// (polled); otherwise a self-signed certificate generated at start.
func gatewayCerts(mgr ctrl.Manager, opts *gatewayOptions, namespace string, info func(string, ...any)) (gateway.CertSource, error) {
	switch {
	case opts.insecure:
		info("gateway TLS disabled by --gateway-insecure: use for local runs only")
		return nil, nil
	case opts.tlsCertDir != "":
		w, err := certwatcher.New(filepath.Join(opts.tlsCertDir, "tls.crt"), filepath.Join(opts.tlsCertDir, "tls.key"))
		if err != nil {
			return nil, fmt.Errorf("gateway: load TLS certificate from %s: %w", opts.tlsCertDir, err)
		}
		if err := mgr.Add(w); err != nil {
			return nil, fmt.Errorf("gateway: add certificate watcher: %w", err)
		}
		return w, nil
	case opts.tlsSecret != "":
		ns, name, ok := strings.Cut(opts.tlsSecret, "/")
		if !ok || ns == "" || name == "" {
			return nil, fmt.Errorf("gateway: --gateway-tls-secret must be namespace/name, got %q", opts.tlsSecret)
		}
		src := &gateway.SecretCertSource{Reader: mgr.GetAPIReader(), Secret: types.NamespacedName{Namespace: ns, Name: name}}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := src.Load(ctx); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		if err := mgr.Add(src); err != nil {
			return nil, fmt.Errorf("gateway: add certificate refresher: %w", err)
		}
		return src, nil
	default:
		svc := opts.serviceName
		hosts := []string{svc, svc + "." + namespace, svc + "." + namespace + ".svc", svc + "." + namespace + ".svc.cluster.local", "localhost", "127.0.0.1", "::1"}
		cert, _, err := gateway.SelfSignedCert(hosts)
		if err != nil {
			return nil, fmt.Errorf("gateway: self-signed certificate: %w", err)
		}
		info("gateway serves a self-signed certificate generated at start; mount a real one with --gateway-tls-cert-dir")
		return gateway.NewStaticCertSource(cert), nil
	}
}

// podNamespace is the namespace the manager runs in (POD_NAMESPACE, the service
// account's namespace file, or "default").
func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return "default"
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
