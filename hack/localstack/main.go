// Command localstack runs the operator the way a newcomer tries it: a local
// Kubernetes control plane (kube-apiserver and etcd built by hack/envtest.sh),
// FerretDB (on PostgreSQL 15 where hack/tools.sh could install it, else on a tuned
// SQLite; see backend.go) and a redis-server, the manager as its own process, and a
// sample tenant whose worker token it prints. With --kubeconfig (or KUBECONFIG)
// it uses that cluster instead of starting a control plane; with MONGODB_URI and
// REDIS_URL it uses those servers instead of starting its own. Ctrl-C stops
// everything it started; a second run reuses what was built.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/backtestpersistence/operator/internal/testenv"
)

func main() {
	var o options
	flag.StringVar(&o.stateDir, "state-dir", filepath.Join(testenv.RepoRoot(), ".local"), "where the kubeconfig, token and logs are written")
	flag.StringVar(&o.namespace, "namespace", "backtest", "namespace of the sample tenant")
	flag.StringVar(&o.name, "name", "sample", "name of the sample BacktestPersistence")
	flag.IntVar(&o.gatewayPort, "gateway-port", 9090, "loopback port of the gateway (0: any free port)")
	flag.StringVar(&o.backend, "mongo-backend", "", "FerretDB backend: postgresql or sqlite (default: postgresql where installed, else sqlite)")
	flag.StringVar(&o.sqlitePragmas, "sqlite-pragmas", strings.Join(testenv.SQLiteFastPragmas, ","), "SQLite pragmas of FerretDB on SQLite, comma separated (empty: FerretDB's defaults)")
	flag.BoolVar(&o.exitWhenReady, "exit-when-ready", false, "stop everything once the sample tenant is Ready (a smoke test)")
	flag.StringVar(&o.manager, "manager", "", "the manager binary to run (default: bin/manager, built by make build)")
	flag.Parse()
	// --kubeconfig is registered by controller-runtime's config package.
	if f := flag.Lookup("kubeconfig"); f != nil {
		o.kubeconfig = f.Value.String()
	}
	if o.kubeconfig == "" {
		o.kubeconfig = os.Getenv("KUBECONFIG")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "localstack:", err)
		os.Exit(1)
	}
}

type options struct {
	kubeconfig    string
	stateDir      string
	namespace     string
	name          string
	gatewayPort   int
	backend       string
	sqlitePragmas string
	exitWhenReady bool
	manager       string
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
