package persist

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Retention. List items are never deleted by writes; a tenant's retention policy
// prunes the item collections in bounded steps (the controller runs them). A step
// never deletes an item of the consumer's window: the head's items are excluded,
// and so is every item written since shortly before the step read the head (a
// write that moves an item into the window bumps its updatedDate), so a write
// racing with the step keeps its item.

// RetentionPolicy bounds a list context's stored items. Zero fields are no bound.
type RetentionPolicy struct {
	// MaxItems keeps at most that many items: the window, and the most recently
	// written of the others. At least the kind's window.
	MaxItems int
	// MaxAge prunes items last written longer ago than that.
	MaxAge time.Duration
}

// PruneResult is the outcome of one step.
type PruneResult struct {
	Pruned int64 // items deleted
	More   bool  // the step stopped at its limit: more items are due
}

// retentionSkew is how far the clocks of the processes writing a list may differ:
// an item written less than this before a step started is never pruned by it.
const retentionSkew = time.Minute

// ListContexts are the context keys of a list kind (Storage and Notification per
// mode, Log has one).
func ListContexts(kind Kind) []map[string]any {
	spec, ok := Lookup(kind)
	if !ok || spec.Head == nil {
		return nil
	}
	if len(spec.Key) == 0 {
		return []map[string]any{{}}
	}
	return []map[string]any{{"backtest": true}, {"backtest": false}}
}

// Prune deletes at most limit items of one list context that the policy no longer
// keeps, never one of the window (the head is rebuilt first when it was never
// built), with their head copies. With the cache on, the deleted items' list-hash fields are dropped before
// the delete, under a write token, so no write can skip an item that is gone; if
// Redis cannot be marked, nothing is deleted (ErrUnavailable). Prune needs no Init.
func (s *Store) Prune(ctx context.Context, kind Kind, key map[string]any, policy RetentionPolicy, limit int) (PruneResult, error) {
	c, err := s.validate(&Request{Kind: kind, Op: OpRead, Key: key})
	if err != nil {
		return PruneResult{}, err
	}
	if c.spec.Head == nil {
		return PruneResult{}, invalidf("kind %q is not a list", kind)
	}
	if policy.MaxItems > 0 && policy.MaxItems < s.Window(kind) {
		return PruneResult{}, invalidf("retention of %s: maxItems %d is below the window %d", kind, policy.MaxItems, s.Window(kind))
	}
	if limit <= 0 || (policy.MaxItems <= 0 && policy.MaxAge <= 0) {
		return PruneResult{}, nil
	}
	start := time.Now().UTC()
	guard := start.Add(-retentionSkew)
	items, built, err := s.loadHead(ctx, c)
	if err != nil {
		return PruneResult{}, err
	}
	if !built {
		// A rebuild scans the whole list context (about 90 s for 200,000 items on
		// FerretDB), longer than a step's budget; bound by the step's deadline it would
		// start over on every step and never finish. So it gets HeadRebuildTimeout and
		// stops only when the caller is cancelled, not when its deadline passes.
		if s.beforePruneRebuild != nil {
			s.beforePruneRebuild()
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.HeadRebuildTimeout)
		stop := context.AfterFunc(ctx, func() {
			if errors.Is(ctx.Err(), context.Canceled) {
				cancel()
			}
		})
		err := s.rebuildHead(rctx, c)
		stop()
		cancel()
		if err != nil {
			return PruneResult{}, err
		}
		if items, _, err = s.loadHead(ctx, c); err != nil {
			return PruneResult{}, err
		}
	}
	inHead := map[string]bool{} // the window: the head may hold a few more items
	for _, it := range s.topOfHead(c, items) {
		inHead[it.id] = true
	}
	idField := c.spec.ItemField.Doc
	coll := s.opts.Database.Collection(c.spec.Collection)
	var ids []string
	var oids bson.A
	seen := map[string]bool{}
	more := false
	collect := func(filter bson.D, sortOrder int, skip int64) error {
		opts := options.Find().SetSort(bson.D{{Key: fieldUpdateDate, Value: sortOrder}}).SetSkip(skip).
			SetLimit(int64(limit + len(inHead) + 1)).SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: idField, Value: 1}, {Key: fieldUpdateDate, Value: 1}})
		cur, err := coll.Find(ctx, filter, opts)
		if err != nil {
			return wrapMongo(c, "retention: find", err)
		}
		defer cur.Close(ctx)
		for cur.Next(ctx) {
			id, _ := cur.Current.Lookup(idField).StringValueOK()
			at, ok := cur.Current.Lookup(fieldUpdateDate).TimeOK()
			if inHead[id] || seen[id] || !ok || !at.Before(guard) {
				continue
			}
			if len(ids) == limit {
				more = true
				continue
			}
			seen[id] = true
			ids = append(ids, id)
			oids = append(oids, cur.Current.Lookup("_id"))
		}
		return wrapErr(c, cur.Err())
	}
	if policy.MaxAge > 0 {
		cutoff := start.Add(-policy.MaxAge)
		if cutoff.After(guard) {
			cutoff = guard
		}
		f := append(c.mongoFilter(), bson.E{Key: fieldUpdateDate, Value: bson.D{{Key: "$lt", Value: cutoff}}})
		if err := collect(f, 1, 0); err != nil {
			return PruneResult{}, err
		}
	}
	if policy.MaxItems > 0 {
		// The window counts towards MaxItems: of the other items, the newest
		// MaxItems - window are kept and older ones are due.
		nin := make(bson.A, 0, len(inHead))
		for id := range inHead {
			nin = append(nin, id)
		}
		f := append(c.mongoFilter(), bson.E{Key: idField, Value: bson.D{{Key: "$nin", Value: nin}}})
		if err := collect(f, -1, int64(max(0, policy.MaxItems-len(inHead)))); err != nil {
			return PruneResult{}, err
		}
	}
	if len(ids) == 0 {
		return PruneResult{More: more}, nil
	}
	token, hkey := "", ""
	if s.cache != nil {
		token, hkey = newToken(), s.keys.listHashes(c.spec.Kind, c.parts)
		if _, err := s.cache.listMark(ctx, hkey, token, ids); err != nil {
			return PruneResult{}, fmt.Errorf("%w: retention of %s: not pruned: %v", ErrUnavailable, kind, err)
		}
	}
	del := append(c.mongoFilter(), bson.E{Key: "_id", Value: bson.D{{Key: "$in", Value: oids}}},
		bson.E{Key: fieldUpdateDate, Value: bson.D{{Key: "$lt", Value: guard}}})
	res, err := coll.DeleteMany(ctx, del)
	if err == nil {
		// Their head copies too (below the window), so that no write skips them.
		_, err = s.headColl(c.spec).DeleteMany(ctx, append(c.mongoFilter(), bson.E{Key: idField, Value: bson.D{{Key: "$in", Value: idList(ids)}}},
			bson.E{Key: fieldUpdateDate, Value: bson.D{{Key: "$lt", Value: guard}}}))
	}
	if token != "" {
		_ = s.cache.listStore(context.WithoutCancel(ctx), hkey, token, "-", "", false, nil)
	}
	if err != nil {
		return PruneResult{}, wrapMongo(c, "retention: delete", err)
	}
	return PruneResult{Pruned: res.DeletedCount, More: more}, nil
}

func idList(ids []string) bson.A {
	out := make(bson.A, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// wrapErr wraps a cursor error (nil stays nil).
func wrapErr(c *call, err error) error {
	if err == nil {
		return nil
	}
	return wrapMongo(c, "retention: find", err)
}
