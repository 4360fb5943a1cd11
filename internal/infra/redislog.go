package infra

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
)

// redisLogger sends go-redis's background messages (failed dials, pool errors) to a
// logr logger at debug level: connection state is reported through conditions and
// request errors, not as free-form lines on stderr.
type redisLogger struct{ log logr.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.V(1).Info(fmt.Sprintf(format, v...))
}

// RouteRedisLogs makes go-redis log through log (process-wide).
func RouteRedisLogs(log logr.Logger) { redis.SetLogger(redisLogger{log: log}) }
