// Command backtest-kit is the real-client benchmark: backtest-kit 19.5.0 runs three
// scenarios (a default backtest, a full-profile backtest, a paper session with
// @backtest-kit/cli's setup) on three backends (backtest-kit's file adapters,
// @backtest-kit/mongo 19.5.0 and this project's gateway and client) over one FerretDB
// on PostgreSQL and one redis-server, and prints the busy seconds in persistence, the
// ratios and the closed signals. It exits non-zero when backends that completed a
// scenario closed different signals, or when this project's backend did not complete.
//
//	go run ./test/bench/backtest-kit [-defaults-days 3] [-full-days 1] [-paper-minutes 300]
//
// See docs/performance-backtest-kit.md.
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

type options struct {
	scenarios    []string
	backends     []string
	defaultsDays float64
	fullDays     float64
	paperMinutes int
	runTimeout   time.Duration
	workDir      string
	jsonOut      string
}

func main() {
	var o options
	var scenarios, backends string
	flag.StringVar(&scenarios, "scenarios", "defaults,full,paper", "scenarios to run (defaults, full, paper)")
	flag.StringVar(&backends, "backends", "file,mongo,operator", "backends to run (file, mongo, operator)")
	flag.Float64Var(&o.defaultsDays, "defaults-days", 3, "length of the default backtest in days")
	flag.Float64Var(&o.fullDays, "full-days", 1, "length of the full-profile backtest in days")
	flag.IntVar(&o.paperMinutes, "paper-minutes", 300, "length of the paper session in minutes")
	flag.DurationVar(&o.runTimeout, "run-timeout", 45*time.Minute, "a run still going after this is ended and reported as aborted")
	flag.StringVar(&o.workDir, "work-dir", "", "scratch folder of the runs (default: a new temporary folder, removed at the end)")
	flag.StringVar(&o.jsonOut, "json", "", "also write the outcomes as JSON to this file")
	flag.Parse()
	o.scenarios = strings.Split(scenarios, ",")
	o.backends = strings.Split(backends, ",")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-backtest-kit:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(ctx context.Context, o options) (int, error) {
	for _, s := range o.scenarios {
		if _, ok := scenarioLabels[s]; !ok {
			return 0, fmt.Errorf("unknown scenario %q", s)
		}
	}
	for _, b := range o.backends {
		if _, ok := backendLabels[b]; !ok {
			return 0, fmt.Errorf("unknown backend %q", b)
		}
	}
	if o.workDir == "" {
		dir, err := os.MkdirTemp("", "btp-bench-backtest-kit-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(dir)
		o.workDir = dir
	}
	root := testenv.RepoRoot()
	benchDir := filepath.Join(root, "test", "bench", "backtest-kit")
	logf("installing the npm dependencies of the benchmark (cached)")
	if err := command(ctx, filepath.Join(root, "hack", "client-deps.sh"), "test/bench/backtest-kit").Run(); err != nil {
		return 0, fmt.Errorf("hack/client-deps.sh test/bench/backtest-kit: %w", err)
	}

	st, err := startStack(ctx, o.workDir, contains(o.backends, "operator"))
	if err != nil {
		return 0, err
	}
	defer st.close()

	var results []result
	for _, s := range o.scenarios {
		for _, b := range o.backends {
			r := runOne(ctx, o, st, benchDir, s, b)
			if b == "operator" && r.ran() && st.gatewayURL != "" { // a given gateway has its own MongoDB
				n := r.Outcome.Persistence.WriteRequests
				if d, err := measureFloor(ctx, st, n); err != nil {
					logf("%s: no raw-driver floor: %v", s, err)
				} else {
					r.FloorMs = float64(d.Microseconds()) / 1000
					logf("%s: raw-driver floor %.2f s (%d sequential upserts)", s, d.Seconds(), n)
				}
			}
			results = append(results, r)
			logf("%s", r.summary())
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
		}
	}
	rep := newReport(o, st, results)
	fmt.Print(rep.String())
	if o.jsonOut != "" {
		if err := rep.writeJSON(o.jsonOut); err != nil {
			return 0, err
		}
	}
	if failures := rep.failures(); len(failures) > 0 {
		fmt.Fprintln(os.Stderr, "\nFAILED:\n  "+strings.Join(failures, "\n  "))
		return 2, nil
	}
	return 0, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
