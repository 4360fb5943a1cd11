package persist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// batchObserver reports each finished operation of a kind on a channel.
type batchObserver struct {
	kind Kind
	done chan struct{}
}

func (o *batchObserver) Observe(kind Kind, _ Op, _ time.Duration, _ error, _ bool) {
	if kind == o.kind {
		select {
		case o.done <- struct{}{}:
		default:
		}
	}
}

// A batch's requests of one key run in their order; requests of different keys do
// not wait for each other: a list write held between its items and its head lets
// the batch's other keys finish meanwhile.
func TestBatchRunsKeysConcurrentlyAndEachKeyInOrder(t *testing.T) {
	for _, cache := range []bool{true, false} {
		t.Run(fmt.Sprintf("cache=%v", cache), func(t *testing.T) {
			obs := &batchObserver{kind: KindState, done: make(chan struct{}, 1)}
			f := newFixture(t, storeConfig{cache: cache, mutate: func(o *Options) { o.Observer = obs }})
			stateKey := func(n int) map[string]any { return keyOf("signalId", fmt.Sprintf("s%d", n), "bucketName", "b") }
			write := func(n, v int) Request {
				return Request{Kind: KindState, Op: OpWrite, Key: stateKey(n), Value: []byte(stateValue(v)), When: ms(int64(v))}
			}
			read := func(n int) Request { return Request{Kind: KindState, Op: OpRead, Key: stateKey(n)} }
			row := Request{Kind: KindStorage, Op: OpWrite, Key: keyOf("backtest", true), Value: mustJSON([]any{fxStorageRow("r1", 1, "opened")})}

			// The storage write waits in its head put until a state write of the same
			// batch has finished; run one after another, it would wait in vain.
			var once sync.Once
			overlapped := make(chan bool, 1)
			f.store.beforeHeadPut = func() {
				once.Do(func() {
					select {
					case <-obs.done:
						overlapped <- true
					case <-time.After(3 * time.Second):
						overlapped <- false
					}
				})
			}
			reqs := []Request{row, write(1, 1), write(1, 2), read(1), write(1, 3), read(1), write(2, 7), read(2), read(3)}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			results, errs := f.store.Batch(ctx, reqs)
			f.store.beforeHeadPut = nil
			for i, err := range errs {
				if err != nil {
					t.Fatalf("request %d (%s %s): %v", i, reqs[i].Kind, reqs[i].Op, err)
				}
			}
			if !<-overlapped {
				t.Fatal("the batch's state writes waited for its storage write: keys ran one after another")
			}
			assertJSON(t, "read of s1 after its second write", results[3].Value, stateValue(2))
			assertJSON(t, "read of s1 after its third write", results[5].Value, stateValue(3))
			assertJSON(t, "read of s2", results[7].Value, stateValue(7))
			if string(results[8].Value) != "null" && len(results[8].Value) != 0 {
				t.Fatalf("read of a key never written: %s", results[8].Value)
			}
			assertJSON(t, "s1 read after the batch", f.do(read(1)).Value, stateValue(3))
		})
	}
}

// Two spellings of one key (field order) are one key
// for a batch's order.
func TestBatchKey(t *testing.T) {
	a := Request{Kind: KindState, Key: map[string]any{"signalId": "x", "bucketName": "b"}}
	b := Request{Kind: KindState, Key: map[string]any{"bucketName": "b", "signalId": "x"}}
	if batchKey(&a) != batchKey(&b) {
		t.Fatalf("one key, two batch keys: %q %q", batchKey(&a), batchKey(&b))
	}
	for _, other := range []Request{
		{Kind: KindSession, Key: a.Key},
		{Kind: KindState, Key: map[string]any{"signalId": "x", "bucketName": "c"}},
		{Kind: KindState, Key: map[string]any{"signalId": "x\x00", "bucketName": "b"}},
	} {
		if batchKey(&other) == batchKey(&a) {
			t.Fatalf("%v has the batch key of %v", other, a)
		}
	}
}

// A panic in one of a batch's goroutines is raised again in the caller, where the
// gateway's guard answers, logs and counts it; it neither kills the process nor
// turns into an error message for the client.
func TestBatchPanicReachesTheCaller(t *testing.T) {
	f := newFixture(t, storeConfig{cache: false})
	f.store.beforeHeadPut = func() { panic("boom in a head put") }
	defer func() { f.store.beforeHeadPut = nil }()
	reqs := []Request{
		{Kind: KindStorage, Op: OpWrite, Key: keyOf("backtest", true), Value: mustJSON([]any{fxStorageRow("r1", 1, "opened")})},
		{Kind: KindState, Op: OpWrite, Key: keyOf("signalId", "p", "bucketName", "b"), Value: []byte(stateValue(1)), When: ms(1)},
	}
	var got any
	func() {
		defer func() { got = recover() }()
		f.store.Batch(context.Background(), reqs)
	}()
	if s, _ := got.(string); !strings.Contains(s, "boom in a head put") {
		t.Fatalf("Batch recovered %v, want the goroutine's panic raised again", got)
	}
}

// abandonedWrite sends req with a caller that gives up after 200 ms, and expects
// the answer "may have been applied".
func abandonedWrite(t *testing.T, f *fixture, req Request) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := f.store.Do(ctx, req); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write whose caller left: %v, want ErrUnavailable", err)
	}
}

// A commit that panics after its caller gave up (it runs on to settle the write)
// neither ends the process nor keeps the key's lock: the caller had its 503, and
// the next write of the key is applied.
func TestCommitPanicAfterTheCallerLeft(t *testing.T) {
	f := newFixture(t, storeConfig{cache: true})
	left := make(chan struct{})
	panicked := make(chan struct{})
	f.store.beforeHeadPut = func() {
		<-left
		defer close(panicked)
		panic("boom after the caller left")
	}
	key := keyOf("backtest", true)
	abandonedWrite(t, f, Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: mustJSON([]any{fxStorageRow("r1", 1, "opened")})})
	close(left)
	<-panicked
	f.store.beforeHeadPut = nil
	want := mustJSON([]any{fxStorageRow("r1", 2, "closed")})
	f.do(Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: want})
	assertJSON(t, "after the panic", f.do(Request{Kind: KindStorage, Op: OpRead, Key: key}).Value, string(want))
}

// Writes settling after their callers left are bounded: with every slot taken, a
// write is cut short at its caller's deadline (it answers once its commit stopped,
// not before) and keeps no lock.
func TestSettlingWritesAreBounded(t *testing.T) {
	f := newFixture(t, storeConfig{cache: true})
	for range maxSettling {
		f.store.settling <- struct{}{}
	}
	left := make(chan struct{})
	var released atomic.Bool
	f.store.beforeHeadPut = func() { <-left }
	go func() {
		time.Sleep(time.Second)
		released.Store(true)
		close(left)
	}()
	key := keyOf("backtest", true)
	abandonedWrite(t, f, Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: mustJSON([]any{fxStorageRow("r1", 1, "opened")})})
	if !released.Load() {
		t.Fatal("the write answered before its commit stopped, with no settling slot free")
	}
	f.store.beforeHeadPut = nil
	for range maxSettling {
		<-f.store.settling
	}
	want := mustJSON([]any{fxStorageRow("r1", 2, "closed")})
	f.do(Request{Kind: KindStorage, Op: OpWrite, Key: key, Value: want})
	assertJSON(t, "the next write", f.do(Request{Kind: KindStorage, Op: OpRead, Key: key}).Value, string(want))
}

// A batch that lists a bucket sees the writes of the bucket's keys before it in
// the batch: such a batch runs in order.
func TestBatchWithAListRunsInOrder(t *testing.T) {
	f := newFixture(t, storeConfig{cache: true})
	var reqs []Request
	for i := range 8 {
		reqs = append(reqs, Request{Kind: KindMeasure, Op: OpWrite, Key: keyOf("bucket", "bl", "key", fmt.Sprintf("k%d", i)),
			Value: mustJSON(map[string]any{"id": fmt.Sprintf("k%d", i), "data": i, "removed": false}), When: ms(1)})
	}
	reqs = append(reqs, Request{Kind: KindMeasure, Op: OpList, Key: keyOf("bucket", "bl")})
	results, errs := f.store.Batch(context.Background(), reqs)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	var keys []string
	if err := json.Unmarshal(results[8].Value, &keys); err != nil || len(keys) != 8 {
		t.Fatalf("list after 8 writes in the same batch: %s (%v)", results[8].Value, err)
	}
}

// A batch of reads of large values answers at most MaxBatchAnswerBytes of them
// (plus the reads in flight when the bound was reached); the others answer
// ErrTooLarge without being run, and the batch's writes all run and answer.
func TestBatchAnswersAreBounded(t *testing.T) {
	f := newFixture(t, storeConfig{cache: true})
	big := `{"id":"x","data":"` + strings.Repeat("a", 1<<20) + `"}`
	stateKey := func(n int) map[string]any { return keyOf("signalId", fmt.Sprintf("big%d", n), "bucketName", "b") }
	const keys = 8
	for n := 0; n < keys; n++ {
		f.do(Request{Kind: KindState, Op: OpWrite, Key: stateKey(n), Value: []byte(big)})
	}
	var reqs []Request
	for i := 0; i < 100; i++ {
		reqs = append(reqs, Request{Kind: KindState, Op: OpRead, Key: stateKey(i % keys)})
		if i%10 == 9 {
			reqs = append(reqs, Request{Kind: KindState, Op: OpWrite, Key: stateKey(100 + i), Value: []byte(stateValue(i))})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	results, errs := f.store.Batch(ctx, reqs)
	answered, refused, bytes := 0, 0, 0
	for i, r := range reqs {
		switch {
		case r.Op == OpWrite:
			if errs[i] != nil {
				t.Fatalf("write %d of the batch: %v", i, errs[i])
			}
		case errs[i] == nil:
			if string(results[i].Value) != big {
				t.Fatalf("read %d answered %d bytes, want the value", i, len(results[i].Value))
			}
			answered++
			bytes += len(results[i].Value)
		case errors.Is(errs[i], ErrTooLarge):
			refused++
		default:
			t.Fatalf("read %d: %v", i, errs[i])
		}
	}
	if limit := MaxBatchAnswerBytes + (batchConcurrency+1)*len(big); bytes > limit || refused == 0 {
		t.Fatalf("%d reads answered %d bytes and %d refused; want at most %d bytes and some refused", answered, bytes, refused, limit)
	}
	t.Logf("%d reads answered (%d MiB), %d refused", answered, bytes>>20, refused)
	for i := 0; i < 10; i++ {
		assertJSON(t, "a write of the batch", f.do(Request{Kind: KindState, Op: OpRead, Key: stateKey(109 + 10*i)}).Value, stateValue(9+10*i))
	}
}
