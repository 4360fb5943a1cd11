package testenv

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// The fault tests kill servers on purpose: go-redis's reports of refused
// connections would drown the test output.
func init() { redis.SetLogger(quietRedis{}) }

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...interface{}) {}
