package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelOptions configure a started Sentinel set.
type SentinelOptions struct {
	// Sentinels is the number of redis-sentinel processes (default 1); the quorum is
	// a majority of them.
	Sentinels int
	// MasterName is the monitored master's name (default "btp").
	MasterName string
}

// Sentinel is a Redis Sentinel set on loopback ports: a redis-server master, one
// redis-server replica and redis-sentinel processes monitoring them with fast
// failover (a master is down after 1 s without answers).
type Sentinel struct {
	name      string
	dir       string
	data      [2]*redisNode
	sentinels []*redisNode

	mu     sync.Mutex
	master int // index in data of the master as the harness last saw it
}

// StartSentinel starts the master, the replica and the sentinels, and returns once
// the replica is in sync and every sentinel sees it (and the other sentinels).
func StartSentinel(opts SentinelOptions) (*Sentinel, error) {
	if opts.Sentinels <= 0 {
		opts.Sentinels = 1
	}
	if opts.MasterName == "" {
		opts.MasterName = "btp"
	}
	dir, err := os.MkdirTemp("", "btp-sentinel-")
	if err != nil {
		return nil, err
	}
	s := &Sentinel{name: opts.MasterName, dir: dir}
	if err := s.start(opts.Sentinels); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Sentinel) start(sentinels int) error {
	var err error
	if s.data[0], err = newRedisNode("data-0", "redis-server", s.dir, replicationConf()...); err != nil {
		return err
	}
	if err := s.data[0].start(); err != nil {
		return err
	}
	if s.data[1], err = newRedisNode("data-1", "redis-server", s.dir,
		append(replicationConf(), "replicaof "+strings.Replace(s.data[0].addr(), ":", " ", 1))...); err != nil {
		return err
	}
	if err := s.data[1].start(); err != nil {
		return err
	}
	if err := waitReplicaInSync(s.data[0], s.data[1]); err != nil {
		return err
	}
	quorum := sentinels/2 + 1
	for i := range sentinels {
		n, err := newRedisNode("sentinel-"+strconv.Itoa(i), "redis-sentinel", s.dir,
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", s.name, s.data[0].port, quorum),
			"sentinel down-after-milliseconds "+s.name+" 1000",
			"sentinel failover-timeout "+s.name+" 3000",
			"sentinel parallel-syncs "+s.name+" 1")
		if err != nil {
			return err
		}
		s.sentinels = append(s.sentinels, n)
		if err := n.start(); err != nil {
			return err
		}
	}
	for _, n := range s.sentinels {
		if err := waitUntil(30*time.Second, n.name+" sees the set", func(ctx context.Context) error {
			c := n.client()
			defer c.Close()
			m, err := c.Do(ctx, "SENTINEL", "MASTER", s.name).Result()
			if err != nil {
				return err
			}
			f := sentinelFields(m)
			if f["num-slaves"] != "1" || f["num-other-sentinels"] != strconv.Itoa(sentinels-1) {
				return fmt.Errorf("replicas %s, other sentinels %s", f["num-slaves"], f["num-other-sentinels"])
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// sentinelFields turns a SENTINEL MASTER reply (a flat list or a map) into a map.
func sentinelFields(reply any) map[string]string {
	out := map[string]string{}
	switch v := reply.(type) {
	case []any:
		for i := 0; i+1 < len(v); i += 2 {
			out[fmt.Sprint(v[i])] = fmt.Sprint(v[i+1])
		}
	case map[any]any:
		for k, val := range v {
			out[fmt.Sprint(k)] = fmt.Sprint(val)
		}
	}
	return out
}

// MasterName is the name the sentinels monitor the master under.
func (s *Sentinel) MasterName() string { return s.name }

// SentinelAddrs are host:port of the sentinels.
func (s *Sentinel) SentinelAddrs() []string {
	out := make([]string, len(s.sentinels))
	for i, n := range s.sentinels {
		out[i] = n.addr()
	}
	return out
}

// URL is the Sentinel URL in the form the operator parses:
// redis://<sentinel>/0?master_name=<name>[&addr=<sentinel>...].
func (s *Sentinel) URL() string {
	addrs := s.SentinelAddrs()
	u := "redis://" + addrs[0] + "/0?master_name=" + s.name
	for _, a := range addrs[1:] {
		u += "&addr=" + a
	}
	return u
}

// Client returns a Sentinel-aware client following the master; the caller closes it.
func (s *Sentinel) Client() *redis.Client {
	return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.name, SentinelAddrs: s.SentinelAddrs()})
}

// MasterAddr is the master's address as the first answering sentinel reports it.
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	var errs []error
	for _, n := range s.sentinels {
		if !n.running() {
			continue
		}
		c := n.client()
		addr, err := c.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.name).StringSlice()
		c.Close()
		if err == nil && len(addr) == 2 {
			return addr[0] + ":" + addr[1], nil
		}
		errs = append(errs, err)
	}
	return "", errors.Join(append(errs, errors.New("no sentinel answered"))...)
}

// masterNode returns the data node that is master and the other one.
func (s *Sentinel) masterNode() (master, replica *redisNode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data[s.master], s.data[1-s.master]
}

// MasterClient is a client of the current master node only (not Sentinel-aware).
func (s *Sentinel) MasterClient() *redis.Client {
	m, _ := s.masterNode()
	return m.client()
}

// ReplicaClient is a client of the current replica node only.
func (s *Sentinel) ReplicaClient() *redis.Client {
	_, r := s.masterNode()
	return r.client()
}

// WaitReplicaInSync waits until the replica has every write the master has.
func (s *Sentinel) WaitReplicaInSync() error {
	m, r := s.masterNode()
	return waitReplicaInSync(m, r)
}

// CutReplica cuts the replica off the master (see replicationConf): the master keeps
// serving, the replica keeps its data but receives no later write. The replica stays
// eligible for promotion, so KillMaster after CutReplica fails over to a replica
// that missed the writes made in between.
func (s *Sentinel) CutReplica() error {
	m, r := s.masterNode()
	return cutReplica(m, r)
}

// KillMaster kills the master (SIGKILL) and waits until the sentinels have promoted
// the replica and it accepts writes. It returns the new master's address.
func (s *Sentinel) KillMaster() (string, error) {
	old, replica := s.masterNode()
	old.kill()
	if err := waitUntil(60*time.Second, "sentinel promotes "+replica.name, func(ctx context.Context) error {
		addr, err := s.MasterAddr(ctx)
		if err != nil {
			return err
		}
		if addr != replica.addr() {
			return fmt.Errorf("master is %s", addr)
		}
		info, err := replica.info(ctx, "replication")
		if err != nil {
			return err
		}
		if info["role"] != "master" {
			return fmt.Errorf("%s has role %s", replica.name, info["role"])
		}
		return nil
	}); err != nil {
		return "", err
	}
	s.mu.Lock()
	s.master = 1 - s.master
	s.mu.Unlock()
	return replica.addr(), nil
}

// RestartOldReplica starts the node that was killed by KillMaster again (empty) and
// waits until the sentinels made it a replica of the new master and it is in sync.
func (s *Sentinel) RestartOldReplica() error {
	m, r := s.masterNode()
	if r.running() {
		return nil
	}
	if err := r.start(); err != nil {
		return err
	}
	if err := restoreReplication(m); err != nil {
		return err
	}
	// Sentinel turns a returning old master into a replica only once it has seen it
	// up again, which can take longer than the sync wait: do what it would do.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc := r.client()
	defer rc.Close()
	host, port, _ := net.SplitHostPort(m.addr())
	if err := rc.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		return fmt.Errorf("%s: replicaof %s: %w", r.name, m.addr(), err)
	}
	return waitReplicaInSync(m, r)
}

// Close stops every process and removes the files.
func (s *Sentinel) Close() {
	if s == nil {
		return
	}
	for _, n := range s.sentinels {
		n.kill()
	}
	for _, n := range s.data {
		if n != nil {
			n.kill()
		}
	}
	_ = os.RemoveAll(s.dir)
}
