package persist

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The candle series cache (docs/store.md, "Candle series"). Each series (exchange,
// symbol, interval) has two Redis keys in the tenant's hash slot:
//
//	P{T}:cz:<series>  sorted set: score = open time, member = "ts,open,high,low,close,volume"
//	                  (each number as a read writes it); one member per stored candle
//	P{T}:cv:<series>  sorted set: the coverage, ranges "<first>:<last>" scored by their
//	                  first open time, of candles known to be stored in MongoDB and held
//	                  in cz; plus, at score -1, the state
//	                  "m|<epoch>|<state>|<build id>|<lease ms>|<token>=<expiry ms>,..."
//
// States: k (known: the coverage is every aligned candle MongoDB holds, so a window
// outside it is a miss), b (being rebuilt: the coverage is true but maybe incomplete),
// u (unknown). A series without a state, or with the state of another epoch, is
// unknown: an evicted or flushed series is never read as empty. Only aligned candles
// (open time a multiple of the interval) are held; a window's candles are all aligned
// when its since is.
//
// Writes mark before they commit, as records do (pending.go): a token in the state
// makes every window outside the coverage go to MongoDB until the write's update
// has added its candles (or the token expired, which makes the series unknown).
// A write that cannot mark does not commit. A rebuild claims the series (state b with
// a lease), drops what Redis held, loads MongoDB's candles in bounded batches, then
// walks the sorted set in bounded steps to compute the coverage and ends in k.
// Updates landing during a rebuild add their candles too, so the coverage stays true.

// Window read outcomes of seriesReadScript.
const (
	seriesNoEpoch   = 0 // no epoch of this store: MongoDB, no rebuild
	seriesUnknown   = 1 // MongoDB, and rebuild the series
	seriesHit       = 2 // the window's candles follow
	seriesMiss      = 3 // known and not covered: null without MongoDB
	seriesUnsettled = 4 // a write in flight or a rebuild under way: MongoDB
)

// Rebuild bounds: candles per load step, members per coverage step, and the lease a
// builder renews at every step.
const (
	seriesLoadBatch = 5000
	seriesWalkBatch = 10000
	seriesLease     = 60 * time.Second
)

// luaSeries reads and writes series states and merges coverage ranges.
const luaSeries = luaCommon + `
local function n2s(x) return string.format('%d', x) end
local function meta_get(cov)
  local r = redis.call('ZRANGEBYSCORE', cov, -1, -1, 'LIMIT', 0, 1)
  if not r[1] then return nil end
  local ep, st, b, lease, toks = string.match(r[1], '^m|([^|]*)|(%a)|([^|]*)|(%d*)|(.*)$')
  if not ep then return nil end
  local t = {}
  for tok, exp in string.gmatch(toks, '([^=,]+)=(%d+)') do t[#t + 1] = {tok, tonumber(exp)} end
  return {ep = ep, st = st, b = b, lease = tonumber(lease) or 0, toks = t}
end
local function meta_put(cov, m, ttl)
  redis.call('ZREMRANGEBYSCORE', cov, -1, -1)
  redis.call('ZADD', cov, -1, 'm|' .. m.ep .. '|' .. m.st .. '|' .. m.b .. '|' .. n2s(m.lease) .. '|' .. join(m.toks))
  redis.call('PEXPIRE', cov, ttl)
end
local function ours(e, tag) return e and string.sub(e, 1, #tag) == tag end
local function range_of(s)
  local a, b = string.match(s, '^(%d+):(%d+)$')
  return tonumber(a), tonumber(b)
end
-- add_range merges [a, b] into the coverage, joining overlapping and adjacent ranges.
local function add_range(cov, a, b, step)
  local p = redis.call('ZREVRANGEBYSCORE', cov, n2s(a), 0, 'LIMIT', 0, 1)
  if p[1] then
    local pa, pb = range_of(p[1])
    if pa and pb + step >= a then
      if pb >= b then return end
      a = pa
      redis.call('ZREM', cov, p[1])
    end
  end
  for _, s in ipairs(redis.call('ZRANGEBYSCORE', cov, '(' .. n2s(a), n2s(b + step))) do
    local sa, sb = range_of(s)
    if sb and sb > b then b = sb end
    redis.call('ZREM', cov, s)
  end
  redis.call('ZADD', cov, n2s(a), n2s(a) .. ':' .. n2s(b))
end
-- add_runs merges ascending open times into the coverage, one range per contiguous run.
local function add_runs(cov, ts, step)
  local a, b = nil, nil
  for _, t in ipairs(ts) do
    if a and t == b + step then
      b = t
    else
      if a then add_range(cov, a, b, step) end
      a, b = t, t
    end
  end
  if a then add_range(cov, a, b, step) end
end
local function held(z, ts)
  return redis.call('ZRANGEBYSCORE', z, ts, ts, 'LIMIT', 0, 1)[1]
end
`

// seriesReadScript answers a window. KEYS: epoch, coverage, candles. ARGV: epoch
// prefix of this store's identity, since, open time of the last candle, limit, key
// ttl ms (used only when the read finds the series damaged and marks it unknown).
var seriesReadScript = redis.NewScript(luaSeries + `
local e = redis.call('GET', KEYS[1])
if not ours(e, ARGV[1]) then return {0} end
local m = meta_get(KEYS[2])
if not m or m.ep ~= e or m.st == 'u' then return {1} end
local r = redis.call('ZREVRANGEBYSCORE', KEYS[2], ARGV[2], 0, 'LIMIT', 0, 1)
if r[1] then
  local a, b = range_of(r[1])
  if b and b >= tonumber(ARGV[3]) then
    local c = redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[2], ARGV[3])
    if #c == tonumber(ARGV[4]) then return {2, c} end
    m.st = 'u'
    meta_put(KEYS[2], m, ARGV[5])
    return {1}
  end
end
local now = now_ms()
if m.st == 'k' then
  local live, expired = prune(m.toks, now, nil)
  if expired then
    m.st, m.toks = 'u', live
    meta_put(KEYS[2], m, ARGV[5])
    return {1}
  end
  if #live == 0 then return {3} end
  return {4}
end
if m.lease < now then return {1} end
return {4}
`)

// seriesMarkScript registers a write before its commit and returns the stored
// versions the series already holds. KEYS: epoch, coverage, candles. ARGV: epoch
// prefix, token, marker ttl ms, new epoch (if missing), key ttl ms, the write's
// aligned open times. Returns {1 if a token was added, {member or false, ...}}; no
// token is needed when every candle is held already.
var seriesMarkScript = redis.NewScript(luaSeries + `
local now = now_ms()
local e = redis.call('GET', KEYS[1])
if not e then
  e = ARGV[4]
  redis.call('SET', KEYS[1], e)
end
local m = meta_get(KEYS[2])
local live, expired = {}, false
if m then live, expired = prune(m.toks, now, nil) end
local trusted = m and ours(e, ARGV[1]) and m.ep == e and (m.st == 'k' or m.st == 'b') and not expired
if not m then m = {b = '', lease = 0} end
if not trusted then m.ep, m.st, m.b, m.lease = e, 'u', '', 0 end
m.toks = live
local known, all = {}, true
for i = 6, #ARGV do
  local c = false
  if trusted then c = held(KEYS[3], ARGV[i]) or false end
  if not c then all = false end
  known[#known + 1] = c
end
local added = 0
if not all then
  live[#live + 1] = {ARGV[2], now + tonumber(ARGV[3])}
  added = 1
end
meta_put(KEYS[2], m, ARGV[5])
return {added, known}
`)

// seriesUpdateScript ends a write: its token goes and, while the series is known or
// being rebuilt, its stored candles join the set and the coverage. KEYS: epoch,
// coverage, candles. ARGV: epoch prefix, token, interval ms, key ttl ms, mode ("u"
// update, "x" the commit failed or is unknown: the series becomes unknown), then
// open time and member pairs in ascending order.
var seriesUpdateScript = redis.NewScript(luaSeries + `
local now = now_ms()
local e = redis.call('GET', KEYS[1]) or ''
local m = meta_get(KEYS[2])
if not m then return 0 end
local live, expired = prune(m.toks, now, ARGV[2])
m.toks = live
if expired or ARGV[5] == 'x' or not ours(e, ARGV[1]) or m.ep ~= e then m.st = 'u' end
if m.st == 'k' or m.st == 'b' then
  local ts = {}
  for i = 6, #ARGV, 2 do
    if not held(KEYS[3], ARGV[i]) then redis.call('ZADD', KEYS[3], ARGV[i], ARGV[i + 1]) end
    ts[#ts + 1] = tonumber(ARGV[i])
  end
  add_runs(KEYS[2], ts, tonumber(ARGV[3]))
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
end
meta_put(KEYS[2], m, ARGV[4])
return 1
`)

// seriesClaimScript starts a rebuild unless the series is known or another builder's
// lease is live: it drops the set and the coverage (keeping live write tokens).
// KEYS: epoch, coverage, candles. ARGV: epoch prefix, build id, lease ms, key ttl ms.
var seriesClaimScript = redis.NewScript(luaSeries + `
local now = now_ms()
local e = redis.call('GET', KEYS[1])
if not ours(e, ARGV[1]) then return 0 end
local m = meta_get(KEYS[2])
if m and m.ep == e and (m.st == 'k' or (m.st == 'b' and m.lease >= now)) then return 0 end
local live = {}
if m then live = prune(m.toks, now, nil) end
redis.call('UNLINK', KEYS[3], KEYS[2])
meta_put(KEYS[2], {ep = e, st = 'b', b = ARGV[2], lease = now + tonumber(ARGV[3]), toks = live}, ARGV[4])
return 1
`)

// luaClaimed checks that the caller still holds the rebuild claim and renews it.
const luaClaimed = `
local now = now_ms()
local e = redis.call('GET', KEYS[1])
local m = meta_get(KEYS[2])
if not (ours(e, ARGV[1]) and m and m.ep == e and m.st == 'b' and m.b == ARGV[2]) then return {0} end
m.lease = now + tonumber(ARGV[3])
`

// luaAllHeld ends a claimed rebuild, leaving the series unknown, when the set holds
// fewer candles than the builder loaded (ARGV[5]): Redis evicted or expired the set
// during the rebuild (it drops whole keys; nothing else removes members), so what
// the set holds is not what MongoDB holds, and a coverage computed from it would
// answer windows of the lost candles as misses.
const luaAllHeld = `
if redis.call('ZCARD', KEYS[3]) < tonumber(ARGV[5]) then
  m.st, m.b, m.lease = 'u', '', 0
  meta_put(KEYS[2], m, ARGV[4])
  return {0}
end
`

// seriesLoadScript adds a batch of MongoDB's candles during a rebuild. KEYS: epoch,
// coverage, candles. ARGV: epoch prefix, build id, lease ms, key ttl ms, candles
// loaded so far with this batch, then open time and member pairs.
var seriesLoadScript = redis.NewScript(luaSeries + luaClaimed + `
for i = 6, #ARGV, 2 do
  if not held(KEYS[3], ARGV[i]) then redis.call('ZADD', KEYS[3], ARGV[i], ARGV[i + 1]) end
end
` + luaAllHeld + `
redis.call('PEXPIRE', KEYS[3], ARGV[4])
meta_put(KEYS[2], m, ARGV[4])
return {1}
`)

// seriesWalkScript computes the coverage of the next members of the set, in order;
// the last step marks the series known (unknown if a write's token expired meanwhile).
// KEYS: epoch, coverage, candles. ARGV: epoch prefix, build id, lease ms, key ttl ms,
// candles loaded, interval ms, start (exclusive score, "-inf" first), members per
// step. Returns {1, last score} to continue, {2} when done, {0} when the claim was
// lost or the set lost candles (the series is then unknown).
var seriesWalkScript = redis.NewScript(luaSeries + luaClaimed + luaAllHeld + `
local step, n = tonumber(ARGV[6]), tonumber(ARGV[8])
local r = redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[7], '+inf', 'WITHSCORES', 'LIMIT', 0, n)
local ts = {}
for i = 2, #r, 2 do ts[#ts + 1] = tonumber(r[i]) end
add_runs(KEYS[2], ts, step)
if #r < 2 * n then
  local live, expired = prune(m.toks, now, nil)
  m.toks, m.b, m.lease = live, '', 0
  if expired then m.st = 'u' else m.st = 'k' end
  meta_put(KEYS[2], m, ARGV[4])
  return {2}
end
meta_put(KEYS[2], m, ARGV[4])
return {1, r[#r]}
`)

// seriesScripts are loaded with the record scripts at every rotation.
var seriesScripts = []*redis.Script{seriesReadScript, seriesMarkScript, seriesUpdateScript,
	seriesClaimScript, seriesLoadScript, seriesWalkScript}

// seriesKeys are the keys every series script takes.
func (c *cache) seriesKeys(parts []any) []string {
	z, cov := c.keys.candleSeries(parts)
	return []string{c.keys.epoch(), cov, z}
}

// readSeries runs the window read: one round trip.
func (c *cache) readSeries(ctx context.Context, parts []any, since, last, limit int64) (int64, []any, error) {
	v, err := c.runPipelined(ctx, seriesReadScript, c.seriesKeys(parts), c.idTag, since, last, limit, c.keyTTL())
	if err != nil {
		return 0, nil, fmt.Errorf("redis candle window: %w", err)
	}
	r, _ := v.([]any)
	if len(r) == 0 {
		return 0, nil, fmt.Errorf("redis candle window: unexpected answer %v", v)
	}
	code, _ := r[0].(int64)
	if len(r) > 1 {
		members, _ := r[1].([]any)
		return code, members, nil
	}
	return code, nil, nil
}

// runPipelined runs a read-path script through the shared pipeline when other reads
// are in flight (as mget does), loading it once if Redis lost it.
func (c *cache) runPipelined(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, error) {
	var via redis.Scripter = c.rdb
	if c.gate != nil {
		if c.gate.inflight.Add(1) > 1 {
			via = c.pipelined
			c.pipelinedReads.Add(1)
		}
		defer c.gate.inflight.Add(-1)
	}
	v, err := s.EvalSha(ctx, via, keys, args...).Result()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		v, err = s.Eval(ctx, via, keys, args...).Result()
	}
	return v, err
}

// markSeries registers a candle write before its commit. It returns the write's
// token ("" when every candle is held already, so nothing will be committed) and,
// per aligned open time, the member the series holds or nil.
func (c *cache) markSeries(ctx context.Context, parts []any, aligned []int64) (string, []any, error) {
	mctx, cancel := c.opCtx(ctx)
	defer cancel()
	token := newToken()
	args := make([]any, 0, 5+len(aligned))
	args = append(args, c.idTag, token, markerTTL.Milliseconds(), c.newEpoch(), c.keyTTL())
	for _, ts := range aligned {
		args = append(args, ts)
	}
	keys := c.seriesKeys(parts)
	v, err := c.eval(mctx, seriesMarkScript, keys, args...)
	if err != nil {
		if errors.Is(err, errFewReplicas) {
			c.endSeries(ctx, parts, token, 0, nil, false)
		}
		return "", nil, fmt.Errorf("redis candle mark: %w", err)
	}
	r, _ := v.([]any)
	if len(r) != 2 {
		return "", nil, fmt.Errorf("redis candle mark: unexpected answer %v", v)
	}
	known, _ := r[1].([]any)
	if added, _ := r[0].(int64); added == 0 {
		token = ""
	}
	return token, known, nil
}

// endSeries ends a marked write: with ok its stored candles (open time, member pairs
// in ascending order) join the series; without, the series becomes unknown.
// It runs whether or not the caller has given up meanwhile: after a commit, or after
// a failure that may have committed, the update is what keeps the series honest.
func (c *cache) endSeries(ctx context.Context, parts []any, token string, step int64, pairs []any, ok bool) error {
	ctx, cancel := c.opCtx(context.WithoutCancel(ctx))
	defer cancel()
	mode := "u"
	if !ok {
		mode = "x"
	}
	args := append([]any{c.idTag, token, step, c.keyTTL(), mode}, pairs...)
	if _, err := c.eval(ctx, seriesUpdateScript, c.seriesKeys(parts), args...); err != nil {
		return fmt.Errorf("redis candle update: %w", err)
	}
	return nil
}

// builderStep runs one rebuild script; false means the claim is gone.
func (c *cache) builderStep(ctx context.Context, s *redis.Script, parts []any, build string, extra ...any) ([]any, bool, error) {
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	args := append([]any{c.idTag, build, seriesLease.Milliseconds(), c.keyTTL()}, extra...)
	v, err := s.Run(ctx, c.rdb, c.seriesKeys(parts), args...).Result()
	if err != nil {
		return nil, false, err
	}
	switch r := v.(type) {
	case int64:
		return nil, r == 1, nil
	case []any:
		code, _ := r[0].(int64)
		return r, code != 0, nil
	}
	return nil, false, fmt.Errorf("unexpected answer %v", v)
}

// walkSeries computes the coverage of a claimed series from its set, in bounded
// steps; loaded is the number of candles the rebuild added (or found held).
func (c *cache) walkSeries(ctx context.Context, parts []any, build string, loaded, step int64) (bool, error) {
	after := "-inf"
	for {
		r, ok, err := c.builderStep(ctx, seriesWalkScript, parts, build, loaded, step, after, seriesWalkBatch)
		if err != nil || !ok {
			return false, err
		}
		if code, _ := r[0].(int64); code == 2 {
			return true, nil
		}
		last, _ := r[1].(string)
		if _, err := strconv.ParseFloat(last, 64); err != nil {
			return false, fmt.Errorf("walk: bad score %q", last)
		}
		after = "(" + last
	}
}
