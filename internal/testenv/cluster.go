package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster on loopback ports: six redis-server nodes in cluster
// mode, three masters covering the 16384 slots and one replica each, with a short
// node timeout (1 s) so a dead master's replica takes over within seconds.
type Cluster struct {
	dir   string
	nodes []*redisNode
}

// StartCluster starts the six nodes, creates the cluster with redis-cli and returns
// once every node reports cluster_state:ok and knows every other node.
func StartCluster() (*Cluster, error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("redis-cli not on PATH: run `make setup` (hack/tools.sh installs it)")
	}
	dir, err := os.MkdirTemp("", "btp-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir}
	conf := append(replicationConf(),
		"cluster-enabled yes",
		"cluster-config-file nodes.conf",
		"cluster-node-timeout 1000",
		// A replica that lost its master link a while ago still takes over: the
		// lagging-replica failover depends on it.
		"cluster-replica-validity-factor 0",
		"cluster-allow-replica-migration no")
	args := []string{"--cluster", "create"}
	for i := range 6 {
		n, err := newRedisNode("node-"+strconv.Itoa(i), "redis-server", dir, conf...)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.nodes = append(c.nodes, n)
		if err := n.start(); err != nil {
			c.Close()
			return nil, err
		}
		args = append(args, n.addr())
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis-cli --cluster create: %w: %s", err, out)
	}
	if err := c.WaitHealthy(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Addrs are host:port of every node.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.addr()
	}
	return out
}

// URL is the Cluster URL in the form the operator parses:
// redis://<node>?addr=<node>&addr=<node>... (every node as a seed).
func (c *Cluster) URL() string {
	addrs := c.Addrs()
	u := "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
	return u
}

// Client returns a cluster client seeded with every node; the caller closes it.
// It reloads the slot map every 500 ms: go-redis reloads it only on MOVED replies or
// every ClusterStateReloadInterval (60 s by default), so after a failover a client
// with default options can keep dialing the dead master for up to a minute.
func (c *Cluster) Client() *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: 500 * time.Millisecond})
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr, masterID string
	master, failed     bool
	slots              [][2]int
}

func (n clusterNode) serves(slot int) bool {
	for _, r := range n.slots {
		if slot >= r[0] && slot <= r[1] {
			return true
		}
	}
	return false
}

func parseClusterNodes(raw string) []clusterNode {
	var out []clusterNode
	for _, line := range strings.Split(strings.TrimSpace(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		n := clusterNode{id: f[0], addr: addr, masterID: f[3],
			master: strings.Contains(f[2], "master"), failed: strings.Contains(f[2], "fail")}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") { // a slot being migrated
				continue
			}
			lo, hi, found := strings.Cut(s, "-")
			a, _ := strconv.Atoi(lo)
			b := a
			if found {
				b, _ = strconv.Atoi(hi)
			}
			n.slots = append(n.slots, [2]int{a, b})
		}
		out = append(out, n)
	}
	return out
}

// view returns CLUSTER NODES as a running node sees it.
func (c *Cluster) view(ctx context.Context) ([]clusterNode, error) {
	var last error
	for _, n := range c.nodes {
		if !n.running() {
			continue
		}
		cl := n.client()
		raw, err := cl.ClusterNodes(ctx).Result()
		cl.Close()
		if err == nil {
			return parseClusterNodes(raw), nil
		}
		last = err
	}
	return nil, fmt.Errorf("no node answered CLUSTER NODES: %v", last)
}

func (c *Cluster) node(addr string) *redisNode {
	for _, n := range c.nodes {
		if n.addr() == addr {
			return n
		}
	}
	return nil
}

// Slot is the hash slot of key.
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % 16384)
}

// crc16 is CRC-16/XMODEM, Redis Cluster's key hash.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// MasterOf returns the address of the master serving key's slot and of its replica.
func (c *Cluster) MasterOf(ctx context.Context, key string) (master, replica string, err error) {
	nodes, err := c.view(ctx)
	if err != nil {
		return "", "", err
	}
	slot := Slot(key)
	var m *clusterNode
	for i := range nodes {
		if nodes[i].master && !nodes[i].failed && nodes[i].serves(slot) {
			m = &nodes[i]
		}
	}
	if m == nil {
		return "", "", fmt.Errorf("no master serves slot %d", slot)
	}
	for _, n := range nodes {
		if n.masterID == m.id && !n.failed {
			replica = n.addr
		}
	}
	return m.addr, replica, nil
}

// WaitHealthy waits until every running node reports cluster_state:ok, knows every
// node and sees every slot served by a master that is up.
func (c *Cluster) WaitHealthy() error {
	return waitUntil(60*time.Second, "cluster healthy", func(ctx context.Context) error {
		for _, n := range c.nodes {
			if !n.running() {
				continue
			}
			cl := n.client()
			raw, err := cl.ClusterInfo(ctx).Result()
			cl.Close()
			if err != nil {
				return err
			}
			info := parseInfo(raw)
			if info["cluster_state"] != "ok" || info["cluster_known_nodes"] != strconv.Itoa(len(c.nodes)) {
				return fmt.Errorf("%s: state %s, known nodes %s", n.name, info["cluster_state"], info["cluster_known_nodes"])
			}
		}
		nodes, err := c.view(ctx)
		if err != nil {
			return err
		}
		covered := 0
		for _, n := range nodes {
			if n.master && !n.failed && c.node(n.addr).running() {
				for _, r := range n.slots {
					covered += r[1] - r[0] + 1
				}
			}
		}
		if covered != 16384 {
			return fmt.Errorf("%d of 16384 slots served by live masters", covered)
		}
		// With every node up, every master has its replica again (after creation,
		// or after a restarted node rejoined): tests cut and fail over to replicas.
		running := 0
		for _, n := range c.nodes {
			if n.running() {
				running++
			}
		}
		if running < len(c.nodes) {
			return nil
		}
		for _, m := range nodes {
			if !m.master || m.failed || len(m.slots) == 0 {
				continue
			}
			attached := false
			for _, r := range nodes {
				attached = attached || (r.masterID == m.id && !r.failed)
			}
			if !attached {
				return fmt.Errorf("master %s has no replica yet", m.addr)
			}
		}
		return nil
	})
}

// WaitReplicaInSync waits until the replica of key's master has all its writes.
func (c *Cluster) WaitReplicaInSync(key string) error {
	m, r, err := c.pairOf(key)
	if err != nil {
		return err
	}
	return waitReplicaInSync(m, r)
}

// pairOf returns the master of key's slot and its replica.
func (c *Cluster) pairOf(key string) (master, replica *redisNode, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, r, err := c.MasterOf(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	if r == "" {
		return nil, nil, fmt.Errorf("master %s has no replica", m)
	}
	return c.node(m), c.node(r), nil
}

// CutReplica cuts the replica of key's master off it (see replicationConf): the
// master keeps serving, the replica receives no later write but stays eligible to
// take over, so KillMasterOf then fails over to a replica that missed those writes.
func (c *Cluster) CutReplica(key string) error {
	m, r, err := c.pairOf(key)
	if err != nil {
		return err
	}
	return cutReplica(m, r)
}

// KillMasterOf kills the master serving key's slot (SIGKILL) and waits until its
// replica has taken over and the cluster is healthy again. It returns the old and
// the new master's addresses.
func (c *Cluster) KillMasterOf(key string) (old, promoted string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	old, replica, err := c.MasterOf(ctx, key)
	if err != nil {
		return "", "", err
	}
	if replica == "" {
		return "", "", fmt.Errorf("master %s has no replica to take over", old)
	}
	c.node(old).kill()
	err = waitUntil(60*time.Second, "replica "+replica+" takes over slot "+strconv.Itoa(Slot(key)), func(ctx context.Context) error {
		m, _, err := c.MasterOf(ctx, key)
		if err != nil {
			return err
		}
		if m != replica {
			return fmt.Errorf("master of the slot is %s", m)
		}
		return nil
	})
	if err != nil {
		return old, "", err
	}
	return old, replica, c.WaitHealthy()
}

// Restart starts a killed node again (empty, with its cluster config): a master
// that was replaced rejoins as a replica of its successor.
func (c *Cluster) Restart(addr string) error {
	n := c.node(addr)
	if n == nil {
		return fmt.Errorf("no node %s", addr)
	}
	if err := n.start(); err != nil {
		return err
	}
	return c.WaitHealthy()
}

// Close stops every node and removes the files.
func (c *Cluster) Close() {
	if c == nil {
		return
	}
	for _, n := range c.nodes {
		n.kill()
	}
	_ = os.RemoveAll(c.dir)
}
