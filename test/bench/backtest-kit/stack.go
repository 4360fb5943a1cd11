package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/backtestpersistence/operator/internal/testenv"
)

// The sample tenant hack/localstack creates.
const (
	tenantNamespace = "backtest"
	tenantName      = "sample"
)

// stack is the servers every backend shares: FerretDB on PostgreSQL and one
// redis-server (database 0 for @backtest-kit/mongo, 1 for the gateway), and, for this
// project's backend, the local stack (control plane, operator, sample tenant) started
// by hack/localstack on those servers.
//
// Servers can be given instead: MONGODB_URI and REDIS_URL (as for the integration
// tests; database 0 of that Redis is flushed before each @backtest-kit/mongo run), and
// BACKTEST_PERSISTENCE_URL with _NAMESPACE, _NAME and _TOKEN or _TOKEN_FILE for a
// running gateway (the client reads them from the environment).
type stack struct {
	mongo      *testenv.Mongo
	redis      *testenv.Redis
	gatewayURL string
	tokenFile  string
	localstack *exec.Cmd
	exited     chan struct{}
}

func startStack(ctx context.Context, workDir string, withOperator bool) (*stack, error) {
	logf("starting FerretDB (PostgreSQL) and redis-server")
	mongo, err := testenv.StartMongo(testenv.MongoOptions{Backend: testenv.BackendPostgreSQL})
	if err != nil {
		return nil, fmt.Errorf("start FerretDB: %w", err)
	}
	st := &stack{mongo: mongo}
	if st.redis, err = testenv.StartRedis(); err != nil {
		st.close()
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	if !withOperator || os.Getenv("BACKTEST_PERSISTENCE_URL") != "" {
		return st, nil
	}
	if err := st.startOperator(ctx, workDir); err != nil {
		st.close()
		return nil, err
	}
	return st, nil
}

// startOperator builds the manager and hack/localstack from this tree and runs the
// local stack against the shared servers until the sample tenant's token is written.
func (st *stack) startOperator(ctx context.Context, workDir string) error {
	bin := filepath.Join(workDir, "bin")
	logf("building the manager and hack/localstack")
	for out, pkg := range map[string]string{"manager": "./cmd", "localstack": "./hack/localstack"} {
		build := command(ctx, "go", "build", "-o", filepath.Join(bin, out), pkg)
		build.Dir = testenv.RepoRoot()
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", pkg, err)
		}
	}
	port, err := testenv.FreePort()
	if err != nil {
		return err
	}
	state := filepath.Join(workDir, "localstack")
	logPath := filepath.Join(workDir, "localstack.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	redisURL, err := withDB(st.redis.URL(), 1)
	if err != nil {
		return err
	}
	logf("starting the local stack (log: %s)", logPath)
	cmd := exec.Command(filepath.Join(bin, "localstack"), "--state-dir="+state, "--gateway-port="+strconv.Itoa(port),
		"--manager="+filepath.Join(bin, "manager"), "--namespace="+tenantNamespace, "--name="+tenantName)
	cmd.Env = append(os.Environ(), "MONGODB_URI="+st.mongo.URI(), "REDIS_URL="+redisURL)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start hack/localstack: %w", err)
	}
	st.localstack, st.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(st.exited) }()
	st.gatewayURL = "http://127.0.0.1:" + strconv.Itoa(port)
	st.tokenFile = filepath.Join(state, "token")
	deadline := time.Now().Add(4 * time.Minute)
	for {
		if _, err := os.Stat(st.tokenFile); err == nil {
			return nil
		}
		select {
		case <-st.exited:
			return fmt.Errorf("hack/localstack exited before the tenant was Ready (see %s)", logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the sample tenant was not Ready within 4 minutes (see %s)", logPath)
		}
	}
}

// mongoURI is a connection string of the shared FerretDB naming database db.
func (st *stack) mongoURI(db string) string {
	u, err := url.Parse(st.mongo.URI())
	if err != nil {
		return st.mongo.URI() + db
	}
	u.Path = "/" + db
	return u.String()
}

func (st *stack) close() {
	if st.localstack != nil {
		// localstack stops the operator and the control plane on SIGINT.
		_ = st.localstack.Process.Signal(os.Interrupt)
		select {
		case <-st.exited:
		case <-time.After(30 * time.Second):
			_ = st.localstack.Process.Kill()
			<-st.exited
		}
	}
	st.redis.Close()
	st.mongo.Close()
}

// withDB returns a redis:// URL selecting database n.
func withDB(raw string, n int) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("redis URL %q: %w", raw, err)
	}
	u.Path = "/" + strconv.Itoa(n)
	return u.String(), nil
}

// command is exec.CommandContext with the benchmark's output going to stderr.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd
}
