package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/backtestpersistence/operator/internal/infra"
	"github.com/backtestpersistence/operator/internal/tenant"
)

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Config assembles a gateway inside a manager.
type Config struct {
	// BindAddress is where the API listens (ignored when Listener is set).
	BindAddress string
	Listener    net.Listener
	// Certs serves TLS; nil means plain HTTP.
	Certs CertSource
	// Endpoint is the advertised URL written to status.endpoint by the leader.
	Endpoint string
	// Audiences a token must be bound to; empty: the API server's audiences.
	Audiences []string
	Limits    Limits
	// OpTimeout bounds one store operation (default 5s).
	OpTimeout time.Duration
	// AuthCacheTTL is how long allowed decisions are cached (default 10s); denials a fifth of it.
	AuthCacheTTL time.Duration
	// TokenReviewsPerSecond bounds the TokenReviews of tokens not in the cache
	// (default DefaultTokenReviewsPerSecond, bursts of twice as many).
	TokenReviewsPerSecond float64
	// OpenTimeout bounds opening one tenant's store (default 15s).
	OpenTimeout time.Duration
	// ShutdownGrace bounds the drain of in-flight requests (default 15s).
	ShutdownGrace time.Duration
	// Pools are the shared MongoDB and Redis clients.
	Pools *infra.Pools
	// Started, when set, receives the bound address once the server listens.
	Started chan<- net.Addr
}

// Gateway is an assembled gateway: its registry and its HTTP handler.
type Gateway struct {
	Registry *tenant.Registry
	Handler  *Handler
}

// Setup adds the gateway to mgr: the tenant registry and its reconciler (on every
// replica), the HTTP server (on every replica), the readiness check, and the store
// closer at shutdown.
func Setup(mgr ctrl.Manager, cfg Config) (*Gateway, error) {
	log := ctrl.Log.WithName("gateway")
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 5 * time.Second
	}
	if cfg.AuthCacheTTL <= 0 {
		cfg.AuthCacheTTL = 10 * time.Second
	}
	metrics := DefaultMetrics()
	registry := tenant.NewRegistry()
	unregister := RegisterTenantGauges(registry)

	rec := &tenant.Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Registry:  registry,
		Opener:    &tenant.PoolOpener{Pools: cfg.Pools, OpTimeout: cfg.OpTimeout, Observer: metrics},
		Endpoint:  cfg.Endpoint, Elected: mgr.Elected(), OpenTimeout: cfg.OpenTimeout,
	}
	if err := rec.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("gateway: kubernetes client: %w", err)
	}
	negTTL := cfg.AuthCacheTTL / 5
	handler := NewHandler(Options{
		Tenants: registry,
		Authenticator: NewTokenReviewAuthenticator(cs.AuthenticationV1().TokenReviews(), TokenReviewOptions{
			Audiences: cfg.Audiences, ReviewOptions: ReviewOptions{TTL: cfg.AuthCacheTTL, NegativeTTL: negTTL},
			ReviewsPerSecond: cfg.TokenReviewsPerSecond, ReviewBurst: int(2 * cfg.TokenReviewsPerSecond), Metrics: metrics,
		}),
		Authorizer: NewSubjectAccessReviewAuthorizer(cs.AuthorizationV1().SubjectAccessReviews(), SubjectAccessReviewOptions{
			ReviewOptions: ReviewOptions{TTL: cfg.AuthCacheTTL, NegativeTTL: negTTL}, Metrics: metrics,
		}),
		Metrics: metrics,
		Limits:  cfg.Limits,
		// The store's own timeout fires first; this one only guards against a stuck store.
		OpTimeout: cfg.OpTimeout + time.Second,
		Log:       log,
	})
	srv := &Server{Addr: cfg.BindAddress, Listener: cfg.Listener, Handler: handler, Certs: cfg.Certs,
		Log: log, ShutdownTimeout: cfg.ShutdownGrace, Started: cfg.Started}
	if err := mgr.Add(srv); err != nil {
		return nil, fmt.Errorf("gateway: add server: %w", err)
	}
	// Stores are closed at shutdown; a store's close waits for its in-flight requests.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		unregister()
		registry.CloseAll()
		return nil
	})); err != nil {
		return nil, fmt.Errorf("gateway: add registry closer: %w", err)
	}
	if err := mgr.AddReadyzCheck("gateway-tenants", func(*http.Request) error {
		if !registry.Ready() {
			return errors.New("tenant registry has not loaded the existing tenants yet")
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("gateway: add readiness check: %w", err)
	}
	return &Gateway{Registry: registry, Handler: handler}, nil
}
