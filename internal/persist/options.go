package persist

import (
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Defaults of Options.
const (
	DefaultCacheTTL        = 24 * time.Hour
	DefaultOpTimeout       = 5 * time.Second
	DefaultCacheTimeout    = 500 * time.Millisecond
	DefaultHealthInterval  = 5 * time.Second
	DefaultMaxPayloadBytes = 4 << 20
	DefaultMaxKeyBytes     = 512
	DefaultMaxListItems    = 100_000
	// DefaultMaxListWriteItems is the most items a whole-list write may hold: 10x the
	// consumer's largest cap (1,000 log lines) and twice the 5,000 notifications
	// @backtest-kit/cli keeps.
	DefaultMaxListWriteItems = 10_000
)

// Options configure a Store. Only Database is required.
type Options struct {
	// Database is the tenant's MongoDB database (source of truth). Its client should
	// keep maxPoolSize well under the server's own pool (FerretDB wedges otherwise).
	Database *mongo.Database
	// Redis is the cache; nil turns the cache off. It may be shared with other stores.
	Redis redis.UniversalClient
	// KeyPrefix starts every Redis key of the tenant.
	KeyPrefix string
	// CacheIdentity names what the cache fronts (the MongoDB endpoint and database);
	// "" means the database name. Stores of different identities that share a
	// KeyPrefix never serve each other's entries. It is hashed, never stored as is.
	CacheIdentity string
	// CacheTTL is the expiry of cached values; 0 means DefaultCacheTTL.
	CacheTTL time.Duration
	// OpTimeout bounds one operation (MongoDB and Redis together); 0 means DefaultOpTimeout.
	OpTimeout time.Duration
	// CacheTimeout bounds each Redis write, fill and health check; 0 means DefaultCacheTimeout.
	// Cache lookups on the read path use no timer of their own: give the Redis client a
	// short ReadTimeout (e.g. 500ms) so a hung Redis costs one read that much, after
	// which the cache is marked suspect and reads go straight to MongoDB.
	CacheTimeout time.Duration
	// HealthInterval is how often the store checks the Redis run id (restart or failover
	// with old data); 0 means DefaultHealthInterval, negative turns the check off.
	HealthInterval time.Duration
	// MaxPayloadBytes limits a request's JSON value; 0 means DefaultMaxPayloadBytes.
	MaxPayloadBytes int
	// MaxKeyBytes limits each key part and list item id; 0 means DefaultMaxKeyBytes.
	MaxKeyBytes int
	// MaxListItems limits what a Measure, Interval or Memory list returns; more is an
	// error, never a silent cut. 0 means DefaultMaxListItems.
	MaxListItems int
	// MaxListWriteItems limits the items of one whole-list write (Storage,
	// Notification, Log), and is raised to twice a kind's window where that is more;
	// 0 means DefaultMaxListWriteItems. A write of more is refused (too large) before
	// anything is written: each new item is one upsert under the list's lock.
	MaxListWriteItems int
	// ListWindows sets, per list kind (Storage, Notification, Log), how many items a
	// read returns: the items of highest sort field (KindSpec.Head). Missing kinds use
	// the consumer's cap (50, 500, 1000), which is also the lowest accepted value.
	ListWindows map[Kind]int
	// HeadRebuildTimeout bounds the rebuild of a list head from the stored items
	// (adopted databases, a raised window); 0 means DefaultHeadRebuildTimeout.
	HeadRebuildTimeout time.Duration
	// Kinds are the kinds served; nil means all of them (the table Kinds).
	Kinds []Kind
	// Now is the wall clock for candle completeness; nil means time.Now.
	Now func() time.Time
	// Observer, when set, is told the outcome of every Do.
	Observer Observer
	// SkipIndexes stops Init from creating missing unique and list indexes
	// (when the index migration owns them exclusively).
	SkipIndexes bool
}

// Observer receives one call per operation, for metrics.
type Observer interface {
	// Observe reports an operation: its kind and op, how long it took, its error (nil on
	// success) and whether a cache hit served it.
	Observe(kind Kind, op Op, d time.Duration, err error, cacheHit bool)
}

// withDefaults returns o with zero fields replaced by defaults.
func (o Options) withDefaults() Options {
	if o.CacheTTL <= 0 {
		o.CacheTTL = DefaultCacheTTL
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = DefaultOpTimeout
	}
	if o.CacheTimeout <= 0 {
		o.CacheTimeout = DefaultCacheTimeout
	}
	if o.CacheTimeout > o.OpTimeout {
		o.CacheTimeout = o.OpTimeout
	}
	if o.HealthInterval == 0 {
		o.HealthInterval = DefaultHealthInterval
	}
	if o.MaxPayloadBytes <= 0 {
		o.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if o.MaxKeyBytes <= 0 {
		o.MaxKeyBytes = DefaultMaxKeyBytes
	}
	if o.MaxListWriteItems <= 0 {
		o.MaxListWriteItems = DefaultMaxListWriteItems
	}
	if o.MaxListItems <= 0 {
		o.MaxListItems = DefaultMaxListItems
	}
	if o.HeadRebuildTimeout <= 0 {
		o.HeadRebuildTimeout = DefaultHeadRebuildTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
