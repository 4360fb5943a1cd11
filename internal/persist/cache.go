package persist

import (
	"bytes"
	"context"
	"crypto/rand"
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
// coherent (R4):
//
//   - Versions. Every record document carries a counter that each write increments
//     in the same atomic upsert. A cached entry is "version|epoch|flag json". Writes
//     and read-fills go through one Lua script that stores an entry only if the
//     cached version is lower, so a slow reader that loaded an old document can never
//     overwrite a newer cached value.
//   - Epoch. The key P{T}:e holds a random token; every entry embeds the token it
//     was stored under, and a read fetches the token and the entry with one MGET.
//     An entry whose token is not the current one is a miss. A flush, an eviction of
//     the epoch key or a restart without data removes the token and so invalidates
//     every entry of the tenant at once. A read-fill only stores if the token is still
//     the one the read saw before it went to MongoDB.
//   - Run id. The store checks Redis's run_id every HealthInterval; a new run id (a
//     restart from an old snapshot, a failover to a lagging replica) rotates the token.
//   - Redis unreachable. Reads are served from MongoDB. Writes commit to MongoDB and
//     return success (MongoDB is the source of truth); the store marks the cache
//     suspect, stops using it, and a background loop rotates the token as soon as
//     Redis answers again, after every write that skipped the cache has finished. So
//     an entry that missed an update can never be served afterwards.
type cache struct {
	rdb redis.UniversalClient
	// pipelined sends the hot-path reads (MGET of epoch and entry) while other reads
	// on the same client are in flight (gate counts them); see newCache.
	pipelined redis.Cmdable
	gate      *readGate
	// pipelinedReads counts the reads that went through pipelined (tests).
	pipelinedReads atomic.Uint64
	keys           redisKeys
	ttl            time.Duration
	timeout        time.Duration
	interval       time.Duration

	state  atomic.Int32 // cacheOK, cacheSuspect, cacheRecovering
	skipMu sync.RWMutex // held (read) by writes that skip the cache while suspect
	wake   chan struct{}

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

// setScript stores an entry if its version is newer than the cached one.
// KEYS: epoch, value. ARGV: mode ("w" write, "f" fill), observed epoch ("" = was
// missing), new epoch token (used if the epoch is missing), version, flag+json, ttl ms.
var setScript = redis.NewScript(`
local e = redis.call('GET', KEYS[1])
if ARGV[1] == 'f' then
  if e == false then
    if ARGV[2] ~= '' then return 0 end
  elseif e ~= ARGV[2] then
    return 0
  end
end
if e == false then
  e = ARGV[3]
  redis.call('SET', KEYS[1], e)
end
local cur = redis.call('GET', KEYS[2])
if cur then
  local cv, ce = string.match(cur, '^(%d+)|([^|]*)|')
  if ce == e and tonumber(cv) >= tonumber(ARGV[4]) then return 0 end
end
redis.call('SET', KEYS[2], ARGV[4] .. '|' .. e .. '|' .. ARGV[5], 'PX', ARGV[6])
return 1
`)

// newCache returns the cache of one tenant. Under concurrency, reads go through
// the client's blocking autopipeliner: the commands of concurrent callers leave in
// one pipeline (one write and one read on the connection instead of one each per
// read), which is what keeps a busy gateway's Redis cost per read low. A read with
// no other in flight on the client (of any tenant) goes straight to the client,
// which is faster for a lone caller. Each call blocks until its own reply either way, and a reply is only read
// after the command was sent, so a read issued after a write returned sees that write.
func newCache(rdb redis.UniversalClient, keys redisKeys, o Options) *cache {
	c := &cache{rdb: rdb, keys: keys, ttl: o.CacheTTL, timeout: o.CacheTimeout,
		interval: o.HealthInterval, wake: make(chan struct{}, 1)}
	if ap, err := rdb.AutoPipeline(); err == nil {
		c.pipelined = ap
		c.gate = acquireReadGate(rdb)
	}
	return c
}

// close releases what the cache shares with other tenants' caches.
func (c *cache) close() {
	if c.gate != nil {
		releaseReadGate(c.rdb)
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

// usable reports whether reads may use the cache now.
func (c *cache) usable() bool { return c.state.Load() == cacheOK }

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

// beginWrite is called before a write's MongoDB commit. skip says the write must not
// touch Redis; done must be called once the commit has finished.
func (c *cache) beginWrite() (skip bool, done func()) {
	c.skipMu.RLock()
	if c.state.Load() == cacheSuspect {
		return true, c.skipMu.RUnlock
	}
	c.skipMu.RUnlock()
	return false, func() {}
}

func (c *cache) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// get fetches the epoch and an entry in one MGET. epoch is "" when the epoch key is missing.
// It sets no timer of its own (a context timer per lookup cost a tenth of a cached
// read): the lookup is bounded by the caller's context and the Redis client's read
// timeout, and one timed-out lookup marks the cache suspect, so later reads skip it.
func (c *cache) get(ctx context.Context, key string) (e entry, epoch string, hit bool, err error) {
	vals, err := c.mget(ctx, c.keys.epoch(), key)
	if err != nil {
		return entry{}, "", false, fmt.Errorf("redis mget: %w", err)
	}
	epoch, _ = vals[0].(string)
	raw, _ := vals[1].(string)
	if epoch == "" || raw == "" {
		return entry{}, epoch, false, nil
	}
	e, ep, ok := parseEntry(raw)
	if !ok || ep != epoch {
		return entry{}, epoch, false, nil
	}
	return e, epoch, true, nil
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

// put stores e with the set script: a write (observed unused) or a fill (observed = the epoch the read saw).
func (c *cache) put(ctx context.Context, key string, fill bool, observed string, e entry) error {
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	mode := "w"
	if fill {
		mode = "f"
	}
	val := make([]byte, 0, len(e.json)+1)
	val = append(val, e.flag)
	val = append(val, e.json...)
	// Run is EVALSHA, falling back to EVAL after a Redis restart dropped the script.
	err := setScript.Run(ctx, c.rdb, []string{c.keys.epoch(), key},
		mode, observed, newToken(), e.version, val, c.ttl.Milliseconds()).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redis set entry: %w", err)
	}
	return nil
}

// getWindow fetches a cached candle window (immutable, so no version; the epoch still applies).
func (c *cache) getWindow(ctx context.Context, key string) (json []byte, epoch string, hit bool, err error) {
	vals, err := c.mget(ctx, c.keys.epoch(), key)
	if err != nil {
		return nil, "", false, fmt.Errorf("redis mget: %w", err)
	}
	epoch, _ = vals[0].(string)
	raw, _ := vals[1].(string)
	if epoch == "" || raw == "" {
		return nil, epoch, false, nil
	}
	e, ep, ok := parseEntry(raw)
	if !ok || ep != epoch || e.flag != flagPresent {
		return nil, epoch, false, nil
	}
	return e.json, epoch, true, nil
}

// putWindow caches a complete candle window under the epoch the read saw.
func (c *cache) putWindow(ctx context.Context, key, epoch string, json []byte) error {
	if epoch == "" {
		return nil // no epoch yet: the next record write or fill creates one
	}
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	var b bytes.Buffer
	b.Grow(len(json) + 24)
	b.WriteString("0|")
	b.WriteString(epoch)
	b.WriteString("|p")
	b.Write(json)
	if err := c.rdb.Set(ctx, key, b.Bytes(), c.ttl).Err(); err != nil {
		return fmt.Errorf("redis set window: %w", err)
	}
	return nil
}

// start prepares the cache at Init: loads the script, makes sure an epoch exists and
// learns the run id. A failure only marks the cache suspect: reads work without it.
func (c *cache) start(ctx context.Context) {
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	if err := setScript.Load(ctx, c.rdb).Err(); err != nil {
		c.markSuspect(fmt.Errorf("redis script load: %w", err))
		return
	}
	if err := c.rdb.SetNX(ctx, c.keys.epoch(), newToken(), 0).Err(); err != nil {
		c.markSuspect(fmt.Errorf("redis epoch: %w", err))
		return
	}
	if id, err := c.fetchRunID(ctx); err == nil {
		c.mu.Lock()
		c.runID = id
		c.mu.Unlock()
	}
}

// fetchRunID reads run_id from INFO server ("" on Redis Cluster's multi-node answer).
func (c *cache) fetchRunID(ctx context.Context) (string, error) {
	info, err := c.rdb.Info(ctx, "server").Result()
	if err != nil {
		return "", fmt.Errorf("redis info: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(line, "run_id:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", nil
}

// rotate replaces the epoch token, invalidating every entry of the tenant.
func (c *cache) rotate(ctx context.Context) error {
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	if err := setScript.Load(ctx, c.rdb).Err(); err != nil {
		return fmt.Errorf("redis script load: %w", err)
	}
	if err := c.rdb.Set(ctx, c.keys.epoch(), newToken(), 0).Err(); err != nil {
		return fmt.Errorf("redis rotate epoch: %w", err)
	}
	id, err := c.fetchRunID(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.runID = id
	c.mu.Unlock()
	return nil
}

// recover brings a suspect cache back: no new write may skip the cache, every write
// that did has finished, then the epoch is rotated.
func (c *cache) recover(ctx context.Context) bool {
	if !c.state.CompareAndSwap(cacheSuspect, cacheRecovering) {
		return c.state.Load() == cacheOK
	}
	c.skipMu.Lock()
	c.skipMu.Unlock() //nolint:staticcheck // barrier: waits for writes that skipped the cache
	if err := c.rotate(ctx); err != nil {
		c.markSuspect(err)
		return false
	}
	return c.state.CompareAndSwap(cacheRecovering, cacheOK)
}

// checkRunID rotates the epoch when Redis has a new run id.
func (c *cache) checkRunID(ctx context.Context) {
	cctx, cancel := c.opCtx(ctx)
	id, err := c.fetchRunID(cctx)
	cancel()
	if err != nil {
		c.markSuspect(err)
		return
	}
	c.mu.Lock()
	old := c.runID
	c.mu.Unlock()
	if old != "" && id != "" && id != old {
		c.markSuspect(fmt.Errorf("redis run id changed from %s to %s", old, id))
		return
	}
	if old == "" {
		c.mu.Lock()
		c.runID = id
		c.mu.Unlock()
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
		wait := health
		if c.state.Load() != cacheOK {
			wait = backoff
		}
		timer.Reset(wait)
		select {
		case <-stop:
			return
		case <-c.wake:
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

// listEpochField is the field of a list-hash key that holds the epoch it was built
// under; item ids are never empty, so it cannot collide with one.
const listEpochField = ""

// listHashes fetches the stored content hashes of ids in one pipelined round trip.
// ok is false when the hash key is missing or was built under another epoch; then
// the caller asks MongoDB. hashes holds only the ids that are stored.
func (c *cache) listHashes(ctx context.Context, key string, ids []string) (hashes map[string]string, epoch string, ok bool, err error) {
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	fields := make([]string, 0, len(ids)+1)
	fields = append(fields, listEpochField)
	fields = append(fields, ids...)
	pipe := c.rdb.Pipeline()
	eg := pipe.Get(ctx, c.keys.epoch())
	hm := pipe.HMGet(ctx, key, fields...)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, "", false, fmt.Errorf("redis list hashes: %w", err)
	}
	epoch = eg.Val()
	vals := hm.Val()
	if epoch == "" || len(vals) != len(fields) {
		return nil, epoch, false, nil
	}
	if e, _ := vals[0].(string); e != epoch {
		return nil, epoch, false, nil
	}
	hashes = make(map[string]string, len(ids))
	for i, id := range ids {
		if h, ok := vals[i+1].(string); ok {
			hashes[id] = h
		}
	}
	return hashes, epoch, true, nil
}

// storeListHashes records content hashes after a list write; reset rebuilds the key
// from scratch (it was missing or from another epoch).
func (c *cache) storeListHashes(ctx context.Context, key, epoch string, reset bool, hashes map[string]string) error {
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	args := make([]any, 0, 2*len(hashes)+2)
	args = append(args, listEpochField, epoch)
	for id, h := range hashes {
		args = append(args, id, h)
	}
	pipe := c.rdb.Pipeline()
	if reset {
		pipe.Del(ctx, key)
	}
	pipe.HSet(ctx, key, args...)
	pipe.PExpire(ctx, key, c.ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis store list hashes: %w", err)
	}
	return nil
}
