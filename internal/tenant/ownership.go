package tenant

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/backtestpersistence/operator/internal/infra"
)

// ReasonDataNotOwned: the ownership records in the data do not name the tenant, so
// its store is not opened whatever its conditions say (for example right after a
// rotated Secret pointed it at another server, before the controller checked there).
const ReasonDataNotOwned = "DataNotOwned"

// redisOwnerTimeout bounds the read of the key-space claim when a store is opened.
const redisOwnerTimeout = 2 * time.Second

// verifyOwnership reads the ownership records (it never writes them: claiming is
// the controller's) and refuses a database whose marker does not name uid, or a key
// space claimed by someone else. A key space without a claim, or a Redis that does
// not answer, is not a refusal: Redis is a cache whose contents (the registry too) may
// be lost in a restart, the owner claims again on its next reconcile, and the DataOwned
// condition the registry requires says the controller verified the claim.
func verifyOwnership(ctx context.Context, db *mongo.Database, rc redis.UniversalClient, prefix, uid string) error {
	o, found, err := infra.DatabaseClaim{DB: db}.Owner(ctx)
	if err != nil {
		return err
	}
	if !found || o.UID != uid {
		return &UnavailableError{Reason: ReasonDataNotOwned, Message: "the database is not owned by this BacktestPersistence"}
	}
	if rc == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, redisOwnerTimeout)
	defer cancel()
	o, found, err = infra.KeySpaceClaim{Client: rc, Prefix: prefix}.Owner(rctx)
	if err == nil && found && o.UID != uid {
		return &UnavailableError{Reason: ReasonDataNotOwned, Message: "the Redis key space is not owned by this BacktestPersistence"}
	}
	return nil
}
