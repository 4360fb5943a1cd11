package infra

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
)

// ParseMongoURI validates a mongodb:// or mongodb+srv:// connection string and returns
// the client options it describes. Errors are *InvalidURIError, except that a
// mongodb+srv:// name that cannot be resolved is an unreachable server, not a bad URI.
func ParseMongoURI(uri string) (*options.ClientOptions, error) {
	return mongoClientOptions(uri, options.Client())
}

// mongoClientOptions applies uri over base, so settings in the URI win over base's defaults.
func mongoClientOptions(uri string, base *options.ClientOptions) (*options.ClientOptions, error) {
	uri = strings.TrimSpace(uri)
	if !strings.HasPrefix(uri, "mongodb://") && !strings.HasPrefix(uri, "mongodb+srv://") {
		return nil, &InvalidURIError{What: "mongo URI", Reason: `scheme must be "mongodb://" or "mongodb+srv://"`}
	}
	opts := base.ApplyURI(uri)
	if err := opts.Validate(); err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			return nil, &UnreachableError{What: "mongo", Err: err}
		}
		return nil, &InvalidURIError{What: "mongo URI", Reason: redact(err.Error(), uri)}
	}
	if len(opts.Hosts) == 0 {
		return nil, &InvalidURIError{What: "mongo URI", Reason: "no host"}
	}
	// The store's promise rests on reading the primary and on acknowledged writes:
	// a secondary may lag behind a write just acknowledged (a read, or a series
	// rebuild, would miss it), and an unacknowledged write reports nothing, not even
	// that another writer's candle was kept.
	if rp := opts.ReadPreference; rp != nil && rp.Mode() != readpref.PrimaryMode {
		return nil, &InvalidURIError{What: "mongo URI", Reason: fmt.Sprintf("readPreference=%s: the store reads from the primary only (a secondary may miss writes just acknowledged)", rp.Mode())}
	}
	if wc := opts.WriteConcern; wc != nil && !wc.Acknowledged() {
		return nil, &InvalidURIError{What: "mongo URI", Reason: "w=0: the store needs acknowledged writes"}
	}
	return opts, nil
}

// Scheme variants accepted for Redis besides redis:// and rediss://.
const (
	schemeRedisCluster   = "+cluster"  // redis+cluster://, rediss+cluster://: cluster even with one seed address
	schemeRedisSentinel  = "+sentinel" // redis+sentinel://, rediss+sentinel://: sentinel; needs master_name
	paramRedisMasterName = "master_name"
	paramRedisAddr       = "addr"
)

// ParseRedisURL validates a Redis URL and returns the universal client options it
// describes. Forms:
//
//	redis://[user:password@]host:port[/db]           one server (rediss:// for TLS)
//	redis://...@sentinel:26379?master_name=m&addr=s2:26379 Sentinel (also redis+sentinel://)
//	redis://...@node1:6379?addr=node2:6379&addr=node3:6379  Cluster (also redis+cluster:// with one seed)
//
// Errors are *InvalidURIError.
func ParseRedisURL(raw string) (*redis.UniversalOptions, error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil {
		return nil, &InvalidURIError{What: "redis URL", Reason: "cannot parse"}
	}
	scheme, mode, _ := strings.Cut(u.Scheme, "+")
	if scheme != "redis" && scheme != "rediss" {
		return nil, &InvalidURIError{What: "redis URL", Reason: `scheme must be "redis://" or "rediss://"`}
	}
	if mode != "" && "+"+mode != schemeRedisCluster && "+"+mode != schemeRedisSentinel {
		return nil, &InvalidURIError{What: "redis URL", Reason: fmt.Sprintf("unknown scheme variant %q", mode)}
	}
	if u.Hostname() == "" {
		return nil, &InvalidURIError{What: "redis URL", Reason: "no host"}
	}
	u.Scheme = scheme
	q := u.Query()
	sentinel := "+"+mode == schemeRedisSentinel || q.Has(paramRedisMasterName)
	cluster := !sentinel && ("+"+mode == schemeRedisCluster || q.Has(paramRedisAddr))

	var out *redis.UniversalOptions
	switch {
	case sentinel:
		if q.Get(paramRedisMasterName) == "" {
			return nil, &InvalidURIError{What: "redis URL", Reason: "sentinel URL needs master_name"}
		}
		o, err := redis.ParseFailoverURL(u.String())
		if err != nil {
			return nil, &InvalidURIError{What: "redis URL", Reason: redact(err.Error(), raw)}
		}
		out = &redis.UniversalOptions{
			Addrs: o.SentinelAddrs, MasterName: o.MasterName, DB: o.DB,
			Username: o.Username, Password: o.Password,
			SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword,
			Protocol: o.Protocol, ClientName: o.ClientName, TLSConfig: o.TLSConfig,
			MaxRetries: o.MaxRetries, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout,
			WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize, MinIdleConns: o.MinIdleConns,
			MaxIdleConns: o.MaxIdleConns, PoolTimeout: o.PoolTimeout,
			RouteByLatency: o.RouteByLatency, RouteRandomly: o.RouteRandomly,
		}
	case cluster:
		o, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, &InvalidURIError{What: "redis URL", Reason: redact(err.Error(), raw)}
		}
		out = &redis.UniversalOptions{
			Addrs: o.Addrs, IsClusterMode: true,
			Username: o.Username, Password: o.Password,
			Protocol: o.Protocol, ClientName: o.ClientName, TLSConfig: o.TLSConfig,
			MaxRetries: o.MaxRetries, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout,
			WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize, MinIdleConns: o.MinIdleConns,
			MaxIdleConns: o.MaxIdleConns, PoolTimeout: o.PoolTimeout, MaxRedirects: o.MaxRedirects,
			ReadOnly: o.ReadOnly, RouteByLatency: o.RouteByLatency, RouteRandomly: o.RouteRandomly,
		}
	default:
		o, err := redis.ParseURL(u.String())
		if err != nil {
			return nil, &InvalidURIError{What: "redis URL", Reason: redact(err.Error(), raw)}
		}
		out = &redis.UniversalOptions{
			Addrs: []string{o.Addr}, DB: o.DB,
			Username: o.Username, Password: o.Password,
			Protocol: o.Protocol, ClientName: o.ClientName, TLSConfig: o.TLSConfig,
			MaxRetries: o.MaxRetries, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout,
			WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize, MinIdleConns: o.MinIdleConns,
			MaxIdleConns: o.MaxIdleConns, PoolTimeout: o.PoolTimeout,
		}
	}
	return out, nil
}

// redact removes a connection string (which may carry a password) from a message.
func redact(msg, uri string) string {
	if uri != "" {
		msg = strings.ReplaceAll(msg, uri, "<redacted>")
	}
	return msg
}
