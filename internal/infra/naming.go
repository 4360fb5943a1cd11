package infra

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"

	v1 "github.com/backtestpersistence/operator/api/v1"
)

// maxDatabaseName is the longest database name used: MongoDB allows 63 bytes
// and FerretDB on PostgreSQL the same (it maps a database to a schema).
const maxDatabaseName = 63

// DatabaseName is the MongoDB database of the tenant: spec.mongo.database, or
// "<namespace>_<name>" made safe. Kubernetes names never contain "_", so the
// derived names of distinct objects never collide; a name too long for MongoDB
// is cut and suffixed with a hash of the full name to stay unique.
func DatabaseName(obj *v1.BacktestPersistence) string {
	if obj.Spec.Mongo.Database != "" {
		return obj.Spec.Mongo.Database
	}
	return deriveDatabaseName(obj.Namespace, obj.Name)
}

func deriveDatabaseName(namespace, name string) string {
	full := namespace + "_" + name
	var b strings.Builder
	for _, r := range full {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default: // "." in object names; MongoDB forbids it in database names
			b.WriteByte('-')
		}
	}
	safe := b.String()
	if len(safe) <= maxDatabaseName && safe == full {
		return safe
	}
	// Replacing characters could make two names equal; a hash of the original keeps them apart.
	sum := sha256.Sum256([]byte(full))
	suffix := "-" + hex.EncodeToString(sum[:])[:10]
	if len(safe) > maxDatabaseName-len(suffix) {
		safe = safe[:maxDatabaseName-len(suffix)]
	}
	return safe + suffix
}

// KeyPrefix is the Redis key prefix of the tenant, always ending in ":": spec.redis.keyPrefix
// (with ":" appended when missing), or "btp:<uid>:" derived from the object's UID, which
// never changes and is unique in the cluster. The separator matters: a prefix scan for
// "a:" cannot match the keys of a tenant whose prefix is "ab:".
func KeyPrefix(obj *v1.BacktestPersistence) string {
	p := obj.Spec.Redis.KeyPrefix
	if p == "" {
		p = "btp:" + string(obj.UID)
	}
	if !strings.HasSuffix(p, ":") {
		p += ":"
	}
	return p
}

// CacheIdentity names what a tenant's cache fronts: the MongoDB endpoint (its hosts
// and options, without credentials, so a rotated password keeps it) and the database.
// Stores of different identities never serve each other's cache entries, so every
// store of one tenant (the gateway's, the controller's) must be opened with this one.
func CacheIdentity(mongoURI, database string) string {
	endpoint := mongoURI
	if u, err := url.Parse(mongoURI); err == nil {
		u.User = nil
		endpoint = u.String()
	}
	return endpoint + "\x00" + database
}
