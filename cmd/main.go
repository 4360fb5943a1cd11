// Command manager runs the backtest-persistence operator: the BacktestPersistence
// controller (leader-elected), the gateway serving every tenant's store (on every
// replica), metrics and health probes.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/backtestpersistence/operator/api/v1"
	"github.com/backtestpersistence/operator/controllers"
	"github.com/backtestpersistence/operator/internal/infra"
)

// managerOptions are the command-line settings of the manager itself.
type managerOptions struct {
	metricsAddr, probeAddr             string
	leaderElect                        bool
	leaderElectionID, leaderElectionNS string
	watchNamespaces                    string
	metricsSecure                      bool
	metricsCertDir                     string
	probeTimeout                       time.Duration
	mongoMaxPoolSize                   uint64
}

func bindManagerFlags(fs *flag.FlagSet) *managerOptions {
	o := &managerOptions{}
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "Address of the Prometheus metrics endpoint (\"0\" disables it).")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS, to callers whose token may get /metrics (TokenReview and SubjectAccessReview); false serves plain HTTP.")
	fs.StringVar(&o.metricsCertDir, "metrics-cert-dir", "", "Directory with tls.crt and tls.key for the metrics endpoint (e.g. the gateway's mounted certificate, so scrapers can verify it); reloaded when they change. Empty: a self-signed certificate.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader among replicas; only the leader reconciles (the gateway serves on every replica).")
	fs.StringVar(&o.leaderElectionID, "leader-election-id", "backtest-persistence-operator.persistence.backtestkit.dev", "Name of the leader election Lease.")
	fs.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's namespace).")
	fs.StringVar(&o.watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces to watch (default: all).")
	fs.DurationVar(&o.probeTimeout, "probe-timeout", controllers.DefaultProbeTimeout, "Timeout of each MongoDB or Redis probe.")
	fs.Uint64Var(&o.mongoMaxPoolSize, "mongo-max-pool-size", 16, "Connections per MongoDB endpoint (keep below half the server's pool on FerretDB).")
	return o
}

func main() {
	mopts := bindManagerFlags(flag.CommandLine)
	gwOpts := bindGatewayFlags(flag.CommandLine)
	zopts := zap.Options{}
	zopts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))

	if err := run(ctrl.SetupSignalHandler(), mopts, gwOpts); err != nil {
		ctrl.Log.WithName("setup").Error(err, "manager failed")
		os.Exit(1)
	}
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1.AddToScheme(s))
	return s
}

// watchedNamespaces turns the flag into cache settings; empty means all namespaces.
func watchedNamespaces(flagValue string) map[string]cache.Config {
	var out map[string]cache.Config
	for _, ns := range strings.Split(flagValue, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			if out == nil {
				out = map[string]cache.Config{}
			}
			out[ns] = cache.Config{}
		}
	}
	return out
}

// metricsOptions serves metrics as kubebuilder scaffolds it: HTTPS with a self-signed
// certificate (or the one in --metrics-cert-dir) and authentication and authorization of each scrape, unless turned off.
func metricsOptions(o *managerOptions) metricsserver.Options {
	opts := metricsserver.Options{BindAddress: o.metricsAddr, SecureServing: o.metricsSecure}
	if o.metricsSecure {
		opts.FilterProvider = filters.WithAuthenticationAndAuthorization
		opts.CertDir = o.metricsCertDir
	}
	return opts
}

func run(ctx context.Context, o *managerOptions, gwOpts *gatewayOptions) error {
	log := ctrl.Log.WithName("setup")
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        newScheme(),
		Metrics:                       metricsOptions(o),
		HealthProbeBindAddress:        o.probeAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              o.leaderElectionID,
		LeaderElectionNamespace:       o.leaderElectionNS,
		LeaderElectionReleaseOnCancel: true,
		Cache:                         cache.Options{DefaultNamespaces: watchedNamespaces(o.watchNamespaces)},
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}

	infra.RouteRedisLogs(ctrl.Log.WithName("redis"))
	pools := infra.NewPools(infra.PoolOptions{MongoMaxPoolSize: o.mongoMaxPoolSize, Log: ctrl.Log.WithName("pools")})
	defer pools.Close()

	r := &controllers.BacktestPersistenceReconciler{
		Client:       mgr.GetClient(),
		Pools:        pools,
		ProbeTimeout: o.probeTimeout,
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("set up controller: %w", err)
	}
	if err := setupGateway(mgr, gwOpts, pools); err != nil {
		return fmt.Errorf("set up gateway: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add readiness check: %w", err)
	}
	log.Info("starting manager", "watchNamespaces", o.watchNamespaces, "leaderElection", o.leaderElect)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}
