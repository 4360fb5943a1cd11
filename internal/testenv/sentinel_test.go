package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func startSentinel(t *testing.T, opts SentinelOptions) *Sentinel {
	t.Helper()
	if testing.Short() {
		t.Skip("starts redis-server and redis-sentinel (not in -short)")
	}
	s, err := StartSentinel(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func mustGet(t *testing.T, c redis.Cmdable, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := c.Get(ctx, key).Result()
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return v
}

func mustSet(t *testing.T, c redis.Cmdable, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Set(ctx, key, value, 0).Err(); err != nil {
		t.Fatalf("set %s: %v", key, err)
	}
}

// A master killed: the sentinels promote the replica, which has the replicated data,
// and a Sentinel client follows it.
func TestSentinelFailover(t *testing.T) {
	s := startSentinel(t, SentinelOptions{Sentinels: 3})
	c := s.Client()
	defer c.Close()
	mustSet(t, c, "k", "v1")
	if err := s.WaitReplicaInSync(); err != nil {
		t.Fatal(err)
	}
	old, err := s.MasterAddr(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	promoted, err := s.KillMaster()
	if err != nil {
		t.Fatal(err)
	}
	if promoted == old {
		t.Fatalf("master still %s", old)
	}
	// The client may need a moment to learn of the switch; it retries within the wait.
	if err := waitUntil(30*time.Second, "client follows the new master", func(ctx context.Context) error {
		return c.Set(ctx, "k2", "after", 0).Err()
	}); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, c, "k"); got != "v1" {
		t.Fatalf("replicated key after failover: %q", got)
	}
	if err := s.RestartOldReplica(); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s.ReplicaClient(), "k2"); got != "after" {
		t.Fatalf("restarted node as a replica: k2=%q", got)
	}
}

// A replica cut off, a write acknowledged by the master, the master killed: the
// promoted replica lacks that write.
func TestSentinelFailoverToLaggingReplica(t *testing.T) {
	s := startSentinel(t, SentinelOptions{})
	master := s.MasterClient()
	defer master.Close()
	mustSet(t, master, "early", "1")
	if err := s.WaitReplicaInSync(); err != nil {
		t.Fatal(err)
	}
	if err := s.CutReplica(); err != nil {
		t.Fatal(err)
	}
	mustSet(t, master, "late", "1")
	if got := mustGet(t, master, "late"); got != "1" {
		t.Fatalf("late on the master: %q", got)
	}
	if _, err := s.KillMaster(); err != nil {
		t.Fatal(err)
	}
	promoted := s.MasterClient()
	defer promoted.Close()
	ctx := t.Context()
	if got := mustGet(t, promoted, "early"); got != "1" {
		t.Fatalf("early on the promoted replica: %q", got)
	}
	if n, err := promoted.Exists(ctx, "late").Result(); err != nil || n != 0 {
		t.Fatalf("the promoted replica has the write it should have missed (exists=%d, %v)", n, err)
	}
	c := s.Client()
	defer c.Close()
	if err := waitUntil(30*time.Second, "client follows the new master", func(ctx context.Context) error {
		return c.Set(ctx, "k", "v", 0).Err()
	}); err != nil {
		t.Fatal(err)
	}
}
