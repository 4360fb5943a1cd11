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
func ProbeMongo(ctx context.Context, c *mongo.Client) (string, error) {
	var info struct {
		Version string `bson:"version"`
	}
	// buildInfo needs no privileges but, on a fresh connection, forces authentication.
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return "", fmt.Errorf("mongo buildInfo: %w", err)
	}
	return info.Version, nil
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
