package persist

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The pending-marker protocol of record writes (R4). A record's Redis value is either
// an entry "version|epoch|flag json" or a pending state
//
//	!<token>=<expiry ms>,<token>=<expiry ms>...!<inner>
//
// where inner is "" (nothing known), an entry (the newest one known), or "#<nonce>"
// (unknown: a write may have committed without updating the cache). A write:
//
//  1. mark: adds its token (unique per write, expiring markerTTL after Redis's TIME)
//     and creates the epoch if it is missing. A reader that meets a pending value
//     treats it as a miss, reads MongoDB and does not fill. If the mark fails, the
//     write does not commit: ErrUnavailable.
//  2. commit: the MongoDB upsert.
//  3. update: removes its token and stores the new entry if its version is newer.
//     If it fails, the marker stays (readers go to MongoDB until it expires, and an
//     expired marker turns into "#<nonce>", which no earlier read's fill can pass);
//     the write answers ErrUnavailable ("may have been applied; retry").
//
// Every script prunes expired tokens. A fill stores only when the epoch it observed
// before reading MongoDB is still current and no token is live; a fill that observed
// a pending value never stores, and one that observed "#<nonce>" stores only over that
// very nonce. Markers are honoured under any epoch, so rotating the epoch never races
// with a write in flight. When Redis has replicas, each mark and update is followed by
// WAIT in the same round trip, so a promoted replica has every marker and update that
// a write relied on.

// markerTTL is how long a write's marker lives: far longer than a write (OpTimeout),
// so that only a write that died leaves one to expire.
const markerTTL = 60 * time.Second

// luaCommon parses and joins pending values.
const luaCommon = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function parse(cur)
  if not cur then return {}, '', false end
  if string.sub(cur, 1, 1) ~= '!' then return {}, cur, false end
  local j = string.find(cur, '!', 2, true)
  if not j then return {}, '#', true end
  local toks = {}
  for tok, exp in string.gmatch(string.sub(cur, 2, j - 1), '([^=,]+)=(%d+)') do
    toks[#toks + 1] = {tok, tonumber(exp)}
  end
  return toks, string.sub(cur, j + 1), true
end
local function join(toks)
  local parts = {}
  for i, t in ipairs(toks) do parts[i] = t[1] .. '=' .. string.format('%d', t[2]) end
  return table.concat(parts, ',')
end
-- prune returns the tokens other than mine (nil: none is mine) that are still live,
-- and whether any of those others had expired.
local function prune(toks, now, mine)
  local live, expired = {}, false
  for _, t in ipairs(toks) do
    if t[1] ~= mine then
      if t[2] > now then live[#live + 1] = t else expired = true end
    end
  end
  return live, expired
end
local function entry_of(s)
  local v, e = string.match(s, '^(%d+)|([^|]*)|')
  if v then return tonumber(v), e end
  return nil, nil
end
`

// markScript adds a write's token and returns the version of the newest entry the
// key holds (-1: none), the write's hint (versioned.go). KEYS: epoch, record. ARGV:
// token, marker ttl ms, new epoch (used if the epoch is missing), key ttl ms.
var markScript = redis.NewScript(luaCommon + `
local now = now_ms()
if not redis.call('GET', KEYS[1]) then redis.call('SET', KEYS[1], ARGV[3]) end
local toks, inner = parse(redis.call('GET', KEYS[2]))
local hint = entry_of(inner) or -1
local live, expired = prune(toks, now, ARGV[1])
if expired then inner = '#' end
live[#live + 1] = {ARGV[1], now + tonumber(ARGV[2])}
redis.call('SET', KEYS[2], '!' .. join(live) .. '!' .. inner, 'PX', ARGV[4])
return hint
`)

// updateScript ends a write. KEYS: epoch, record. ARGV: token, mode ("u" store the
// entry, "x" the commit failed or is unknown), version, flag+json, key ttl ms, new
// epoch (used if missing), epoch prefix of this store's identity, nonce.
var updateScript = redis.NewScript(luaCommon + `
local now = now_ms()
local e = redis.call('GET', KEYS[1])
if not e then
  e = ARGV[6]
  redis.call('SET', KEYS[1], e)
end
local toks, inner = parse(redis.call('GET', KEYS[2]))
local live = prune(toks, now, ARGV[1])
local best = inner
if ARGV[2] == 'x' then
  best = '#'
elseif string.sub(e, 1, #ARGV[7]) == ARGV[7] then
  local cv, ce = entry_of(inner)
  if not (cv and ce == e and cv >= tonumber(ARGV[3])) then
    best = ARGV[3] .. '|' .. e .. '|' .. ARGV[4]
  end
end
if #live > 0 then
  redis.call('SET', KEYS[2], '!' .. join(live) .. '!' .. best, 'PX', ARGV[5])
elseif entry_of(best) then
  redis.call('SET', KEYS[2], best, 'PX', ARGV[5])
else
  redis.call('SET', KEYS[2], '!!#' .. ARGV[8], 'PX', ARGV[5])
end
return 1
`)

// fillScript stores what a read loaded from MongoDB. KEYS: epoch, record. ARGV:
// observed epoch, observed fence ("" an entry or nothing, "*" pending, else the
// nonce of an unknown value), version, flag+json, key ttl ms, nonce.
var fillScript = redis.NewScript(luaCommon + `
local e = redis.call('GET', KEYS[1])
if not e or e ~= ARGV[1] then return 0 end
local cur = redis.call('GET', KEYS[2])
local toks, inner, pending = parse(cur)
if pending then
  local now = now_ms()
  local live = prune(toks, now, nil)
  if #live > 0 then return 0 end
  if #toks > 0 then
    redis.call('SET', KEYS[2], '!!#' .. ARGV[6], 'PX', ARGV[5])
    return 0
  end
  if inner ~= '#' .. ARGV[2] then return 0 end
elseif ARGV[2] ~= '' then
  return 0
elseif cur then
  local cv, ce = entry_of(cur)
  if cv and ce == e and cv >= tonumber(ARGV[3]) then return 0 end
end
redis.call('SET', KEYS[2], ARGV[3] .. '|' .. e .. '|' .. ARGV[4], 'PX', ARGV[5])
return 1
`)

// fencePending is the fence of a read that met a live or expired marker.
const fencePending = "*"

// pendingFence returns the fence of a pending value ("*" while tokens are listed,
// the nonce of an unknown value otherwise); ok is false for an entry.
func pendingFence(raw string) (fence string, ok bool) {
	if raw == "" || raw[0] != '!' {
		return "", false
	}
	if strings.HasPrefix(raw, "!!#") {
		return raw[3:], true
	}
	return fencePending, true
}

// keyTTL is the expiry set on a record key by every script: at least the cache TTL
// and always well past a marker's expiry.
func (c *cache) keyTTL() int64 {
	return max(c.ttl, 2*markerTTL).Milliseconds()
}

// mark registers a write before its commit and returns its token and the version
// of the entry it found (versionUnknown: none). A marker the
// replicas did not acknowledge is withdrawn (best effort) before the error returns.
func (c *cache) mark(ctx context.Context, key string) (token string, hint int64, err error) {
	mctx, cancel := c.opCtx(ctx)
	defer cancel()
	token = newToken()
	v, err := c.eval(mctx, markScript, []string{c.keys.epoch(), key},
		token, markerTTL.Milliseconds(), c.newEpoch(), c.keyTTL())
	if err != nil {
		if errors.Is(err, errFewReplicas) {
			c.abort(ctx, key, token)
		}
		return "", 0, fmt.Errorf("redis mark: %w", err)
	}
	hint, ok := v.(int64)
	if !ok {
		hint = versionUnknown
	}
	return token, hint, nil
}

// update ends a committed write: its token goes, its entry is stored if newer.
func (c *cache) update(ctx context.Context, key, token string, e entry) error {
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	if _, err := c.eval(ctx, updateScript, []string{c.keys.epoch(), key},
		token, "u", e.version, entryValue(e), c.keyTTL(), c.newEpoch(), c.idTag, newToken()); err != nil {
		return fmt.Errorf("redis update entry: %w", err)
	}
	return nil
}

// abort ends a write whose commit failed or may have happened: its token goes and
// the value becomes unknown. Best effort: a marker left behind expires.
func (c *cache) abort(ctx context.Context, key, token string) {
	ctx, cancel := c.opCtx(context.WithoutCancel(ctx))
	defer cancel()
	_, _ = c.eval(ctx, updateScript, []string{c.keys.epoch(), key},
		token, "x", 0, "", c.keyTTL(), c.newEpoch(), c.idTag, newToken())
}

// fill stores an entry a read loaded, under the epoch and fence it observed.
func (c *cache) fill(ctx context.Context, key, observed, fence string, e entry) error {
	if observed == "" || !c.ours(observed) {
		return nil // no epoch of this store: it is created by writes, start and recovery
	}
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	err := fillScript.Run(ctx, c.rdb, []string{c.keys.epoch(), key},
		observed, fence, e.version, entryValue(e), c.keyTTL(), newToken()).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redis fill entry: %w", err)
	}
	return nil
}

func entryValue(e entry) []byte {
	val := make([]byte, 0, len(e.json)+1)
	val = append(val, e.flag)
	return append(val, e.json...)
}

// eval runs a script that a write relies on. With replicas, WAIT follows it in the
// same round trip, and fewer acknowledging replicas than connected fail the call.
func (c *cache) eval(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, error) {
	n := int(c.replicas.Load())
	if n == 0 {
		v, err := s.Run(ctx, c.rdb, keys, args...).Result()
		if errors.Is(err, redis.Nil) {
			err = nil
		}
		return v, err
	}
	var via redis.Cmdable = c.rdb
	if cc, ok := c.rdb.(*redis.ClusterClient); ok {
		// WAIT counts the writes of its own connection: send both to the slot's master.
		node, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			return nil, err
		}
		via = node
	}
	wait := c.timeout * 4 / 5
	for attempt := 0; ; attempt++ {
		pipe := via.Pipeline()
		ev := pipe.EvalSha(ctx, s.Hash(), keys, args...)
		w := queueWait(ctx, pipe, n, wait)
		_, _ = pipe.Exec(ctx)
		if err := ev.Err(); err != nil && !errors.Is(err, redis.Nil) {
			if attempt == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
				if err := s.Load(ctx, via).Err(); err != nil {
					return nil, err
				}
				continue
			}
			return nil, err
		}
		if err := checkWait(w, n); err != nil {
			return nil, err
		}
		return ev.Val(), nil
	}
}

// queueWait adds WAIT n to a pipeline (Pipeliner has no typed Wait).
func queueWait(ctx context.Context, pipe redis.Pipeliner, n int, timeout time.Duration) *redis.Cmd {
	return pipe.Do(ctx, "wait", n, max(timeout.Milliseconds(), 1))
}

// errFewReplicas says a command was applied on the master but not acknowledged by
// every connected replica.
var errFewReplicas = errors.New("not acknowledged by every replica")

// checkWait fails unless WAIT counted at least n replicas.
func checkWait(w *redis.Cmd, n int) error {
	got, err := w.Int64()
	if err != nil {
		return fmt.Errorf("redis wait: %w", err)
	}
	if got < int64(n) {
		return fmt.Errorf("%w: %d of %d", errFewReplicas, got, n)
	}
	return nil
}
