package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisNode is one redis-server or redis-sentinel of a Sentinel or Cluster set, on
// its own loopback port and folder, started from a config file it rewrites on each
// start (Sentinel and Cluster both keep state in their files).
type redisNode struct {
	name   string
	binary string // redis-server or redis-sentinel
	port   int
	dir    string
	conf   []string // config lines

	mu   sync.Mutex
	proc *process
}

func newRedisNode(name, binary, dir string, conf ...string) (*redisNode, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	base := []string{"port " + strconv.Itoa(port), "bind 127.0.0.1", "dir " + d,
		"daemonize no", "loglevel warning", "protected-mode no"}
	return &redisNode{name: name, binary: binary, port: port, dir: d, conf: append(base, conf...)}, nil
}

func (n *redisNode) addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

// client is a plain client of this node only, for administration.
func (n *redisNode) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1, DialTimeout: 2 * time.Second,
		ReadTimeout: 5 * time.Second, DialerRetries: 1})
}

// writeConf writes the config file once: later starts keep what the server rewrote
// into it (Sentinel's view of masters, a replica's replicaof).
func (n *redisNode) writeConf() (string, error) {
	path := filepath.Join(n.dir, "node.conf")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	return path, os.WriteFile(path, []byte(strings.Join(n.conf, "\n")+"\n"), 0o644)
}

// start (re)starts the node and waits until it answers PING.
func (n *redisNode) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.exited() {
		return nil
	}
	bin, err := exec.LookPath(n.binary)
	if err != nil {
		return fmt.Errorf("%s not on PATH: run `make setup` (hack/tools.sh installs it)", n.binary)
	}
	conf, err := n.writeConf()
	if err != nil {
		return err
	}
	p, err := startProcess(n.name, nil, bin, conf)
	if err != nil {
		return err
	}
	n.proc = p
	return p.waitReady(10*time.Second, func(ctx context.Context) error {
		c := n.client()
		defer c.Close()
		return c.Ping(ctx).Err()
	})
}

// kill ends the node with SIGKILL, as a crash would.
func (n *redisNode) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.proc.kill()
}

// signal sends sig (SIGSTOP, SIGCONT) to the running node.
func (n *redisNode) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || n.proc.exited() {
		return fmt.Errorf("%s is not running", n.name)
	}
	return syscall.Kill(n.proc.cmd.Process.Pid, sig)
}

func (n *redisNode) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !n.proc.exited()
}

// info returns one INFO section as a map.
func (n *redisNode) info(ctx context.Context, section string) (map[string]string, error) {
	c := n.client()
	defer c.Close()
	raw, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	return parseInfo(raw), nil
}

func parseInfo(raw string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(raw, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// waitUntil polls cond until it returns nil or timeout passes.
func waitUntil(timeout time.Duration, what string, cond func(ctx context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := cond(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %v: %w", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
