package persist

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Rebuilding a candle series the cache does not know (candleseries.go): one MongoDB
// cursor over the series, read in batches of seriesLoadBatch and added to the sorted
// set one batch per script, then the coverage computed from the set in steps of
// seriesWalkBatch members. Memory and Redis time per step are bounded by the batch,
// whatever the series' length. Reads meanwhile go on: windows already covered come
// from Redis, the others from MongoDB.

// seriesRebuilders bounds the rebuilds a store runs at once; a read that finds the
// series unknown while all run simply goes to MongoDB (and asks again next time).
const seriesRebuilders = 2

// seriesStepTimeout bounds each step of a rebuild (the query, each batch the cursor
// fetches, each script), not the rebuild as a whole: a long series on a slow server
// takes as long as it takes, and a step that stalls ends the rebuild, whose lease then
// lets another replica (or a later read) start again.
const seriesStepTimeout = seriesLease / 2

// rebuildSeries starts a rebuild of a series in the background, unless this store
// is rebuilding it already, runs seriesRebuilders rebuilds, or is closed.
func (s *Store) rebuildSeries(parts []any, step int64) {
	z, _ := s.keys.candleSeries(parts)
	if _, busy := s.rebuilding.LoadOrStore(z, true); busy {
		return
	}
	select {
	case s.rebuildSlots <- struct{}{}:
	default:
		s.rebuilding.Delete(z)
		return
	}
	release := func() {
		<-s.rebuildSlots
		s.rebuilding.Delete(z)
	}
	s.initMu.Lock()
	if s.closed {
		s.initMu.Unlock()
		release()
		return
	}
	s.wg.Add(1)
	s.initMu.Unlock()
	go func() {
		defer s.wg.Done()
		defer release()
		// A failed rebuild (MongoDB or Redis trouble, Close) leaves the series unknown
		// or half built: reads keep using MongoDB, and a read after the lease asks again.
		_ = s.rebuild(s.background, parts, step)
	}()
}

// rebuild claims a series and loads it from MongoDB; it returns early when another
// store holds the claim or takes it over.
func (s *Store) rebuild(ctx context.Context, parts []any, step int64) error {
	if s.beforeRebuild != nil {
		s.beforeRebuild()
	}
	build := newToken()
	if _, ok, err := s.cache.builderStep(ctx, seriesClaimScript, parts, build); err != nil || !ok {
		return err
	}
	spec, _ := Lookup(KindCandle)
	filter := make(bson.D, 0, len(parts))
	for i, f := range spec.Key {
		filter = append(filter, bson.E{Key: f.Doc, Value: parts[i]})
	}
	qctx, cancel := context.WithTimeout(ctx, seriesStepTimeout)
	cur, err := s.opts.Database.Collection(spec.Collection).Find(qctx, filter,
		options.Find().SetProjection(candleProjection()).SetBatchSize(seriesLoadBatch))
	cancel()
	if err != nil {
		return err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	// loaded counts the candles added so far: the set must hold at least as many
	// (writers only add), or Redis dropped it meanwhile (luaAllHeld). The load
	// script's arguments are that count, then the batch's pairs: batch[0] holds it.
	var loaded int64
	batch := make([]any, 1, 1+2*seriesLoadBatch)
	flush := func() (bool, error) {
		if len(batch) == 1 {
			return true, nil
		}
		loaded += int64(len(batch) / 2)
		batch[0] = loaded
		_, ok, err := s.cache.builderStep(ctx, seriesLoadScript, parts, build, batch...)
		batch = batch[:1]
		if ok && err == nil && s.afterSeriesLoad != nil {
			s.afterSeriesLoad()
		}
		return ok, err
	}
	for {
		// each batch the cursor fetches gets its own deadline
		nctx, cancel := context.WithTimeout(ctx, seriesStepTimeout)
		more := cur.Next(nctx)
		cancel()
		if !more {
			break
		}
		ts, member, ok := memberFromDoc(bsoncore.Document(cur.Current))
		if !ok || ts%step != 0 {
			continue // corrupt or unaligned: never part of a window the cache answers
		}
		batch = append(batch, ts, member)
		if len(batch)-1 >= 2*seriesLoadBatch {
			if ok, err := flush(); err != nil || !ok {
				return err
			}
		}
	}
	if err := cur.Err(); err != nil {
		return err
	}
	if ok, err := flush(); err != nil || !ok {
		return err
	}
	done, err := s.cache.walkSeries(ctx, parts, build, loaded, step)
	if done {
		s.seriesRebuilds.Add(1)
	}
	return err
}
