package infra

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// KeySpaceRegistry is the Redis hash that records, per Redis server, which object
// owns which key prefix (field: prefix, value: "<uid>|<namespace>|<name>"). Key
// spaces are prefixes, so a marker per prefix could not see that "a:" contains
// "a:b:"; one registry checked and written by one script can. The name holds no
// ":", so no tenant prefix (which always ends in ":") matches it. On a cluster the
// registry is one key in one slot and the scripts touch only it.
const KeySpaceRegistry = "btp-owners"

// claimKeySpace claims ARGV[1] for the owner record ARGV[2] (whose UID is ARGV[3])
// unless a registered prefix equals, contains or is contained in it and belongs to
// someone else. ARGV[4], when not empty, is a record of the same prefix that may be
// replaced (an orphan being taken over). It returns {1} on success, or {0, prefix,
// record, exact} naming the conflicting claim.
var claimKeySpace = redis.NewScript(`
local prefix, record, uid, replace = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local mine = uid .. '|'
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local p, v = all[i], all[i + 1]
  if string.sub(v, 1, #mine) ~= mine then
    if p == prefix then
      if replace == '' or v ~= replace then return {0, p, v, 1} end
    elseif string.sub(p, 1, #prefix) == prefix or string.sub(prefix, 1, #p) == p then
      return {0, p, v, 0}
    end
  end
end
redis.call('HSET', KEYS[1], prefix, record)
return {1}
`)

// releaseKeySpace removes the claim of ARGV[1] when its record starts with ARGV[2] ("<uid>|").
var releaseKeySpace = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, #ARGV[2]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
`)

// KeySpaceClaim is the ownership of one key prefix on one Redis server.
type KeySpaceClaim struct {
	Client redis.UniversalClient
	Prefix string
}

// What implements Claim.
func (c KeySpaceClaim) What() Resource { return ResourceKeySpace }

// Claim implements Claim.
func (c KeySpaceClaim) Claim(ctx context.Context, owner Owner) error {
	return c.claim(ctx, owner, "")
}

// TakeOver implements Claim: the claim of exactly this prefix by from is replaced.
func (c KeySpaceClaim) TakeOver(ctx context.Context, from, to Owner) (bool, error) {
	err := c.claim(ctx, to, encodeOwner(from))
	if IsClaimed(err) {
		return false, nil
	}
	return err == nil, err
}

func (c KeySpaceClaim) claim(ctx context.Context, owner Owner, replace string) error {
	if c.Prefix == "" {
		return errors.New("claim key space: empty prefix")
	}
	res, err := claimKeySpace.Run(ctx, c.Client, []string{KeySpaceRegistry}, c.Prefix, encodeOwner(owner), owner.UID, replace).Slice()
	if err != nil {
		return fmt.Errorf("claim key prefix %q: %w", c.Prefix, err)
	}
	if len(res) > 0 && res[0] == int64(1) {
		return nil
	}
	if len(res) != 4 {
		return fmt.Errorf("claim key prefix %q: unexpected reply %v", c.Prefix, res)
	}
	record, _ := res[2].(string)
	return &ClaimedError{Resource: ResourceKeySpace, Holder: decodeOwner(record), Overlap: res[3] != int64(1)}
}

// Owner implements Claim.
func (c KeySpaceClaim) Owner(ctx context.Context) (Owner, bool, error) {
	v, err := c.Client.HGet(ctx, KeySpaceRegistry, c.Prefix).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return Owner{}, false, nil
	case err != nil:
		return Owner{}, false, fmt.Errorf("read owner of key prefix %q: %w", c.Prefix, err)
	}
	return decodeOwner(v), true, nil
}

// Release implements Claim.
func (c KeySpaceClaim) Release(ctx context.Context, owner Owner) error {
	if err := releaseKeySpace.Run(ctx, c.Client, []string{KeySpaceRegistry}, c.Prefix, owner.UID+"|").Err(); err != nil {
		return fmt.Errorf("release key prefix %q: %w", c.Prefix, err)
	}
	return nil
}

// encodeOwner is the registry record of an owner. UIDs, namespaces and names never contain "|".
func encodeOwner(o Owner) string { return o.UID + "|" + o.Namespace + "|" + o.Name }

func decodeOwner(s string) Owner {
	parts := strings.SplitN(s, "|", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return Owner{UID: parts[0], Namespace: parts[1], Name: parts[2]}
}
