package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func startCluster(t *testing.T) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts six redis-server nodes (not in -short)")
	}
	c, err := StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestSlot(t *testing.T) {
	// Values from CLUSTER KEYSLOT.
	for key, want := range map[string]int{"foo": 12182, "bar": 5061} {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
}

// Three masters serve every slot; a key's master killed, its replica takes over
// with the replicated data; the old master rejoins as a replica.
func TestClusterFailover(t *testing.T) {
	c := startCluster(t)
	cl := c.Client()
	defer cl.Close()
	ctx := t.Context()
	const key = "{tenant}:k"
	for _, k := range []string{"a", "b", "{}x", "a{b}c", "{x", "x}{y}", key} {
		got, err := cl.ClusterKeySlot(ctx, k).Result()
		if err != nil || int(got) != Slot(k) {
			t.Fatalf("CLUSTER KEYSLOT %s = %d, %v; Slot = %d", k, got, err, Slot(k))
		}
	}
	mustSet(t, cl, key, "v1")
	if err := c.WaitReplicaInSync(key); err != nil {
		t.Fatal(err)
	}
	old, promoted, err := c.KillMasterOf(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := waitUntil(30*time.Second, "client follows the new master", func(ctx context.Context) error {
		return cl.Set(ctx, key+"2", "after", 0).Err()
	}); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, cl, key); got != "v1" {
		t.Fatalf("after failover to %s: %q", promoted, got)
	}
	if err := c.Restart(old); err != nil {
		t.Fatal(err)
	}
	// The cluster is healthy again before every node has seen the old master rejoin.
	if err := waitUntil(30*time.Second, "the old master rejoins as a replica", func(ctx context.Context) error {
		m, r, err := c.MasterOf(ctx, key)
		if err != nil || m != promoted || r != old {
			return fmt.Errorf("master %s, replica %s (%v); want %s, %s", m, r, err, promoted, old)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// The replica of a key's master cut off, a write acknowledged, the master killed:
// the replica that takes over lacks that write.
func TestClusterFailoverToLaggingReplica(t *testing.T) {
	c := startCluster(t)
	cl := c.Client()
	defer cl.Close()
	const early, late = "{tenant}:early", "{tenant}:late"
	mustSet(t, cl, early, "1")
	if err := c.WaitReplicaInSync(early); err != nil {
		t.Fatal(err)
	}
	if err := c.CutReplica(early); err != nil {
		t.Fatal(err)
	}
	mustSet(t, cl, late, "1")
	if _, _, err := c.KillMasterOf(early); err != nil {
		t.Fatal(err)
	}
	var exists int64
	if err := waitUntil(30*time.Second, "read on the new master", func(ctx context.Context) error {
		var err error
		exists, err = cl.Exists(ctx, late).Result()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if exists != 0 {
		t.Fatal("the promoted replica has the write it should have missed")
	}
	if got := mustGet(t, cl, early); got != "1" {
		t.Fatalf("early after failover: %q", got)
	}
}
