package history

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Workload describes concurrent writers and readers spread over the sides (clients)
// of a system under test. Writer w is the only writer of KeysPerWriter keys and
// writes 1, 2, 3, ... to each; readers read random keys. Process w (writers) and
// Writers+r (readers) use side id % Sides.
type Workload struct {
	Writers, KeysPerWriter, Readers int
	// Sides is the number of clients ops are spread over (default 1).
	Sides int
	// Write stores value under key through side; an error makes the write
	// indeterminate. It should bound itself (a context timeout).
	Write func(ctx context.Context, side int, key string, value int64) error
	// Read returns the value under key through side (0: absent).
	Read func(ctx context.Context, side int, key string) (int64, error)
	// Pause between two operations of one process (0: none).
	Pause time.Duration
	// Tail is how long the workload keeps running after the schedule returned (default 500ms).
	Tail time.Duration
	// FinalTimeout bounds the retries of the final reads of one key on one side (default 30s).
	FinalTimeout time.Duration
}

// Key is the name of writer w's j-th key.
func Key(w, j int) string { return fmt.Sprintf("w%02dk%d", w, j) }

// Run runs the workload while schedule runs (it injects faults and returns once
// they are over), then for Tail more, stops every process, and reads every key
// through every side (the final reads, retried until they succeed or FinalTimeout
// passes). It returns the history and schedule's error.
func Run(ctx context.Context, w Workload, schedule func(ctx context.Context) error) ([]Op, error) {
	if w.Sides <= 0 {
		w.Sides = 1
	}
	if w.Tail <= 0 {
		w.Tail = 500 * time.Millisecond
	}
	if w.FinalTimeout <= 0 {
		w.FinalTimeout = 30 * time.Second
	}
	rec := NewRecorder()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	pause := func() bool {
		select {
		case <-stop:
			return false
		case <-ctx.Done():
			return false
		default:
		}
		if w.Pause > 0 {
			time.Sleep(w.Pause)
		}
		return true
	}
	for p := 0; p < w.Writers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			side := p % w.Sides
			next := make([]int64, w.KeysPerWriter)
			for i := 0; pause(); i++ {
				j := i % w.KeysPerWriter
				next[j]++
				key := Key(p, j)
				op := Op{Type: Write, Process: p, Side: side, Key: key, Value: next[j], Invoke: rec.Now()}
				err := w.Write(ctx, side, key, next[j])
				op.Complete, op.OK = rec.Now(), err == nil
				rec.Add(op)
			}
		}()
	}
	for r := 0; r < w.Readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := w.Writers + r
			side := p % w.Sides
			rng := rand.New(rand.NewPCG(uint64(p), 7))
			for pause() {
				key := Key(rng.IntN(w.Writers), rng.IntN(w.KeysPerWriter))
				op := Op{Type: Read, Process: p, Side: side, Key: key, Invoke: rec.Now()}
				v, err := w.Read(ctx, side, key)
				op.Complete, op.OK, op.Value = rec.Now(), err == nil, v
				rec.Add(op)
			}
		}()
	}
	err := schedule(ctx)
	select {
	case <-time.After(w.Tail):
	case <-ctx.Done():
	}
	close(stop)
	wg.Wait()
	// Final reads: one process per side, after every write has returned.
	for side := 0; side < w.Sides; side++ {
		p := w.Writers + w.Readers + side
		for wr := 0; wr < w.Writers; wr++ {
			for j := 0; j < w.KeysPerWriter; j++ {
				key := Key(wr, j)
				deadline := time.Now().Add(w.FinalTimeout)
				for {
					op := Op{Type: Read, Process: p, Side: side, Key: key, Invoke: rec.Now(), Final: true}
					v, rerr := w.Read(ctx, side, key)
					op.Complete, op.OK, op.Value = rec.Now(), rerr == nil, v
					rec.Add(op)
					if rerr == nil || time.Now().After(deadline) || ctx.Err() != nil {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}
	}
	return rec.Ops(), err
}
