package persist

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// With a replica connected, every mark and update waits for it (WAIT in the same
// round trip), so a replica promoted after a write returned holds the write's entry.
// A write whose marker the replica does not acknowledge is not committed.
func TestWritesWaitForReplicas(t *testing.T) {
	master, replica := ownRedis(t), ownRedis(t)
	ctx := t.Context()
	radmin, madmin := replica.Client(), master.Client()
	defer radmin.Close()
	defer madmin.Close()
	host, port, _ := net.SplitHostPort(master.Addr())
	if err := radmin.ReplicaOf(ctx, host, port).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replica is online", 20*time.Second, func() bool {
		info, err := madmin.Info(ctx, "replication").Result()
		return err == nil && parseInfo(info).replicas == 1 && strings.Contains(info, "state=online")
	})
	f := newFixture(t, storeConfig{cache: true, redis: master, mutate: func(o *Options) { o.HealthInterval = 100 * time.Millisecond }})
	if n := f.store.cache.replicas.Load(); n != 1 {
		t.Fatalf("store learned %d replicas, want 1", n)
	}
	key := keyOf("signalId", "repl", "bucketName", "wait")
	read := Request{Kind: KindState, Op: OpRead, Key: key}
	write := func(n int) error {
		return f.doErr(Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(n))})
	}
	c := f.counted(func() {
		if err := write(1); err != nil {
			t.Fatal(err)
		}
	})
	if c.Redis != 2 {
		t.Fatalf("write with a replica cost %d Redis round trips, want 2 (WAIT rides with mark and update)", c.Redis)
	}
	rkey := f.store.keys.record(KindState, []any{"repl", "wait"})
	if v, err := radmin.Get(ctx, rkey).Result(); err != nil || !strings.HasPrefix(v, "1|") {
		t.Fatalf("replica holds %q (%v), want the acknowledged entry", short(v), err)
	}

	// The replica stops acknowledging (paused): writes fail and change nothing.
	if err := syscall.Kill(replica.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(replica.PID(), syscall.SIGCONT)
		}
	}
	defer resume()
	if err := write(2); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write the replica did not acknowledge: %v, want ErrUnavailable", err)
	}
	assertJSON(t, "a write that failed changed nothing", f.do(read).Value, stateValue(1))
	resume()
	eventually(t, "writes work again", 20*time.Second, func() bool { return write(3) == nil })
	assertJSON(t, "read after the replica came back", f.do(read).Value, stateValue(3))
	eventually(t, "the cache is back in use", 20*time.Second, func() bool { return f.store.CacheHealth().InUse })
	assertJSON(t, "read after recovery", f.do(read).Value, stateValue(3))
	c = f.counted(func() { assertJSON(t, "cached read", f.do(read).Value, stateValue(3)) })
	if c.Mongo != 0 {
		t.Fatalf("the aborted write's marker still blocks the cache (%d MongoDB commands)", c.Mongo)
	}
}
