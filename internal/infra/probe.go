package infra

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// ProbeMongo checks that the server answers with the client's credentials and returns
// its version. Classify the error for a condition reason. ctx should carry a deadline.
//
// A network error on a pooled connection is retried once: after a server restart
// every pooled connection is dead, the first command finds out and the driver clears
// the pool, so the retry tells whether the server itself is down.
func ProbeMongo(ctx context.Context, c *mongo.Client) (string, error) {
	version, err := buildInfo(ctx, c)
	if err != nil && mongo.IsNetworkError(err) && !mongo.IsTimeout(err) && ctx.Err() == nil {
		version, err = buildInfo(ctx, c)
	}
	if err != nil {
		return "", fmt.Errorf("mongo buildInfo: %w", err)
	}
	return version, nil
}

func buildInfo(ctx context.Context, c *mongo.Client) (string, error) {
	var info struct {
		Version string `bson:"version"`
	}
	// buildInfo needs no privileges but, on a fresh connection, forces authentication.
	err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info)
	return info.Version, err
}

// ProbeRedis checks that the server answers with the client's credentials and returns
// its version. Classify the error for a condition reason. ctx should carry a deadline.
func ProbeRedis(ctx context.Context, c redis.UniversalClient) (string, error) {
	if err := c.Ping(ctx).Err(); err != nil {
		return "", fmt.Errorf("redis ping: %w", err)
	}
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return "", fmt.Errorf("redis info: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v, nil
		}
	}
	return "", nil
}
