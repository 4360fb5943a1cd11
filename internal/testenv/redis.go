package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a redis-server started for a test suite, or one named by REDIS_URL.
type Redis struct {
	mu       sync.Mutex
	url      string
	addr     string
	port     int
	dir      string
	password string
	proc     *process
	external bool
}

// RedisOptions configure a started redis-server.
type RedisOptions struct {
	// Password, when set, is required by the server (requirepass).
	Password string
}

// StartRedis starts redis-server on a free loopback port (or uses REDIS_URL).
func StartRedis() (*Redis, error) { return StartRedisWith(RedisOptions{}) }

// StartRedisWith starts redis-server with options. REDIS_URL, when set, wins.
func StartRedisWith(opts RedisOptions) (*Redis, error) {
	if u := os.Getenv("REDIS_URL"); u != "" {
		parsed, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		return &Redis{url: u, addr: parsed.Host, external: true}, nil
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("redis-server not on PATH: run `make setup` (hack/tools.sh installs it)")
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "btp-redis-")
	if err != nil {
		return nil, err
	}
	r := &Redis{port: port, dir: dir, password: opts.Password, addr: "127.0.0.1:" + strconv.Itoa(port)}
	r.url = "redis://" + r.addr + "/0"
	if opts.Password != "" {
		r.url = "redis://:" + url.QueryEscape(opts.Password) + "@" + r.addr + "/0"
	}
	if err := r.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return r, nil
}

// URL is the redis:// URL of the server.
func (r *Redis) URL() string { return r.url }

// Addr is host:port of the server.
func (r *Redis) Addr() string { return r.addr }

// External reports whether the server was given by REDIS_URL (it cannot be stopped).
func (r *Redis) External() bool { return r.external }

// PID is the process id of the running redis-server (0 when external or stopped).
func (r *Redis) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil || r.proc.exited() {
		return 0
	}
	return r.proc.cmd.Process.Pid
}

// Start (re)starts the server on its port with no data.
func (r *Redis) Start() error {
	if r.external {
		return fmt.Errorf("redis at %s is external (REDIS_URL): cannot start it", r.addr)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil && !r.proc.exited() {
		return nil
	}
	args := []string{"redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--daemonize", "no", "--loglevel", "warning"}
	if r.password != "" {
		args = append(args, "--requirepass", r.password)
	}
	p, err := startProcess("redis-server", nil, args...)
	if err != nil {
		return err
	}
	r.proc = p
	return p.waitReady(10*time.Second, func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: r.addr, Password: r.password, MaxRetries: -1})
		defer c.Close()
		return c.Ping(ctx).Err()
	})
}

// Stop kills the server (SIGKILL), as a crash would.
func (r *Redis) Stop() error {
	if r.external {
		return fmt.Errorf("redis at %s is external (REDIS_URL): cannot stop it", r.addr)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.proc.kill()
	return nil
}

// Client returns a new client of the server; the caller closes it.
func (r *Redis) Client() *redis.Client {
	opts, err := redis.ParseURL(r.url)
	if err != nil {
		opts = &redis.Options{Addr: r.addr}
	}
	return redis.NewClient(opts)
}

// Close stops the server and removes its files.
func (r *Redis) Close() {
	if r == nil || r.external {
		return
	}
	_ = r.Stop()
	_ = os.RemoveAll(r.dir)
}
