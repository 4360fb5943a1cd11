package persist

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Store is one tenant's adapter store: the 17 kinds on MongoDB with Redis as a
// coherent cache. It is safe for concurrent use.
type Store struct {
	opts   Options
	served map[Kind]bool
	keys   redisKeys
	cache  *cache // nil when the cache is off
	locks  keyLocks
	hints  versionHints
	heads  headState

	// noFAMProjection is set once the server refused a projection on findAndModify.
	noFAMProjection atomic.Bool
	// upsertRetries counts duplicate-key races and version misses retried (observable in tests).
	upsertRetries atomic.Int64

	indexed  map[Kind]bool // kinds whose indexes Init has ensured
	ready    atomic.Bool   // Init has succeeded (fast path of Do)
	initMu   sync.Mutex
	initDone bool
	initCall *initCall
	closed   bool
	stop     chan struct{}
	wg       sync.WaitGroup

	// background is cancelled by Close; rebuilds of candle series run under it.
	background context.Context
	stopBG     context.CancelFunc
	// rebuilding holds the candle series this store is rebuilding; rebuildSlots bounds them.
	rebuilding   sync.Map
	rebuildSlots chan struct{}
	// settling bounds the writes settling after their callers left (versioned.go).
	settling chan struct{}
	// seriesRebuilds counts completed series rebuilds (observable in tests).
	seriesRebuilds atomic.Int64

	// beforeRebuild, when set (tests only), runs before a series rebuild claims the series.
	beforeRebuild func()
	// afterSeriesLoad, when set (tests only), runs after each batch a series rebuild loaded.
	afterSeriesLoad func()
	// beforePruneRebuild, when set (tests only), runs before Prune rebuilds a list head.
	beforePruneRebuild func()
	// beforeHeadPut, when set (tests only), runs between a list write's item commit
	// and its head copies.
	beforeHeadPut func()
	// afterLoad, when set (tests only), runs between a read's MongoDB load and its cache fill.
	afterLoad func(key string)
}

type initCall struct {
	done chan struct{}
	err  error
}

// Open returns a Store for the options. It does no I/O; Init (or the first
// operation) connects.
func Open(opts Options) (*Store, error) {
	if opts.Database == nil {
		return nil, fmt.Errorf("%w: persist.Open: Options.Database is required", ErrInvalid)
	}
	opts = opts.withDefaults()
	for k, w := range opts.ListWindows {
		spec, ok := Lookup(k)
		if !ok || spec.Head == nil {
			return nil, invalidf("persist.Open: %q is not a list kind", k)
		}
		if w < spec.Head.Window {
			return nil, invalidf("persist.Open: the %s window must be at least %d, got %d", k, spec.Head.Window, w)
		}
	}
	s := &Store{opts: opts, served: map[Kind]bool{}, keys: newRedisKeys(opts.KeyPrefix),
		locks: newKeyLocks(), stop: make(chan struct{}), indexed: map[Kind]bool{},
		rebuildSlots: make(chan struct{}, seriesRebuilders),
		settling:     make(chan struct{}, maxSettling),
		heads:        headState{indexed: map[Kind]bool{}, rebuilds: map[string]*rebuildCall{}, grown: map[string]int{}}}
	s.background, s.stopBG = context.WithCancel(context.Background())
	if opts.Kinds == nil {
		for _, k := range Kinds {
			s.served[k.Kind] = true
		}
	} else {
		for _, k := range opts.Kinds {
			if _, ok := Lookup(k); !ok {
				return nil, invalidf("persist.Open: unknown kind %q", k)
			}
			s.served[k] = true
		}
	}
	if opts.Redis != nil {
		s.cache = newCache(opts.Redis, s.keys, opts)
	}
	return s, nil
}

// Init connects the store: it checks MongoDB, creates missing indexes and prepares
// the cache. Concurrent callers share one attempt; a failed attempt is not
// remembered, so the next call tries again. Redis being down does not fail Init.
func (s *Store) Init(ctx context.Context) error {
	s.initMu.Lock()
	if s.initDone {
		s.initMu.Unlock()
		return nil
	}
	if s.closed {
		s.initMu.Unlock()
		return fmt.Errorf("%w: store is closed", ErrUnavailable)
	}
	if c := s.initCall; c != nil {
		s.initMu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for store init: %v", ErrUnavailable, ctx.Err())
		}
	}
	c := &initCall{done: make(chan struct{})}
	s.initCall = c
	s.initMu.Unlock()

	err := s.initOnce(ctx)

	s.initMu.Lock()
	s.initCall = nil
	if err == nil && !s.closed {
		s.initDone = true
		s.ready.Store(true)
		if s.cache != nil {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.cache.loop(s.stop)
			}()
		}
	}
	c.err = err
	close(c.done)
	s.initMu.Unlock()
	return err
}

func (s *Store) initOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.OpTimeout)
	defer cancel()
	if err := s.opts.Database.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		if isUnavailable(err) {
			return fmt.Errorf("%w: store init: ping MongoDB: %v", ErrUnavailable, err)
		}
		return fmt.Errorf("store init: ping MongoDB: %w", err)
	}
	if !s.opts.SkipIndexes {
		if err := s.ensureIndexes(ctx); err != nil {
			return err
		}
	}
	if s.cache != nil {
		s.cache.start(ctx)
	}
	return nil
}

// Close stops the store's background work. It does not close the shared clients.
func (s *Store) Close() {
	s.initMu.Lock()
	if s.closed {
		s.initMu.Unlock()
		return
	}
	s.closed = true
	close(s.stop)
	s.stopBG()
	s.initMu.Unlock()
	s.wg.Wait()
	if s.cache != nil {
		s.cache.close()
	}
}

// CacheHealth reports the state of the cache.
func (s *Store) CacheHealth() CacheHealth {
	if s.cache == nil {
		return CacheHealth{}
	}
	return s.cache.health()
}

// Do runs one request. Bad input returns an error wrapping ErrInvalid or ErrTooLarge
// and changes nothing; ErrUnavailable means a server could not be reached (retryable).
func (s *Store) Do(ctx context.Context, req Request) (Result, error) {
	if s.opts.Observer == nil {
		res, _, err := s.do(ctx, &req)
		return res, err
	}
	start := time.Now()
	res, hit, err := s.do(ctx, &req)
	s.opts.Observer.Observe(req.Kind, req.Op, time.Since(start), err, hit)
	return res, err
}

// batchConcurrency bounds the keys of one batch that run at once.
const batchConcurrency = 4

// MaxBatchAnswerBytes bounds the values a batch's reads answer, together: 500 reads
// of 4 MiB values (or of 50,000-candle windows) would otherwise make one request
// hold gigabytes. A read once the bound is reached is not run and answers ErrTooLarge
// (read it in its own request); at most batchConcurrency reads in flight go past it.
// Writes always run and answer: their results are bounded by the request body.
const MaxBatchAnswerBytes = 32 << 20

// Batch runs requests and returns one result and one error per request. Requests
// are independent: one failing does not stop the others. Requests of one key run
// one after another in their order in the batch; those of different keys run
// concurrently, at most batchConcurrency keys at once (a batch holds writes its
// client had in flight together, so their order among keys was never fixed). A
// batch with an operation that reads many keys (list, scan) runs in order.
func (s *Store) Batch(ctx context.Context, reqs []Request) ([]Result, []error) {
	results := make([]Result, len(reqs))
	errs := make([]error, len(reqs))
	inOrder := slices.ContainsFunc(reqs, func(r Request) bool { return r.Op == OpList || r.Op == OpScan })
	var order []string
	var groups map[string][]int
	if !inOrder {
		groups = make(map[string][]int, len(reqs))
		for i := range reqs {
			k := batchKey(&reqs[i])
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], i)
		}
	}
	var left atomic.Int64
	left.Store(MaxBatchAnswerBytes)
	one := func(i int) {
		if reqs[i].Op == OpWrite || reqs[i].Op == OpRemove {
			results[i], errs[i] = s.Do(ctx, reqs[i])
			return
		}
		if left.Load() < 0 {
			errs[i] = tooLargef("the batch's answers are over %d bytes: read this %s key in a request of its own", MaxBatchAnswerBytes, reqs[i].Kind)
			return
		}
		results[i], errs[i] = s.Do(ctx, reqs[i])
		left.Add(-int64(len(results[i].Value)))
	}
	if inOrder || len(order) <= 1 {
		for i := range reqs {
			one(i)
		}
		return results, errs
	}
	run := func(idx []int) {
		for _, i := range idx {
			one(i)
		}
	}
	sem := make(chan struct{}, batchConcurrency)
	var wg sync.WaitGroup
	var panicked atomic.Pointer[batchPanic]
	for _, k := range order {
		sem <- struct{}{}
		wg.Add(1)
		go func(idx []int) {
			defer func() {
				if v := recover(); v != nil {
					panicked.CompareAndSwap(nil, &batchPanic{value: v, stack: debug.Stack()})
				}
				<-sem
				wg.Done()
			}()
			run(idx)
		}(groups[k])
	}
	wg.Wait()
	if p := panicked.Load(); p != nil {
		// Raised again in the caller's goroutine, where the gateway's guard answers,
		// logs and counts it as for an operation run there.
		panic(fmt.Sprintf("%v\n[batch goroutine]\n%s", p.value, p.stack))
	}
	return results, errs
}

// batchPanic is a panic of one of a batch's goroutines.
type batchPanic struct {
	value any
	stack []byte
}

// batchKey names the stored key a request touches, for Batch's per-key order: its
// kind and key fields, sorted. Key fields are strings and booleans, which decode to
// one value however they were spelled; a key that validation refuses only lands in
// some group, where it fails on its own.
func batchKey(req *Request) string {
	names := make([]string, 0, len(req.Key))
	for n := range req.Key {
		names = append(names, n)
	}
	slices.Sort(names)
	b := append([]byte(req.Kind), 0)
	for _, n := range names {
		b = fmt.Appendf(b, "%q=%#v\x00", n, req.Key[n])
	}
	return string(b)
}

func (s *Store) do(ctx context.Context, req *Request) (Result, bool, error) {
	c, err := s.validate(req)
	if err != nil {
		return Result{}, false, err
	}
	if !s.ready.Load() {
		ictx, cancel := context.WithTimeout(ctx, s.opts.OpTimeout)
		err := s.Init(ictx)
		cancel()
		if err != nil {
			return Result{}, false, err
		}
	}
	if c.spec.Shape == ShapeRecord && (c.req.Op == OpRead || c.req.Op == OpHas) {
		// Reads bound their own steps: the cache lookup by the Redis client's I/O
		// timeouts (see cache.get), the MongoDB query by OpTimeout, so a cache hit
		// costs no extra timer.
		return s.readRecord(ctx, c)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.OpTimeout)
	defer cancel()
	res, hit, err := s.dispatch(ctx, c)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("%w: %s %s: %v", ErrUnavailable, c.spec.Kind, c.req.Op, err)
	}
	return res, hit, err
}

func (s *Store) dispatch(ctx context.Context, c *call) (Result, bool, error) {
	if c.req.Op == OpScan {
		res, err := s.scan(ctx, c)
		return res, false, err
	}
	switch c.spec.Shape {
	case ShapeCandles:
		if c.req.Op == OpRead {
			return s.readCandles(ctx, c)
		}
		res, err := s.writeCandles(ctx, c)
		return res, false, err
	case ShapeList:
		if c.req.Op == OpRead {
			res, err := s.readList(ctx, c)
			return res, false, err
		}
		return Result{}, false, s.writeList(ctx, c)
	default:
		switch c.req.Op {
		case OpRead, OpHas:
			return s.readRecord(ctx, c)
		case OpWrite:
			return Result{}, false, s.writeRecord(ctx, c)
		case OpRemove:
			return Result{}, false, s.removeRecord(ctx, c)
		case OpList:
			res, err := s.listRecords(ctx, c)
			return res, false, err
		}
	}
	return Result{}, false, invalidf("kind %q has no operation %q", c.spec.Kind, c.req.Op)
}

// InvalidateCache rotates the tenant's cache epoch, so no entry cached before the call
// is served again. Call it after changing the database behind the store's back
// (restoring a backup, dropping data). A no-op when the cache is off.
func (s *Store) InvalidateCache(ctx context.Context) error {
	if s.cache == nil {
		return nil
	}
	if err := s.cache.rotate(ctx); err != nil {
		s.cache.markSuspect(err)
		return fmt.Errorf("%w: invalidate cache: %v", ErrUnavailable, err)
	}
	return nil
}
