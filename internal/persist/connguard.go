package persist

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// A ConnGuard checks Redis's run id on every new connection of a client, so a
// restart (from an old snapshot) or a failover is noticed before the first command
// on the new server is answered, rather than at the next health check. When the run
// id changed, every cache on the client is marked suspect (recovery rotates their
// epochs) before the connection carries its first command. A read that found the
// cache usable just before re-checks the state after its lookup (see readRecord)
// and does not trust the answer, so no read is served from the new server's old
// data. The connection itself is not failed: other users of the shared client (the
// reconciler's probes) must not see an error for it.
//
// Install it where the client is created:
//
//	g := persist.NewConnGuard(perNode)
//	opts.OnConnect = g.OnConnect
//	c := redis.NewUniversalClient(opts)
//	g.Attach(c) // and persist.DetachConnGuard(c) before c.Close()
type ConnGuard struct {
	perNode bool // Redis Cluster: one run id per node address

	mu     sync.Mutex
	runIDs map[string]string // node ("" unless perNode) -> run id last accepted
	caches map[*cache]struct{}
}

// NewConnGuard returns a guard; perNode is for cluster clients, whose connections go
// to several nodes, each with its own run id (a Sentinel client is not per node: a
// new master is a change).
func NewConnGuard(perNode bool) *ConnGuard {
	return &ConnGuard{perNode: perNode, runIDs: map[string]string{}, caches: map[*cache]struct{}{}}
}

var connGuards = struct {
	sync.Mutex
	m map[redis.UniversalClient]*ConnGuard
}{m: map[redis.UniversalClient]*ConnGuard{}}

// Attach ties the guard to the client it was installed on; the caches of stores
// opened on that client afterwards register with it. DetachConnGuard when the
// client is closed.
func (g *ConnGuard) Attach(c redis.UniversalClient) {
	connGuards.Lock()
	defer connGuards.Unlock()
	connGuards.m[c] = g
}

// DetachConnGuard forgets the guard of a client.
func DetachConnGuard(c redis.UniversalClient) {
	connGuards.Lock()
	defer connGuards.Unlock()
	delete(connGuards.m, c)
}

func guardOf(c redis.UniversalClient) *ConnGuard {
	connGuards.Lock()
	defer connGuards.Unlock()
	return connGuards.m[c]
}

func (g *ConnGuard) add(c *cache) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.caches[c] = struct{}{}
}

func (g *ConnGuard) remove(c *cache) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.caches, c)
}

// OnConnect is the client's redis.Options.OnConnect.
func (g *ConnGuard) OnConnect(ctx context.Context, cn *redis.Conn) error {
	var info *redis.StringCmd
	var client *redis.Cmd
	_, _ = cn.Pipelined(ctx, func(p redis.Pipeliner) error {
		info = p.Info(ctx, "server")
		if g.perNode {
			client = p.Do(ctx, "client", "info")
		}
		return nil
	})
	if info.Err() != nil {
		return nil // the command the connection was opened for will see the trouble
	}
	node := ""
	if g.perNode {
		text, _ := client.Text()
		if node = laddrOf(text); node == "" {
			return nil // CLIENT INFO needs Redis 6.2: the periodic check covers older nodes
		}
	}
	g.check(node, parseInfo(info.Val()).runID)
	return nil
}

// check records run id id of node; a change marks the caches suspect and is reported.
func (g *ConnGuard) check(node, id string) (changed bool) {
	if id == "" {
		return false
	}
	g.mu.Lock()
	old, known := g.runIDs[node]
	g.runIDs[node] = id
	var caches []*cache
	if known && old != id {
		for c := range g.caches {
			caches = append(caches, c)
		}
	}
	g.mu.Unlock()
	if !known || old == id {
		return false
	}
	err := fmt.Errorf("redis run id changed from %s to %s on connect", old, id)
	for _, c := range caches {
		c.markSuspect(err)
	}
	return true
}

// laddrOf returns the server address of a CLIENT INFO answer (the node the
// connection reached, as the server sees it).
func laddrOf(text string) string {
	for _, f := range strings.Fields(text) {
		if v, ok := strings.CutPrefix(f, "laddr="); ok {
			return v
		}
	}
	return ""
}
