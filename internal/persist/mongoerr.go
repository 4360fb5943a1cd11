package persist

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

// Server error codes that mean "the server cannot serve now", not "the request is wrong".
var unavailableCodes = []int{
	6,     // HostUnreachable
	7,     // HostNotFound
	89,    // NetworkTimeout
	91,    // ShutdownInProgress
	189,   // PrimarySteppedDown
	262,   // ExceededTimeLimit
	9001,  // SocketException
	10107, // NotWritablePrimary
	11600, // InterruptedAtShutdown
	11602, // InterruptedDueToReplStateChange
	13435, // NotPrimaryNoSecondaryOk
	13436, // NotPrimaryOrSecondary
}

// isUnavailable reports whether err means MongoDB cannot be reached or is not serving.
func isUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, mongo.ErrClientDisconnected) ||
		mongo.IsTimeout(err) || mongo.IsNetworkError(err) {
		return true
	}
	var sse topology.ServerSelectionError
	if errors.As(err, &sse) {
		return true
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		for _, c := range unavailableCodes {
			if se.HasErrorCode(c) {
				return true
			}
		}
	}
	return false
}

// wrapMongo gives a MongoDB error its context and class.
func wrapMongo(c *call, what string, err error) error {
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrTooLarge) {
		return err
	}
	if isUnavailable(err) {
		return fmt.Errorf("%w: %s %s: %s: %v", ErrUnavailable, c.spec.Kind, c.req.Op, what, err)
	}
	return fmt.Errorf("%s %s: %s: %w", c.spec.Kind, c.req.Op, what, err)
}

// isUpsertConflict reports a duplicate-key race on an upsert. MongoDB says 11000;
// FerretDB says 11000 for concurrent inserts and InternalError (1) when an update
// collides with the unique index (FERRETDB.md, item 1).
func isUpsertConflict(err error) bool {
	if mongo.IsDuplicateKeyError(err) {
		return true
	}
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(1)
}

// maxUpsertAttempts bounds duplicate-key retries; one retry always sufficed in measurements.
const maxUpsertAttempts = 6

// retryUpsert runs f again while it fails with a duplicate-key race, never surfacing the race.
func retryUpsert(ctx context.Context, retries *atomic.Int64, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || !isUpsertConflict(err) || attempt >= maxUpsertAttempts {
			return err
		}
		retries.Add(1)
		if sleepCtx(ctx, time.Duration(attempt)*time.Millisecond) != nil {
			return err
		}
	}
}

// sleepCtx waits d or until ctx ends (the pause of a retry).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
