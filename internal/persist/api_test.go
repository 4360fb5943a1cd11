package persist

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"
)

type recordingObserver struct {
	mu   sync.Mutex
	hits map[Kind]int
	errs int
	n    int
}

func (o *recordingObserver) Observe(kind Kind, op Op, d time.Duration, err error, hit bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n++
	if hit {
		o.hits[kind]++
	}
	if err != nil {
		o.errs++
	}
}

func TestTypedAPIObserverAndBatch(t *testing.T) {
	obs := &recordingObserver{hits: map[Kind]int{}}
	f := newFixture(t, storeConfig{cache: true, mutate: func(o *Options) { o.Observer = obs }})
	ctx := context.Background()
	s := f.store
	if err := s.Signal("BTC/USDT", "s1", "binance").Write(ctx, json.RawMessage(`{"id":"a"}`), nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		v, err := s.Signal("BTC/USDT", "s1", "binance").Read(ctx)
		if err != nil || !jsonEqual(v, []byte(`{"id":"a"}`)) {
			t.Fatalf("typed read: %s %v", v, err)
		}
	}
	if err := s.Memory("sig", "b", "m").Write(ctx, json.RawMessage(`{"data":{}}`), ms(5)); err != nil {
		t.Fatal(err)
	}
	if err := s.Memory("sig", "b", "m").Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if has, err := s.Memory("sig", "b", "m").Has(ctx); err != nil || !has {
		t.Fatalf("has tombstone: %v %v", has, err)
	}
	if l, err := s.MemoryBucket("sig", "b").List(ctx); err != nil || string(l) != "[]" {
		t.Fatalf("memory list: %s %v", l, err)
	}
	if w, err := s.Candles("binance", "BTC/USDT", "1m").Window(ctx, candleBase, 5); err != nil || string(w) != "null" {
		t.Fatalf("empty window: %s %v", w, err)
	}
	if _, err := s.Signal("", "s1", "binance").Read(ctx); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty symbol: %v", err)
	}
	obs.mu.Lock()
	if obs.hits[KindSignal] < 1 || obs.errs != 1 || obs.n < 8 {
		t.Fatalf("observer saw %d ops, %d errors, hits %v", obs.n, obs.errs, obs.hits)
	}
	obs.mu.Unlock()

	results, errs := s.Batch(ctx, []Request{
		{Kind: KindState, Op: OpWrite, Key: keyOf("signalId", "s", "bucketName", "b"), Value: json.RawMessage(`{"v":1}`)},
		{Kind: KindState, Op: OpWrite, Key: keyOf("signalId", "s", "bucketName", "b"), Value: json.RawMessage(`{"v":2}`)},
		{Kind: "bogus", Op: OpRead},
		{Kind: KindState, Op: OpRead, Key: keyOf("signalId", "s", "bucketName", "b")},
	})
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], ErrInvalid) || errs[3] != nil {
		t.Fatalf("batch errors: %v", errs)
	}
	assertJSON(t, "batch read sees the batch's last write", results[3].Value, `{"v":2}`)
}

// Concurrent Init calls share one attempt and all succeed.
func TestInitSharedByConcurrentCallers(t *testing.T) {
	f := newFixture(t, storeConfig{cache: true})
	s, err := Open(f.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	c := f.counted(func() {
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.Init(context.Background())
			}()
		}
		wg.Wait()
	})
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c.MongoByCmd["ping"] != 1 {
		t.Fatalf("16 concurrent Init calls sent %d pings, want 1", c.MongoByCmd["ping"])
	}
	s.Close()
	if err := s.Init(context.Background()); err != nil {
		t.Fatalf("Init after Close of an initialized store: %v", err)
	}
}
