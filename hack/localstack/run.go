package main

import (
	"bytes"
	"context"
	"fmt"

	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/backtestpersistence/operator/internal/testenv"
)

// tokenAudience is the audience the gateway requires, as the chart and the kustomize
// manifests configure it: the worker token is minted for it.
const tokenAudience = "backtest-persistence"

func run(ctx context.Context, o options) error {
	if err := os.MkdirAll(o.stateDir, 0o755); err != nil {
		return err
	}
	root := testenv.RepoRoot()
	kubectl, err := testenv.Tool("kubectl")
	if err != nil {
		return err
	}
	manager := o.manager
	if manager == "" {
		if manager, err = testenv.Tool("manager"); err != nil {
			return err
		}
	}

	kubeconfig := o.kubeconfig
	if kubeconfig == "" {
		logf("starting the local control plane (kube-apiserver, etcd)")
		env := testenv.Envtest()
		cfg, err := env.Start()
		if err != nil {
			return fmt.Errorf("start control plane: %w", err)
		}
		defer func() { logf("stopping the control plane"); _ = env.Stop() }()
		user, err := env.AddUser(adminUser(), cfg)
		if err != nil {
			return fmt.Errorf("admin user: %w", err)
		}
		raw, err := user.KubeConfig()
		if err != nil {
			return err
		}
		kubeconfig = filepath.Join(o.stateDir, "kubeconfig")
		if err := os.WriteFile(kubeconfig, raw, 0o600); err != nil {
			return err
		}
	} else {
		logf("using the cluster of %s; installing the CRD", kubeconfig)
		if err := kubectlRun(ctx, kubectl, kubeconfig, nil, "apply", "--server-side", "-f", filepath.Join(root, "config", "crd", "bases")); err != nil {
			return err
		}
	}

	mopts := mongoOptions(o.backend, o.sqlitePragmas)
	logf("starting FerretDB (%s) and redis-server", backendName(mopts.Backend))
	mongo, err := testenv.StartMongo(mopts)
	if err != nil {
		return err
	}
	defer mongo.Close()
	redis, err := testenv.StartRedis()
	if err != nil {
		return err
	}
	defer redis.Close()

	gatewayPort := o.gatewayPort
	if gatewayPort == 0 {
		if gatewayPort, err = testenv.FreePort(); err != nil {
			return err
		}
	}
	probePort, err := testenv.FreePort()
	if err != nil {
		return err
	}
	endpoint := "http://127.0.0.1:" + strconv.Itoa(gatewayPort)
	logPath := filepath.Join(o.stateDir, "manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	logf("starting the operator (log: %s)", logPath)
	cmd := exec.Command(manager,
		"--kubeconfig="+kubeconfig,
		"--leader-elect=false",
		"--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(probePort),
		"--gateway-bind-address=127.0.0.1:"+strconv.Itoa(gatewayPort),
		"--gateway-insecure",
		"--gateway-advertise-url="+endpoint,
		"--gateway-token-audiences="+tokenAudience,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start manager: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		logf("stopping the operator")
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	if err := waitHTTP(ctx, "http://127.0.0.1:"+strconv.Itoa(probePort)+"/readyz", exited); err != nil {
		return fmt.Errorf("operator not ready (see %s): %w", logPath, err)
	}

	logf("creating the sample tenant %s/%s", o.namespace, o.name)
	manifest, err := sampleManifest(o, mongo.URI(), redis.URL())
	if err != nil {
		return err
	}
	if err := kubectlRun(ctx, kubectl, kubeconfig, manifest, "apply", "--server-side", "-f", "-"); err != nil {
		return err
	}
	if err := kubectlRun(ctx, kubectl, kubeconfig, nil, "apply", "--server-side", "-f", filepath.Join(root, "config", "rbac", "data_writer_role.yaml")); err != nil {
		return err
	}
	if err := kubectlRun(ctx, kubectl, kubeconfig, nil, "-n", o.namespace, "wait", "--for=condition=Ready", "--timeout=120s", "backtestpersistence/"+o.name); err != nil {
		return fmt.Errorf("sample tenant not Ready (see %s): %w", logPath, err)
	}
	token, err := kubectlOutput(ctx, kubectl, kubeconfig, "-n", o.namespace, "create", "token", "worker", "--audience="+tokenAudience, "--duration=24h")
	if err != nil {
		return err
	}
	tokenPath := filepath.Join(o.stateDir, "token")
	if err := os.WriteFile(tokenPath, []byte(strings.TrimSpace(token)), 0o600); err != nil {
		return err
	}
	_ = kubectlRun(ctx, kubectl, kubeconfig, nil, "get", "btp", "-A")

	fmt.Printf(`
The operator is running.
  kubeconfig:  %s   (export KUBECONFIG=%s; %s get btp -A)
  gateway:     %s
  tenant:      namespace=%s name=%s
  token file:  %s   (service account %s/worker, audience %s, 24h)
  MongoDB:     %s   (FerretDB on %s)
  Redis:       %s
A worker (examples/backtest-kit-quickstart):
  BACKTEST_PERSISTENCE_URL=%s BACKTEST_PERSISTENCE_NAMESPACE=%s BACKTEST_PERSISTENCE_NAME=%s BACKTEST_PERSISTENCE_TOKEN_FILE=%s npm start
Press Ctrl-C to stop everything.
`, kubeconfig, kubeconfig, kubectl, endpoint, o.namespace, o.name, tokenPath, o.namespace, tokenAudience, mongo.URI(), backendName(mongo.Backend()), redis.URL(),
		endpoint, o.namespace, o.name, tokenPath)

	if o.exitWhenReady {
		return nil
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-exited:
		return fmt.Errorf("the operator exited (see %s): %v", logPath, err)
	}
}

func waitHTTP(ctx context.Context, url string, exited <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 within 60s", url)
}

func kubectlRun(ctx context.Context, kubectl, kubeconfig string, stdin []byte, args ...string) error {
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func kubectlOutput(ctx context.Context, kubectl, kubeconfig string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig=" + kubeconfig}, args...)...).Output()
	if err != nil {
		return "", fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

var sampleTemplate = template.Must(template.New("sample").Parse(`apiVersion: v1
kind: Namespace
metadata:
  name: {{.Namespace}}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{.Name}}-mongodb
  namespace: {{.Namespace}}
stringData:
  uri: {{printf "%q" .MongoURI}}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{.Name}}-redis
  namespace: {{.Namespace}}
stringData:
  url: {{printf "%q" .RedisURL}}
---
apiVersion: persistence.backtestkit.dev/v1
kind: BacktestPersistence
metadata:
  name: {{.Name}}
  namespace: {{.Namespace}}
spec:
  mongo:
    uriSecretRef: {name: {{.Name}}-mongodb, key: uri}
  redis:
    urlSecretRef: {name: {{.Name}}-redis, key: url}
  deletionPolicy: Retain
  healthCheckInterval: 30s
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: worker
  namespace: {{.Namespace}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: worker-data-writer
  namespace: {{.Namespace}}
subjects:
- kind: ServiceAccount
  name: worker
  namespace: {{.Namespace}}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: backtestpersistence-data-writer
`))

func sampleManifest(o options, mongoURI, redisURL string) ([]byte, error) {
	var b bytes.Buffer
	err := sampleTemplate.Execute(&b, map[string]string{
		"Namespace": o.namespace, "Name": o.name, "MongoURI": mongoURI, "RedisURL": redisURL,
	})
	return b.Bytes(), err
}
