package persist

import (
	"context"
	"net"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/event"
)

// CommandCounter counts round trips to MongoDB and Redis, so tests can assert how
// many an operation costs and metrics can expose them. Install it where the
// clients are made: Monitor() in the MongoDB client options, Hook() with AddHook on
// the Redis client.
type CommandCounter struct {
	mongo      atomic.Int64
	mongoWrite atomic.Int64
	redis      atomic.Int64

	mu       sync.Mutex
	mongoCmd map[string]int64
}

// NewCommandCounter returns a zeroed counter.
func NewCommandCounter() *CommandCounter {
	return &CommandCounter{mongoCmd: map[string]int64{}}
}

// mongoWriteCommands are the commands that change documents.
var mongoWriteCommands = map[string]bool{"insert": true, "update": true, "delete": true, "findAndModify": true, "bulkWrite": true}

// Monitor is a MongoDB command monitor that counts started commands.
func (c *CommandCounter) Monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		c.mongo.Add(1)
		if mongoWriteCommands[e.CommandName] {
			c.mongoWrite.Add(1)
		}
		c.mu.Lock()
		c.mongoCmd[e.CommandName]++
		c.mu.Unlock()
	}}
}

// Hook is a go-redis hook that counts round trips: one per command, one per pipeline.
func (c *CommandCounter) Hook() redis.Hook { return counterHook{c} }

// Counts is a snapshot of a CommandCounter.
type Counts struct {
	Mongo      int64            // MongoDB commands
	MongoWrite int64            // of which insert, update, delete, findAndModify
	Redis      int64            // Redis round trips
	MongoByCmd map[string]int64 // MongoDB commands by name
}

// Snapshot returns the counts so far.
func (c *CommandCounter) Snapshot() Counts {
	c.mu.Lock()
	by := make(map[string]int64, len(c.mongoCmd))
	for k, v := range c.mongoCmd {
		by[k] = v
	}
	c.mu.Unlock()
	return Counts{Mongo: c.mongo.Load(), MongoWrite: c.mongoWrite.Load(), Redis: c.redis.Load(), MongoByCmd: by}
}

// Sub returns the counts accumulated since an earlier snapshot.
func (a Counts) Sub(b Counts) Counts {
	by := map[string]int64{}
	for k, v := range a.MongoByCmd {
		if d := v - b.MongoByCmd[k]; d != 0 {
			by[k] = d
		}
	}
	return Counts{Mongo: a.Mongo - b.Mongo, MongoWrite: a.MongoWrite - b.MongoWrite, Redis: a.Redis - b.Redis, MongoByCmd: by}
}

type counterHook struct{ c *CommandCounter }

func (h counterHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h counterHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.c.redis.Add(1)
		return next(ctx, cmd)
	}
}

func (h counterHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.c.redis.Add(1)
		return next(ctx, cmds)
	}
}
