package infra

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// DropDatabase drops a tenant's database.
func DropDatabase(ctx context.Context, c *mongo.Client, name string) error {
	if err := c.Database(name).Drop(ctx); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// scanBatch is the COUNT hint of SCAN and the size of each UNLINK.
const scanBatch = 500

// DeleteKeysWithPrefix removes every key starting with prefix, walking the key space
// with SCAN (on every master of a cluster) and unlinking in batches; it never
// flushes a database, so other tenants on the same Redis keep their keys. It returns
// the number of keys removed. An empty prefix is refused.
func DeleteKeysWithPrefix(ctx context.Context, c redis.UniversalClient, prefix string) (int64, error) {
	if prefix == "" {
		return 0, fmt.Errorf("refusing to delete redis keys with an empty prefix")
	}
	pattern := escapeGlob(prefix) + "*"
	if cc, ok := c.(*redis.ClusterClient); ok {
		var total atomic.Int64 // ForEachMaster visits the masters concurrently
		err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			n, err := deleteMatching(ctx, node, pattern)
			total.Add(n)
			return err
		})
		return total.Load(), err
	}
	return deleteMatching(ctx, c, pattern)
}

func deleteMatching(ctx context.Context, c redis.Cmdable, pattern string) (int64, error) {
	var cursor uint64
	var total int64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, scanBatch).Result()
		if err != nil {
			return total, fmt.Errorf("scan %q: %w", pattern, err)
		}
		if len(keys) > 0 {
			n, err := c.Unlink(ctx, keys...).Result()
			if err != nil {
				return total, fmt.Errorf("unlink %d keys: %w", len(keys), err)
			}
			total += n
		}
		if next == 0 {
			return total, nil
		}
		cursor = next
	}
}

// escapeGlob escapes the characters SCAN MATCH treats as pattern syntax.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\', '^':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
