package persist

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The cache holds values, not ids, so a hit is one Redis round trip. How it stays
// coherent (R4; docs/store.md has the whole argument):
//
//   - Versions. Every record document carries a counter that each write increments
//     in the same atomic upsert. A cached entry is "version|epoch|flag json"; scripts
//     store an entry only if the cached version is lower, so a slow reader that loaded
//     an old document can never overwrite a newer cached value.
//   - Pending markers (pending.go). A write marks the entry before its MongoDB commit
//     and updates it after; a reader that meets a marker goes to MongoDB. A write that
//     cannot mark does not commit, one that cannot update answers ErrUnavailable.
//   - Epoch. The key P{T}:e holds "<identity tag>.<random>"; every entry embeds the
//     epoch it was stored under, and a read fetches the epoch and the entry with one
//     MGET. An entry of another epoch is a miss, and an epoch of another identity (a
//     store of another database with the same prefix) is not used at all. Opening a
//     store rotates the epoch (the cache may have been off, or fronted another
//     database, or a process died mid-write), so do recovery after Redis failures, a
//     new Redis run id, and a flush (the epoch is recreated).
//   - Run id and replicas. Every HealthInterval the store reads INFO from the master
//     of the tenant's slot: a new run id (restart, failover) rotates the epoch, and
//     the number of connected replicas sets the WAIT of every mark and update.
//   - Redis unreachable. Reads are served from MongoDB; writes fail with
//     ErrUnavailable (they cannot mark); the store marks the cache suspect, stops
//     reading it, and a background loop rotates the epoch as soon as Redis answers.
type cache struct {
	rdb redis.UniversalClient
	// pipelined sends the hot-path reads (MGET of epoch and entry) while other reads
	// on the same client are in flight (gate counts them); see newCache.
	pipelined redis.Cmdable
	gate      *readGate
	// guard, when the client has one, checks the run id of every new connection.
	guard *ConnGuard
	// pipelinedReads counts the reads that went through pipelined (tests).
	pipelinedReads atomic.Uint64
	keys           redisKeys
	ttl            time.Duration
	timeout        time.Duration
	interval       time.Duration

	// idTag starts every epoch this store creates (from Options.CacheIdentity).
	idTag string
	// replicas is the number of connected Redis replicas each mark and update waits for.
	replicas atomic.Int32

	state atomic.Int32 // cacheOK, cacheSuspect, cacheRecovering
	wake  chan struct{}

	mu    sync.Mutex
	runID string
	// lastErr is the most recent Redis error, for Health.
	lastErr error
}

const (
	cacheOK int32 = iota
	cacheSuspect
	cacheRecovering
)

// Entry flags.
const (
	flagAbsent  = 'a' // no document
	flagPresent = 'p' // document with a payload
	flagRemoved = 'r' // soft-deleted document (tombstone)
)

// entry is a record as the cache holds it.
type entry struct {
	version int64
	flag    byte
	json    []byte
}

// newCache returns the cache of one tenant. Under concurrency, reads go through
// the client's blocking autopipeliner: the commands of concurrent callers leave in
// one pipeline (one write and one read on the connection instead of one each per
// read), which is what keeps a busy gateway's Redis cost per read low. A read with
// no other in flight on the client (of any tenant) goes straight to the client,
// which is faster for a lone caller. Each call blocks until its own reply either way, and a reply is only read
// after the command was sent, so a read issued after a write returned sees that write.
func newCache(rdb redis.UniversalClient, keys redisKeys, o Options) *cache {
	c := &cache{rdb: rdb, keys: keys, ttl: o.CacheTTL, timeout: o.CacheTimeout,
		interval: o.HealthInterval, wake: make(chan struct{}, 1), idTag: identityTag(o)}
	if ap, err := rdb.AutoPipeline(); err == nil {
		c.pipelined = ap
		c.gate = acquireReadGate(rdb)
	}
	if c.guard = guardOf(rdb); c.guard != nil {
		c.guard.add(c)
	}
	return c
}

// close releases what the cache shares with other tenants' caches.
func (c *cache) close() {
	if c.gate != nil {
		releaseReadGate(c.rdb)
	}
	if c.guard != nil {
		c.guard.remove(c)
	}
}

// mget reads keys, pipelined with other reads when some are in flight.
func (c *cache) mget(ctx context.Context, keys ...string) ([]any, error) {
	if c.gate == nil {
		return c.rdb.MGet(ctx, keys...).Result()
	}
	var via redis.Cmdable = c.rdb
	if c.gate.inflight.Add(1) > 1 {
		via = c.pipelined
		c.pipelinedReads.Add(1)
	}
	defer c.gate.inflight.Add(-1)
	return via.MGet(ctx, keys...).Result()
}

func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// identityTag derives the epoch prefix of a store from what its cache fronts.
func identityTag(o Options) string {
	id := o.CacheIdentity
	if id == "" && o.Database != nil {
		id = o.Database.Name()
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:6]) + "."
}

// newEpoch returns a fresh epoch of this store's identity.
func (c *cache) newEpoch() string { return c.idTag + newToken() }

// ours reports whether an epoch was created by a store of the same identity.
func (c *cache) ours(epoch string) bool { return strings.HasPrefix(epoch, c.idTag) }

// usable reports whether reads may use the cache now.
func (c *cache) usable() bool { return c.state.Load() == cacheOK }

// failed marks the cache suspect after a request's Redis call failed, unless ctx
// is done: an error of a caller that gave up (a cancelled request, its own
// deadline) says nothing about Redis, and rotating the epoch for it would let any
// caller throw away every cached entry and series of the tenant. Whatever the
// abandoned command did is covered by the write protocol (a marker or token left
// behind expires into "unknown"); a Redis that stalls is still seen by callers with
// time left and by the periodic check.
func (c *cache) failed(ctx context.Context, err error) {
	if ctx.Err() == nil {
		c.markSuspect(err)
	}
}

// markSuspect stops cache use until the recovery loop has rotated the epoch.
func (c *cache) markSuspect(err error) {
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
	c.state.Store(cacheSuspect)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *cache) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// get fetches the epoch and an entry in one MGET. epoch is "" when the epoch key is
// missing or belongs to another identity (then the caller must not fill); fence is
// what a fill must pass on (see pending.go).
// It sets no timer of its own (a context timer per lookup cost a tenth of a cached
// read): the lookup is bounded by the Redis client's read and write timeouts, which
// go-redis applies whatever the caller's context says and which the manager's pools
// never leave unset (infra.Pools), and one timed-out lookup marks the cache suspect,
// so later reads skip it.
func (c *cache) get(ctx context.Context, key string) (e entry, epoch, fence string, hit bool, err error) {
	vals, err := c.mget(ctx, c.keys.epoch(), key)
	if err != nil {
		return entry{}, "", "", false, fmt.Errorf("redis mget: %w", err)
	}
	epoch, _ = vals[0].(string)
	raw, _ := vals[1].(string)
	if !c.ours(epoch) {
		return entry{}, "", "", false, nil
	}
	if f, pending := pendingFence(raw); pending {
		return entry{}, epoch, f, false, nil
	}
	if raw == "" {
		return entry{}, epoch, "", false, nil
	}
	e, ep, ok := parseEntry(raw)
	if !ok || ep != epoch {
		return entry{}, epoch, "", false, nil
	}
	return e, epoch, "", true, nil
}

// parseEntry splits "version|epoch|flag json".
func parseEntry(raw string) (entry, string, bool) {
	i := strings.IndexByte(raw, '|')
	if i < 0 {
		return entry{}, "", false
	}
	j := strings.IndexByte(raw[i+1:], '|')
	if j < 0 || i+1+j+1 >= len(raw) {
		return entry{}, "", false
	}
	j += i + 1
	v, err := strconv.ParseInt(raw[:i], 10, 64)
	if err != nil {
		return entry{}, "", false
	}
	return entry{version: v, flag: raw[j+1], json: []byte(raw[j+2:])}, raw[i+1 : j], true
}

// start prepares the cache at Init: loads the scripts, rotates the epoch (the cache
// may have been off, fronted another database, or a process may have died between a
// commit and its update) and learns the run id and the replicas. A failure only marks
// the cache suspect: reads work without it, and recovery rotates later.
func (c *cache) start(ctx context.Context) {
	if err := c.rotate(ctx); err != nil {
		c.markSuspect(err)
	}
}

// server is what the health check learns from INFO on the master of the tenant's slot.
type server struct {
	runID    string
	replicas int
}

// info reads INFO from the master that holds the tenant's keys (on Redis Cluster the
// master of their hash slot, so a failover of that slot changes the run id).
func (c *cache) info(ctx context.Context) (server, error) {
	var cmd *redis.StringCmd
	if cc, ok := c.rdb.(*redis.ClusterClient); ok {
		node, err := cc.MasterForKey(ctx, c.keys.epoch())
		if err != nil {
			return server{}, fmt.Errorf("redis cluster master: %w", err)
		}
		cmd = node.Info(ctx)
	} else {
		cmd = c.rdb.Info(ctx)
	}
	text, err := cmd.Result()
	if err != nil {
		return server{}, fmt.Errorf("redis info: %w", err)
	}
	return parseInfo(text), nil
}

// parseInfo reads run_id and connected_slaves from an INFO answer.
func parseInfo(text string) server {
	var s server
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "run_id:"); ok {
			s.runID = v
		} else if v, ok := strings.CutPrefix(line, "connected_slaves:"); ok {
			s.replicas, _ = strconv.Atoi(v)
		}
	}
	return s
}

// rotate replaces the epoch token, invalidating every entry of the tenant (markers
// stay: they are honoured under any epoch), and relearns the server.
func (c *cache) rotate(ctx context.Context) error {
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	srv, err := c.info(ctx)
	if err != nil {
		return err
	}
	c.replicas.Store(int32(srv.replicas))
	for _, s := range append([]*redis.Script{markScript, updateScript, fillScript}, seriesScripts...) {
		if err := s.Load(ctx, c.rdb).Err(); err != nil {
			return fmt.Errorf("redis script load: %w", err)
		}
	}
	if err := c.setEpoch(ctx, c.newEpoch(), false); err != nil {
		return fmt.Errorf("redis rotate epoch: %w", err)
	}
	c.mu.Lock()
	c.runID = srv.runID
	c.mu.Unlock()
	return nil
}

// setEpoch sets the epoch (only if missing with nx), waiting for the replicas.
func (c *cache) setEpoch(ctx context.Context, epoch string, nx bool) error {
	n := int(c.replicas.Load())
	var via redis.Cmdable = c.rdb
	if cc, ok := c.rdb.(*redis.ClusterClient); ok && n > 0 {
		node, err := cc.MasterForKey(ctx, c.keys.epoch())
		if err != nil {
			return err
		}
		via = node
	}
	pipe := via.Pipeline()
	if nx {
		pipe.SetNX(ctx, c.keys.epoch(), epoch, 0)
	} else {
		pipe.Set(ctx, c.keys.epoch(), epoch, 0)
	}
	var w *redis.Cmd
	if n > 0 {
		w = queueWait(ctx, pipe, n, c.timeout*4/5)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	if w != nil {
		return checkWait(w, n)
	}
	return nil
}

// recover brings a suspect cache back: the epoch is rotated, so nothing cached
// before (or while this store could not see Redis) is served again.
func (c *cache) recover(ctx context.Context) bool {
	if !c.state.CompareAndSwap(cacheSuspect, cacheRecovering) {
		return c.state.Load() == cacheOK
	}
	if err := c.rotate(ctx); err != nil {
		c.markSuspect(err)
		return false
	}
	return c.state.CompareAndSwap(cacheRecovering, cacheOK)
}

// checkRunID is the periodic health check: a new run id of the tenant's master
// rotates the epoch, the replica count is relearned, and a missing epoch (a flush,
// an eviction) or one of another identity is replaced.
func (c *cache) checkRunID(ctx context.Context) {
	cctx, cancel := c.opCtx(ctx)
	defer cancel()
	srv, err := c.info(cctx)
	if err != nil {
		c.markSuspect(err)
		return
	}
	c.mu.Lock()
	old := c.runID
	if old == "" {
		c.runID = srv.runID
	}
	c.mu.Unlock()
	if old != "" && srv.runID != "" && srv.runID != old {
		c.markSuspect(fmt.Errorf("redis run id changed from %s to %s", old, srv.runID))
		return
	}
	c.replicas.Store(int32(srv.replicas))
	epoch, err := c.rdb.Get(cctx, c.keys.epoch()).Result()
	switch {
	case errors.Is(err, redis.Nil):
		err = c.setEpoch(cctx, c.newEpoch(), true)
	case err == nil && !c.ours(epoch):
		err = c.setEpoch(cctx, c.newEpoch(), false)
	}
	if err != nil {
		c.markSuspect(fmt.Errorf("redis epoch: %w", err))
	}
}

// loop is the cache's background work: recovery after failures and the run id check.
// It returns when stop is closed.
func (c *cache) loop(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	health := c.interval
	if health <= 0 {
		health = time.Hour
	}
	backoff := 50 * time.Millisecond
	timer := time.NewTimer(health)
	defer timer.Stop()
	for {
		wait, wake := health, c.wake
		if c.state.Load() != cacheOK {
			// Recovering: only the backoff timer wakes the loop. A failed attempt marks
			// the cache suspect again, which signals wake; heeding that would retry at
			// once, forever (a Redis that refuses at once, a closed client).
			wait, wake = backoff, nil
		}
		timer.Reset(wait)
		select {
		case <-stop:
			return
		case <-wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		switch c.state.Load() {
		case cacheOK:
			if c.interval > 0 {
				c.checkRunID(ctx)
			}
			backoff = 50 * time.Millisecond
		default:
			if c.recover(ctx) {
				backoff = 50 * time.Millisecond
			} else if backoff < 2*time.Second {
				backoff *= 2
			}
		}
	}
}

// CacheHealth says whether the cache is in use and the last Redis error seen.
type CacheHealth struct {
	Enabled bool
	InUse   bool
	LastErr error
}

func (c *cache) health() CacheHealth {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheHealth{Enabled: true, InUse: c.state.Load() == cacheOK, LastErr: c.lastErr}
}
