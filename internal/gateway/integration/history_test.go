package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/backtestpersistence/operator/internal/gateway"
	"github.com/backtestpersistence/operator/internal/history"
	"github.com/backtestpersistence/operator/internal/infra"
	"github.com/backtestpersistence/operator/internal/testenv"
)

// The history test of the gateway: concurrent writers and readers over HTTP, with
// the real worker token, through two gateway replicas of one tenant. Each replica has
// its own Redis client; replica 1's goes through a fault proxy, so the schedules can
// cut one replica off Redis while the other keeps it. The recorded history must have
// no stale, non-monotonic, unknown or lost read (package history).

// startReplica starts a gateway in its own manager whose Redis connections go
// through dial. It joins the suite's leader election as a candidate that never
// takes over (it would consider the suite leader's lease valid for two hours), so
// it never writes status and cannot change which suite instance leads. It stops
// when the test ends.
func startReplica(t *testing.T, i int, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *instance {
	t.Helper()
	mgr, err := ctrl.NewManager(suite.cfg, ctrl.Options{
		Scheme:                  suite.scheme,
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  "0",
		LeaderElection:          true,
		LeaderElectionID:        "gateway-suite",
		LeaderElectionNamespace: "default",
		LeaseDuration:           ptr.To(2 * time.Hour),
		RenewDeadline:           ptr.To(90 * time.Minute),
		RetryPeriod:             ptr.To(time.Hour),
		Controller:              config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{mgr: mgr, url: "https://" + ln.Addr().String(), endpoint: fmt.Sprintf("https://history-%d.test.svc", i), done: make(chan struct{})}
	pools := infra.NewPools(infra.PoolOptions{ConnectTimeout: 2 * time.Second, RedisDialer: dial})
	in.gw, err = gateway.Setup(mgr, gateway.Config{
		Listener: ln, Certs: suite.certs, Endpoint: in.endpoint, Audiences: []string{audience},
		OpTimeout: 2 * time.Second, AuthCacheTTL: 2 * time.Second, OpenTimeout: 10 * time.Second,
		ShutdownGrace: 5 * time.Second, Pools: pools,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	go func() {
		defer close(in.done)
		_ = mgr.Start(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-in.done
		pools.Close()
	})
	return in
}

// historyCall sends one request bounded by ctx and returns its status and body.
func historyCall(ctx context.Context, g *instance, token, path, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url+path, bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := suite.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	return res.StatusCode, out, err
}

func TestHistoryThroughTwoReplicas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	tn, err := newTenant(ctx, "tenant-history", "store")
	t.Cleanup(func() {
		if tn != nil {
			_ = suite.k8s.Delete(context.Background(), tn.obj)
		}
		tn.close()
	})
	if err != nil {
		t.Fatal(err)
	}
	token, err := serviceAccountToken(ctx, tn.ns, "writer", "backtestpersistence-data-writer", audience)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := testenv.StartProxy(tn.redis.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	var d net.Dialer
	direct := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	viaProxy := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == tn.redis.Addr() {
			addr = proxy.Addr()
		}
		return d.DialContext(ctx, network, addr)
	}
	replicas := [2]*instance{startReplica(t, 0, direct), startReplica(t, 1, viaProxy)}
	path := opsPath(tn.ns, tn.name)
	eventually(t, 60*time.Second, func() error {
		for _, g := range replicas {
			if status, body, err := historyCall(ctx, g, token, path, `{"kind":"log","op":"read","key":{}}`); err != nil || status != 200 {
				return fmt.Errorf("%s: %d %s %v", g.url, status, body, err)
			}
		}
		return nil
	})

	run := 0
	workload := func() history.Workload {
		run++
		bucket := fmt.Sprintf("h%d", run) // every schedule has its own keys
		key := func(k string) string { return `{"signalId":"` + k + `","bucketName":"` + bucket + `"}` }
		return history.Workload{Writers: 8, KeysPerWriter: 4, Readers: 8, Sides: 2,
			Write: func(ctx context.Context, side int, k string, v int64) error {
				ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				status, body, err := historyCall(ctx, replicas[side], token, path,
					`{"kind":"state","op":"write","key":`+key(k)+`,"value":{"data":`+fmt.Sprint(v)+`},"when":1}`)
				if err == nil && status != 200 {
					err = fmt.Errorf("status %d: %s", status, body)
				}
				return err
			},
			Read: func(ctx context.Context, side int, k string) (int64, error) {
				ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				status, body, err := historyCall(ctx, replicas[side], token, path, `{"kind":"state","op":"read","key":`+key(k)+`}`)
				if err != nil {
					return 0, err
				}
				if status != 200 {
					return 0, fmt.Errorf("status %d: %s", status, body)
				}
				var res struct {
					Value *struct {
						Data int64 `json:"data"`
					} `json:"value"`
				}
				if err := json.Unmarshal(body, &res); err != nil {
					return 0, fmt.Errorf("%s: %w", body, err)
				}
				if res.Value == nil {
					return 0, nil
				}
				return res.Value.Data, nil
			},
		}
	}
	sleep := func(ctx context.Context, d time.Duration) {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	cut := func(mode func()) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			sleep(ctx, time.Second)
			mode()
			sleep(ctx, 4*time.Second)
			proxy.Pass()
			sleep(ctx, 1500*time.Millisecond)
			return ctx.Err()
		}
	}
	var table []string
	for _, sc := range []struct {
		name  string
		fault func(ctx context.Context) error
	}{
		{"no fault", func(ctx context.Context) error { sleep(ctx, 3*time.Second); return ctx.Err() }},
		{"replica 1 cut off Redis 4s (dropped)", cut(proxy.Drop)},
		{"replica 1 cut off Redis 4s (stalled)", cut(proxy.Stall)},
	} {
		t.Run(sc.name, func(t *testing.T) {
			table = append(table, history.Verify(ctx, t, sc.name, workload(), sc.fault))
		})
	}
	t.Log("history schedules (two gateway replicas over HTTP):\n" + strings.Join(table, "\n"))
}
