package persist

import (
	"hash/fnv"
	"strconv"
	"strings"
)

// Redis key layout of a tenant (P = Options.KeyPrefix, T = a hash tag derived from P):
//
//	P{T}:e                               the cache epoch (see cache.go)
//	P{T}:r:<kind>:<part>:<part>...       one record (value, version, epoch)
//	P{T}:h:<kind>:<part>...              content hashes of a list's items (Redis hash)
//	P{T}:cz:<exchange>:<symbol>:<interval>   a candle series: sorted set, score = open time
//	P{T}:cv:<exchange>:<symbol>:<interval>   its coverage and state (candleseries.go)
//
// Parts are escaped ("%" → "%25", ":" → "%3A"), so a part never contains the
// separator and distinct keys never share a Redis key. Booleans are "1"/"0"; each
// kind has a fixed number of parts of fixed types, so parts never shift. The hash
// tag puts all of a tenant's keys in one cluster slot, which lets a read fetch the
// epoch and the value with one MGET on Redis Cluster too.

// redisKeys builds the Redis keys of one tenant.
type redisKeys struct {
	base      string // P{T}:
	epochName string // P{T}:e
}

func newRedisKeys(prefix string) redisKeys {
	h := fnv.New32a()
	_, _ = h.Write([]byte(prefix))
	base := prefix + "{" + strconv.FormatUint(uint64(h.Sum32()), 36) + "}:"
	return redisKeys{base: base, epochName: base + "e"}
}

func (k redisKeys) epoch() string { return k.epochName }

// record is the key of one record, from its key values in KindSpec.Key order (+ item).
func (k redisKeys) record(kind Kind, parts []any) string { return k.ofKind("r:", kind, parts) }

// listHashes is the key of the content hashes of a list context (a Redis hash: item id → hash).
func (k redisKeys) listHashes(kind Kind, parts []any) string { return k.ofKind("h:", kind, parts) }

// ofKind builds P{T}:<tag><kind>:<part>:<part>...
func (k redisKeys) ofKind(tag string, kind Kind, parts []any) string {
	var b strings.Builder
	b.Grow(len(k.base) + 32)
	b.WriteString(k.base)
	b.WriteString(tag)
	b.WriteString(string(kind))
	for _, p := range parts {
		b.WriteByte(':')
		writeKeyPart(&b, p)
	}
	return b.String()
}

// candleSeries returns the keys of a candle series: its sorted set of candles and
// its coverage. Both carry the tenant's hash tag, so one script can use both (and
// the epoch) on Redis Cluster.
func (k redisKeys) candleSeries(parts []any) (candles, coverage string) {
	return k.ofParts("cz", parts), k.ofParts("cv", parts)
}

// ofParts builds P{T}:<tag>:<part>:<part>...
func (k redisKeys) ofParts(tag string, parts []any) string {
	var b strings.Builder
	b.Grow(len(k.base) + 40)
	b.WriteString(k.base)
	b.WriteString(tag)
	for _, p := range parts {
		b.WriteByte(':')
		writeKeyPart(&b, p)
	}
	return b.String()
}

func writeKeyPart(b *strings.Builder, p any) {
	switch v := p.(type) {
	case bool:
		if v {
			b.WriteByte('1')
		} else {
			b.WriteByte('0')
		}
	case string:
		b.WriteString(escapeKeyPart(v))
	}
}

// escapeKeyPart escapes one key part so that it never contains ':'.
func escapeKeyPart(s string) string {
	if strings.IndexByte(s, ':') < 0 && strings.IndexByte(s, '%') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '%':
			b.WriteString("%25")
		case ':':
			b.WriteString("%3A")
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
