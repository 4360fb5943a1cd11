package persist

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// List hashes (R10 under R4). The Redis hash P{T}:h:<kind>:<ctx> maps item ids to
// the content hash MongoDB holds for them; a write skips an item whose hash matches.
// A skip is only safe while every present field equals what MongoDB holds, so:
//
//   - The field "" (never an item id) holds "<epoch>|<gen>|<token>=<expiry>,...": the
//     epoch the hash was built under, a generation bumped by every write, and the
//     tokens of writes in flight. A hash of another epoch is not used.
//   - Before committing changed items, a write runs listMarkScript: it deletes those
//     items' fields, bumps the generation and adds its token. If that fails, the write
//     does not commit (ErrUnavailable): another replica may be skipping by that hash.
//   - After the commit, listStoreScript removes the token and stores the new hashes
//     only if no other write marked the hash since (same generation) and none is in
//     flight; otherwise the fields stay absent and the next write of those items goes
//     to MongoDB. A failure here leaves the fields absent too: the write is
//     acknowledged, since nothing can then be skipped wrongly.

// listMetaField is the field of a list-hash key that holds its epoch, generation and
// the tokens of writes in flight; item ids are never empty, so it cannot collide.
const listMetaField = ""

// luaListCommon parses the meta field.
const luaListCommon = luaCommon + `
local function meta_parse(m)
  if not m then return '', 0, {} end
  local ep, gen, list = string.match(m, '^([^|]*)|(%d+)|(.*)$')
  if not ep then return m, 0, {} end
  local toks = {}
  for tok, exp in string.gmatch(list, '([^=,]+)=(%d+)') do toks[#toks + 1] = {tok, tonumber(exp)} end
  return ep, tonumber(gen), toks
end
`

// listMarkScript runs before a commit of changed items. KEYS: hash. ARGV: token,
// marker ttl ms, key ttl ms, item ids... Returns the new generation.
var listMarkScript = redis.NewScript(luaListCommon + `
local now = now_ms()
local ep, gen, toks = meta_parse(redis.call('HGET', KEYS[1], ''))
local live = prune(toks, now, ARGV[1])
live[#live + 1] = {ARGV[1], now + tonumber(ARGV[2])}
gen = gen + 1
for i = 4, #ARGV, 500 do
  redis.call('HDEL', KEYS[1], unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
redis.call('HSET', KEYS[1], '', ep .. '|' .. string.format('%d', gen) .. '|' .. join(live))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return gen
`)

// listStoreScript runs after a commit (or a rebuild from MongoDB). KEYS: epoch, hash.
// ARGV: token ("" for a rebuild), expected generation ("" = the hash was missing),
// epoch, reset ("1" rebuilds the hash), key ttl ms, id, hash, id, hash...
var listStoreScript = redis.NewScript(luaListCommon + `
local now = now_ms()
local m = redis.call('HGET', KEYS[2], '')
local ep, gen, toks = meta_parse(m)
local live = prune(toks, now, ARGV[1])
local curgen = ''
if m then curgen = string.format('%d', gen) end
if curgen == ARGV[2] and #live == 0 and redis.call('GET', KEYS[1]) == ARGV[3] then
  if ARGV[4] == '1' then redis.call('DEL', KEYS[2]) end
  redis.call('HSET', KEYS[2], '', ARGV[3] .. '|' .. string.format('%d', gen) .. '|')
  for i = 6, #ARGV, 1000 do
    redis.call('HSET', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  return 1
end
if m then redis.call('HSET', KEYS[2], '', ep .. '|' .. string.format('%d', gen) .. '|' .. join(live)) end
return 0
`)

// listState is what a write learned from a list hash.
type listState struct {
	epoch  string            // the current epoch ("" when missing or of another identity)
	gen    string            // the hash's generation ("" when the hash is missing)
	known  bool              // the hash was built under the current epoch: hashes may be trusted
	hashes map[string]string // the stored hashes of the asked ids that are present
}

// listLookup fetches the epoch and the stored content hashes of ids in one pipelined
// round trip.
func (c *cache) listLookup(ctx context.Context, key string, ids []string) (listState, error) {
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	fields := make([]string, 0, len(ids)+1)
	fields = append(fields, listMetaField)
	fields = append(fields, ids...)
	pipe := c.rdb.Pipeline()
	eg := pipe.Get(ctx, c.keys.epoch())
	hm := pipe.HMGet(ctx, key, fields...)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return listState{}, fmt.Errorf("redis list hashes: %w", err)
	}
	var st listState
	if e := eg.Val(); c.ours(e) {
		st.epoch = e
	}
	vals := hm.Val()
	if len(vals) != len(fields) {
		return st, nil
	}
	meta, present := vals[0].(string)
	if !present {
		return st, nil
	}
	ep, rest, _ := strings.Cut(meta, "|")
	st.gen = "0"
	if g, _, ok := strings.Cut(rest, "|"); ok {
		st.gen = g
	}
	if st.epoch == "" || ep != st.epoch {
		return st, nil
	}
	st.known = true
	st.hashes = make(map[string]string, len(ids))
	for i, id := range ids {
		if h, ok := vals[i+1].(string); ok {
			st.hashes[id] = h
		}
	}
	return st, nil
}

// listMark runs before committing changed items and returns the new generation.
func (c *cache) listMark(ctx context.Context, key, token string, ids []string) (string, error) {
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	args := make([]any, 0, len(ids)+3)
	args = append(args, token, markerTTL.Milliseconds(), c.keyTTL())
	for _, id := range ids {
		args = append(args, id)
	}
	v, err := c.eval(ctx, listMarkScript, []string{key}, args...)
	if err != nil {
		return "", fmt.Errorf("redis list mark: %w", err)
	}
	n, _ := v.(int64)
	return strconv.FormatInt(n, 10), nil
}

// listStore records hashes after a commit or a rebuild; it stores nothing unless the
// hash is still at generation gen with no write in flight.
func (c *cache) listStore(ctx context.Context, key, token, gen, epoch string, reset bool, hashes map[string]string) error {
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	r := "0"
	if reset {
		r = "1"
	}
	args := make([]any, 0, 2*len(hashes)+5)
	args = append(args, token, gen, epoch, r, c.keyTTL())
	for id, h := range hashes {
		args = append(args, id, h)
	}
	if _, err := c.eval(ctx, listStoreScript, []string{c.keys.epoch(), key}, args...); err != nil {
		return fmt.Errorf("redis store list hashes: %w", err)
	}
	return nil
}
