package persist

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Writes of a versioned document (a record) are compare-and-set on its version: a
// write names the version it follows, and its update increments it. A write whose
// answer was lost (a timeout, a cut connection) may still be applied later: its
// bytes wait in a socket of a stopped server or on a stalled network path, and the
// server runs it when it resumes, after the writer has moved on. Unconditional, such
// a late write overwrote the value of a later write that had been acknowledged
// (measured on FerretDB stopped with SIGSTOP: the late write won a third of the
// races), and the stale value came back once the cache entry was gone. Named by its
// version, a late write finds the document moved on and changes nothing.
//
// The version a write follows comes from what the process knows (the cache entry
// its marker replaced, or the version its last write of the key set); when it does
// not know, the write first assumes the document absent. A write that finds another
// version reads the stored one and tries again: each such miss means another write
// was applied, so the loop makes progress, and it is bounded.
//
// FerretDB does not evaluate a filter and apply an update atomically (FERRETDB.md,
// item 2): a late write that runs at the same moment as the next write of its key
// can still win. So the command of a write also outlives its caller: when the
// caller gives up, the write answers "may have been applied" at once, while the
// command runs on (at most settleTimeout) holding the key's lock and marker. The
// process's next write of the key runs after it, never beside it, and the cache
// takes the late write's outcome (its entry, or unknown) only when it is known.

// versionUnknown is the hint of a writer that knows no version of the document.
const versionUnknown int64 = -1

// maxVersionAttempts bounds the attempts of one compare-and-set write. Writers of
// one key in several processes take turns: from the third attempt a write waits a
// random while (up to a millisecond per attempt) before it reads the version again.
const maxVersionAttempts = 32

// settleTimeout bounds how long a write's command may run after its caller gave up:
// well within markerTTL, so the marker it holds is still live when it ends.
const settleTimeout = markerTTL / 2

// errNotStarted is the outcome handed to finish of a commit that never started.
var errNotStarted = errors.New("the write's commit did not start")

// errCommitPanicked is the outcome of a commit that panicked after its caller left.
var errCommitPanicked = errors.New("the write's commit panicked")

// errVersionContention: a write kept finding the document moved on.
var errVersionContention = errors.New("the document kept changing under concurrent writes")

// versionedWrite applies update (which must increment fieldVersion) to the document
// of filter at the version it follows (hint), and returns the document after it,
// projected by proj. With upsert an absent document is created; without, an absent
// document answers mongo.ErrNoDocuments.
// caller is the context of the write's caller: once it has ended, no new attempt
// starts.
func (s *Store) versionedWrite(ctx, caller context.Context, coll *mongo.Collection, filter, update bson.D, hint int64, upsert bool, proj bson.D) (bson.Raw, error) {
	expected := hint
	if expected < 0 {
		expected = 0
	}
	for attempt := 1; ; attempt++ {
		if attempt > 1 && caller.Err() != nil {
			return nil, caller.Err() // no attempt after the caller left
		}
		f := append(append(bson.D{}, filter...), versionIs(expected))
		raw, err := s.findAndModify(ctx, coll, f, update, upsert && expected == 0, proj)
		// No match: another version is stored (an upsert's insert then collides with
		// the unique index), or the document is gone.
		if err == nil || !(errors.Is(err, mongo.ErrNoDocuments) || isUpsertConflict(err)) {
			return raw, err
		}
		if attempt >= maxVersionAttempts {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, errVersionContention)
		}
		s.upsertRetries.Add(1)
		if attempt > 2 {
			if err := sleepCtx(caller, rand.N(time.Duration(attempt)*time.Millisecond)); err != nil {
				return nil, err
			}
		}
		v, found, rerr := s.storedVersion(ctx, coll, filter)
		switch {
		case rerr != nil:
			return nil, rerr
		case !found && !upsert:
			return nil, mongo.ErrNoDocuments
		case !found:
			expected = 0
		default:
			expected = v
		}
	}
}

// settledCommit runs the commit of a write whose key lock is held (release) and
// hands its outcome to finish, which ends the write in the cache and returns the
// write's answer. If the caller's ctx ends first, the commit keeps running under a
// context of its own (settleTimeout), and finish and release run when it ends; the
// caller gets ErrUnavailable ("may have been applied") at once. At most
// maxSettling writes of a store settle so at once (each holds its payload, a lock
// stripe and a MongoDB connection): beyond that a write is cut short at its
// caller's deadline, as every write was before.
func (s *Store) settledCommit(ctx context.Context, release func(), commit func(ctx context.Context) (bson.Raw, error), finish func(ctx context.Context, raw bson.Raw, err error) error) error {
	if err := ctx.Err(); err != nil {
		defer release()
		_ = finish(ctx, nil, errNotStarted)
		return fmt.Errorf("%w: not written: %v", ErrUnavailable, err)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	done := make(chan commitOutcome, 1)
	go func() {
		// A panic of the commit belongs to the caller's goroutine (where the request's
		// guard answers it), not to this one, where it would end the process.
		o := commitOutcome{err: errCommitPanicked}
		defer func() {
			if p := recover(); p != nil {
				o.panicked = p
			}
			done <- o
		}()
		o.raw, o.err = commit(cctx)
	}()
	var o commitOutcome
	select {
	case o = <-done:
	case <-ctx.Done():
		if s.startSettling() {
			go func() {
				defer s.endSettling()
				defer release()
				defer cancel()
				defer func() { _ = recover() }() // nobody to answer: the caller has its 503
				o := <-done
				if o.err != nil && cctx.Err() != nil {
					// Still no answer: the command may run yet. Its marker (or list token)
					// stays and expires into "unknown" (markerTTL), later than an abort.
					return
				}
				_ = finish(context.WithoutCancel(ctx), o.raw, o.err)
			}()
			return fmt.Errorf("%w: the write may have been applied, retry: %v", ErrUnavailable, ctx.Err())
		}
		cancel()
		o = <-done
	}
	cancel()
	defer release()
	if o.panicked != nil {
		panic(o.panicked)
	}
	if o.err == nil || ctx.Err() == nil {
		return finish(ctx, o.raw, o.err)
	}
	// the commit stopped because the caller left: its outcome is unknown
	_ = finish(ctx, nil, ctx.Err())
	return fmt.Errorf("%w: the write may have been applied, retry: %v", ErrUnavailable, ctx.Err())
}

// startSettling takes a settling slot for a write whose caller left, unless none is
// free or the store is closed; Close waits for the slots taken (at most
// settleTimeout each).
func (s *Store) startSettling() bool {
	select {
	case s.settling <- struct{}{}:
	default:
		return false
	}
	s.initMu.Lock()
	defer s.initMu.Unlock()
	if s.closed {
		<-s.settling
		return false
	}
	s.wg.Add(1)
	return true
}

// endSettling gives back the slot of startSettling.
func (s *Store) endSettling() {
	<-s.settling
	s.wg.Done()
}

// commitOutcome is what a write's commit returned, or the panic it raised.
type commitOutcome struct {
	raw      bson.Raw
	err      error
	panicked any
}

// maxSettling bounds the writes of one store whose commits run on after their
// callers left.
const maxSettling = 64

// versionHints remembers the version this process's last write of each key set,
// the hint of its next write when the cache has none. It is bounded: when full it
// starts over (a missing hint costs a write one more attempt, never correctness).
type versionHints struct {
	mu sync.Mutex
	m  map[string]int64
}

const maxVersionHints = 1 << 16

func (h *versionHints) get(key string) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if v, ok := h.m[key]; ok {
		return v
	}
	return versionUnknown
}

func (h *versionHints) put(key string, v int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil || len(h.m) >= maxVersionHints {
		h.m = make(map[string]int64)
	}
	h.m[key] = v
}

func (h *versionHints) forget(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, key)
}

// versionIs is the filter condition "the document is at version v"; 0 is also a
// document without a version (as @backtest-kit/mongo writes them) or none at all.
func versionIs(v int64) bson.E {
	if v == 0 {
		return bson.E{Key: fieldVersion, Value: bson.D{{Key: "$in", Value: bson.A{nil, int64(0)}}}}
	}
	return bson.E{Key: fieldVersion, Value: v}
}

// storedVersion reads the version of the document of filter (0 without one, or
// null). A version that is not an integer is an error: no write could ever match it.
func (s *Store) storedVersion(ctx context.Context, coll *mongo.Collection, filter bson.D) (int64, bool, error) {
	raw, err := coll.FindOne(ctx, filter, options.FindOne().SetProjection(versionProjection)).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	v, err := bsoncore.Document(raw).LookupErr(fieldVersion)
	if err != nil || v.Type == bsoncore.TypeNull {
		return 0, true, nil
	}
	if f, ok := v.DoubleOK(); ok {
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), true, nil
		}
	} else if n, ok := v.AsInt64OK(); ok {
		return n, true, nil
	}
	return 0, true, fmt.Errorf("%w: the stored document's %q is %s %s, not an integer", errBadVersion, fieldVersion, v.Type, v)
}

// errBadVersion: a stored document's version is not an integer.
var errBadVersion = errors.New("corrupt document")
