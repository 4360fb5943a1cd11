package persist

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/backtestpersistence/operator/internal/testenv"
)

// slotNode is one redis-server of a three-master Redis Cluster started for a test.
type slotNode struct {
	port int
	dir  string
	cmd  *exec.Cmd
}

func (n *slotNode) addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

func (n *slotNode) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(n.port), "--bind", "127.0.0.1",
		"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--save", "", "--appendonly", "no",
		"--dir", n.dir, "--daemonize", "no", "--loglevel", "warning")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1})
	defer c.Close()
	eventually(t, "node "+n.addr()+" answers", 10*time.Second, func() bool { return c.Ping(context.Background()).Err() == nil })
}

func (n *slotNode) stop() {
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Kill()
		_ = n.cmd.Wait()
		n.cmd = nil
	}
}

// startSlotCluster starts three cluster masters covering all slots.
func startSlotCluster(t *testing.T) []*slotNode {
	t.Helper()
	servers(t)
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli not on PATH: cannot create a Redis Cluster")
	}
	var nodes []*slotNode
	var addrs []string
	for i := 0; i < 3; i++ {
		port, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		n := &slotNode{port: port, dir: t.TempDir()}
		n.start(t)
		t.Cleanup(n.stop)
		nodes = append(nodes, n)
		addrs = append(addrs, n.addr())
	}
	out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n.addr()})
		eventually(t, "cluster state ok", 20*time.Second, func() bool {
			info, err := c.ClusterInfo(context.Background()).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
		_ = c.Close()
	}
	return nodes
}

// On Redis Cluster the store asks the master of its tenant's slot for the run id
// (MasterForKey), and a restart of that master is noticed: on the first new
// connection (the guard tells nodes apart) and by the periodic check.
func TestRunIDOnClusterClient(t *testing.T) {
	nodes := startSlotCluster(t)
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.addr())
	}
	guard := NewConnGuard(true)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, OnConnect: guard.OnConnect})
	guard.Attach(cc)
	t.Cleanup(func() { DetachConnGuard(cc); _ = cc.Close() })
	mc := newFixture(t, storeConfig{cache: false}) // a MongoDB database and client
	s, err := Open(Options{Database: mc.db, Redis: cc, KeyPrefix: randomName("btp:") + ":", HealthInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx := t.Context()
	if err := s.Init(ctx); err != nil {
		t.Fatal(err)
	}
	key := keyOf("signalId", "cluster", "bucketName", "runid")
	read := Request{Kind: KindState, Op: OpRead, Key: key}
	do := func(req Request) Result {
		t.Helper()
		res, err := s.Do(ctx, req)
		if err != nil {
			t.Fatalf("%s %s: %v", req.Kind, req.Op, err)
		}
		return res
	}
	do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(1))})
	do(read)
	if !s.CacheHealth().InUse {
		t.Fatalf("cache not in use on the cluster: %v", s.CacheHealth().LastErr)
	}
	master, err := cc.MasterForKey(ctx, s.keys.epoch())
	if err != nil {
		t.Fatal(err)
	}
	want := parseInfo(master.Info(ctx, "server").Val()).runID
	srv, err := s.cache.info(ctx)
	if err != nil || srv.runID != want {
		t.Fatalf("store's run id %q (%v), want the slot master's %q", srv.runID, err, want)
	}
	s.cache.mu.Lock()
	known := s.cache.runID
	s.cache.mu.Unlock()
	if known != want {
		t.Fatalf("store learned run id %q at start, want %q", known, want)
	}
	if v, err := master.Get(ctx, s.keys.record(KindState, []any{"cluster", "runid"})).Result(); err != nil || !strings.HasPrefix(v, "1|") {
		t.Fatalf("entry on the slot's master: %q, %v", short(v), err)
	}

	// Restart the slot's master (it keeps its slots, loses its data, gets a new run id).
	var victim *slotNode
	for _, n := range nodes {
		if n.addr() == master.Options().Addr {
			victim = n
		}
	}
	if victim == nil {
		t.Fatalf("no node at %s", master.Options().Addr)
	}
	victim.stop()
	_ = os.Remove(filepath.Join(victim.dir, "dump.rdb"))
	victim.start(t)
	eventually(t, "the store notices the new run id of its slot's master", 20*time.Second, func() bool {
		_, _ = s.Do(ctx, read) // opens a new connection to the restarted node
		return !s.CacheHealth().InUse
	})
	assertJSON(t, "read after the restart", do(read).Value, stateValue(1))
	eventually(t, "the cache is back in use", 20*time.Second, func() bool {
		_, _ = s.Do(ctx, read)
		return s.CacheHealth().InUse
	})
	do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(2))})
	assertJSON(t, "read after a write", do(read).Value, stateValue(2))
	assertJSON(t, "cached read", do(read).Value, stateValue(2))
	if !s.CacheHealth().InUse {
		t.Fatalf("cache not in use after recovery: %v", s.CacheHealth().LastErr)
	}
}
