package persist

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

type stamp struct{ start, end int64 }

// 64 goroutines x 100 rounds upsert one fresh key per round through one store:
// one document per key, no error, and every goroutine reads its own write or a later one.
func TestConcurrentWritersOneKey(t *testing.T) {
	f := newFixture(t, storeConfig{cache: true})
	const writers, rounds = 64, 100
	var clock atomic.Int64
	for r := 0; r < rounds; r++ {
		key := keyOf("signalId", fmt.Sprintf("round-%d", r), "bucketName", "race")
		stamps := make([]stamp, writers)
		reads := make([]int, writers)
		errs := make(chan error, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for g := 0; g < writers; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ctx := context.Background()
				s := clock.Add(1)
				_, err := f.store.Do(ctx, Request{Kind: KindState, Op: OpWrite, Key: key, When: ms(1), Value: mustJSON(map[string]any{"id": "x", "data": map[string]any{"g": g}, "when": 1})})
				stamps[g] = stamp{s, clock.Add(1)}
				if err != nil {
					errs <- err
					return
				}
				res, err := f.store.Do(ctx, Request{Kind: KindState, Op: OpRead, Key: key})
				if err != nil {
					errs <- err
					return
				}
				var v struct{ Data struct{ G int } }
				if err := json.Unmarshal(res.Value, &v); err != nil {
					errs <- err
					return
				}
				reads[g] = v.Data.G
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", r, err)
		}
		for g := 0; g < writers; g++ {
			w := reads[g]
			if w != g && stamps[w].end < stamps[g].start {
				t.Fatalf("round %d: goroutine %d read the write of %d, which finished before its own began", r, g, w)
			}
		}
		n, err := f.db.Collection("state-items").CountDocuments(context.Background(), bson.D{{Key: "signalId", Value: fmt.Sprintf("round-%d", r)}})
		if err != nil || n != 1 {
			t.Fatalf("round %d: %d documents (%v), want 1", r, n, err)
		}
	}
}

// Four stores (four processes' worth of key locks) race first writes of fresh keys:
// duplicate-key errors from the server are retried, never surfaced.
func TestConcurrentFirstWritesAcrossStores(t *testing.T) {
	base := newFixture(t, storeConfig{cache: false})
	stores := []*Store{base.store}
	for i := 0; i < 3; i++ {
		s, err := Open(Options{Database: base.db})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		// FerretDB mishandles concurrent createIndexes on one database; init one by one.
		if err := s.Init(context.Background()); err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	const writers, rounds = 64, 100
	for r := 0; r < rounds; r++ {
		key := keyOf("bucket", "b", "key", fmt.Sprintf("k%d", r))
		start := make(chan struct{})
		errs := make(chan error, writers)
		var wg sync.WaitGroup
		for g := 0; g < writers; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := stores[g%len(stores)].Do(context.Background(), Request{Kind: KindMeasure, Op: OpWrite, Key: key,
					Value: mustJSON(map[string]any{"id": "k", "data": g, "removed": false})})
				if err != nil {
					errs <- err
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: error surfaced: %v", r, err)
		}
	}
	var retried int64
	for _, s := range stores {
		retried += s.upsertRetries.Load()
	}
	t.Logf("duplicate-key races retried: %d", retried)
	n, err := base.db.Collection("measure-items").CountDocuments(context.Background(), bson.D{})
	if err != nil || n != rounds {
		t.Fatalf("%d documents (%v), want %d (one per key)", n, err, rounds)
	}
}

// A reader that loaded an old document from MongoDB must not overwrite the newer
// value a writer cached meanwhile, nor resurrect it after a flush.
func TestSlowReaderNeverLeavesStaleCache(t *testing.T) {
	for _, flush := range []bool{false, true} {
		t.Run(fmt.Sprintf("flush=%v", flush), func(t *testing.T) {
			f := newFixture(t, storeConfig{cache: true}).with(t)
			key := keyOf("signalId", "slow", "bucketName", "reader")
			write := func(n int) {
				f.do(Request{Kind: KindState, Op: OpWrite, Key: key, Value: mustJSON(map[string]any{"id": "x", "data": n, "when": 1})})
			}
			write(1)
			redisKey := f.store.keys.record(KindState, []any{"slow", "reader"})
			if err := f.rclient.Del(t.Context(), redisKey).Err(); err != nil {
				t.Fatal(err)
			}
			loaded := make(chan struct{})
			proceed := make(chan struct{})
			f.store.afterLoad = func(string) {
				close(loaded)
				<-proceed
			}
			done := make(chan Result)
			go func() {
				res, _ := f.store.Do(context.Background(), Request{Kind: KindState, Op: OpRead, Key: key})
				done <- res
			}()
			<-loaded
			f.store.afterLoad = nil
			write(2)
			if flush {
				if err := f.rclient.FlushDB(t.Context()).Err(); err != nil {
					t.Fatal(err)
				}
			}
			close(proceed)
			old := <-done
			assertJSON(t, "slow read (may be old)", old.Value, `{"id":"x","data":1,"when":1}`)
			for i := 0; i < 3; i++ {
				assertJSON(t, "read after the race", f.do(Request{Kind: KindState, Op: OpRead, Key: key}).Value, `{"id":"x","data":2,"when":1}`)
			}
		})
	}
}

// Two tenants' stores on one Redis client share its pipelines: with one reader per
// tenant, reads are pipelined together; the shared gate goes away with the last store.
func TestTenantsOnOneClientShareReadPipelines(t *testing.T) {
	f := newFixture(t, storeConfig{cache: true})
	opts := f.opts
	opts.KeyPrefix = randomName("btp:") + ":"
	opts.Database = f.mclient.Database(randomName("t_"))
	other, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := other.Init(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = opts.Database.Drop(context.Background()) })
	key := keyOf("signalId", "shared", "bucketName", "gate")
	stores := []*Store{f.store, other}
	for _, s := range stores {
		if _, err := s.Do(ctx, Request{Kind: KindState, Op: OpWrite, Key: key, Value: []byte(stateValue(1))}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(stores))
	for _, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				res, err := s.Do(ctx, Request{Kind: KindState, Op: OpRead, Key: key})
				if err == nil && string(res.Value) != stateValue(1) {
					err = fmt.Errorf("read %s", res.Value)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if f.store.cache.gate != other.cache.gate {
		t.Fatal("two stores on one client have different read gates")
	}
	if n := f.store.cache.pipelinedReads.Load() + other.cache.pipelinedReads.Load(); n == 0 {
		t.Fatal("no read was pipelined while the other tenant's reads were in flight")
	}
	other.Close()
	readGates.Lock()
	_, kept := readGates.m[f.rclient]
	readGates.Unlock()
	if !kept {
		t.Fatal("the gate went away while a store still uses the client")
	}
	f.store.Close()
	readGates.Lock()
	_, kept = readGates.m[f.rclient]
	readGates.Unlock()
	if kept {
		t.Fatal("the gate outlived the last store on the client")
	}
}
