package history

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// ms is a point on the recorder's clock.
func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func w(p int, key string, v int64, from, to int, ok bool) Op {
	return Op{Type: Write, Process: p, Key: key, Value: v, Invoke: ms(from), Complete: ms(to), OK: ok}
}

func r(p int, key string, v int64, from, to int) Op {
	return Op{Type: Read, Process: p, Key: key, Value: v, Invoke: ms(from), Complete: ms(to), OK: true}
}

func final(p int, key string, v int64, at int) Op {
	op := r(p, key, v, at, at+1)
	op.Final = true
	return op
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		want map[string]int // violation counts by kind; nil: none
	}{
		{name: "empty history"},
		{name: "reads of a key never written return absent",
			ops: []Op{r(9, "a", 0, 0, 1), r(9, "a", 0, 2, 3)}},
		{name: "reads follow acknowledged writes",
			ops: []Op{w(1, "a", 1, 0, 10, true), r(9, "a", 0, 5, 6), r(9, "a", 1, 11, 12),
				w(1, "a", 2, 20, 30, true), r(8, "a", 2, 31, 32), final(10, "a", 2, 40)}},
		{name: "a read concurrent with a write may return the old or the new value",
			ops: []Op{w(1, "a", 1, 0, 10, true), w(1, "a", 2, 20, 30, true), r(8, "a", 1, 21, 29),
				r(9, "a", 2, 22, 28), r(7, "a", 1, 25, 35), final(10, "a", 2, 40)}},
		{name: "a read that overlaps the acknowledgement is not stale",
			ops: []Op{w(1, "a", 1, 0, 10, true), r(9, "a", 0, 9, 11), final(10, "a", 1, 40)}},
		{name: "stale: less than a value acknowledged before the read",
			ops:  []Op{w(1, "a", 1, 0, 10, true), w(1, "a", 2, 11, 20, true), r(9, "a", 1, 21, 22), final(10, "a", 2, 40)},
			want: map[string]int{Stale: 1}},
		{name: "stale: absent after an acknowledged write",
			ops:  []Op{w(1, "a", 1, 0, 10, true), r(9, "a", 0, 11, 12), final(10, "a", 1, 40)},
			want: map[string]int{Stale: 1}},
		{name: "non-monotonic: one reader goes back",
			ops: []Op{w(1, "a", 1, 0, 10, true), w(1, "a", 2, 11, 30, true),
				r(9, "a", 2, 12, 13), r(9, "a", 1, 14, 15), final(10, "a", 2, 40)},
			want: map[string]int{NonMonotonic: 1}},
		{name: "two readers may see a concurrent write in different orders",
			ops: []Op{w(1, "a", 1, 0, 10, true), w(1, "a", 2, 11, 30, true),
				r(9, "a", 2, 12, 13), r(8, "a", 1, 14, 15), final(10, "a", 2, 40)}},
		{name: "stale and non-monotonic at once",
			ops: []Op{w(1, "a", 1, 0, 10, true), w(1, "a", 2, 11, 20, true),
				r(9, "a", 2, 21, 22), r(9, "a", 1, 23, 24), final(10, "a", 2, 40)},
			want: map[string]int{Stale: 1, NonMonotonic: 1}},
		{name: "unknown: a value never written",
			ops:  []Op{w(1, "a", 1, 0, 10, true), r(9, "a", 7, 11, 12), final(10, "a", 1, 40)},
			want: map[string]int{Unknown: 1}},
		{name: "unknown: a value read before its write was invoked",
			ops:  []Op{w(1, "a", 1, 0, 10, true), r(9, "a", 2, 11, 12), w(1, "a", 2, 13, 20, true), final(10, "a", 2, 40)},
			want: map[string]int{Unknown: 1}},
		{name: "unknown: another key's value",
			ops: []Op{w(1, "a", 1, 0, 10, true), w(2, "b", 1, 0, 10, true), w(2, "b", 2, 11, 12, true),
				r(9, "a", 2, 13, 14), final(10, "a", 1, 40), final(10, "b", 2, 41)},
			want: map[string]int{Unknown: 1}},
		{name: "a failed write may be visible",
			ops: []Op{w(1, "a", 1, 0, 10, true), w(1, "a", 2, 11, 20, false), r(9, "a", 2, 21, 22),
				r(8, "a", 1, 23, 24), final(10, "a", 2, 40)}},
		{name: "a failed write may stay invisible",
			ops: []Op{w(1, "a", 1, 0, 10, true), w(1, "a", 2, 11, 20, false), r(9, "a", 1, 21, 22), final(10, "a", 1, 40)}},
		{name: "a failed write may take effect late",
			ops: []Op{w(1, "a", 1, 0, 10, false), r(9, "a", 0, 11, 12), r(9, "a", 1, 13, 14), final(10, "a", 1, 40)}},
		{name: "a failed write does not excuse missing a later acknowledged one",
			ops:  []Op{w(1, "a", 1, 0, 10, false), w(1, "a", 2, 11, 20, true), r(9, "a", 1, 21, 22), final(10, "a", 2, 40)},
			want: map[string]int{Stale: 1}},
		{name: "lost: the final read misses the last acknowledged value",
			ops:  []Op{w(1, "a", 1, 0, 10, true), w(1, "a", 2, 11, 20, true), final(10, "a", 1, 40)},
			want: map[string]int{Lost: 1}},
		{name: "lost: the final read finds the key absent",
			ops:  []Op{w(1, "a", 1, 0, 10, true), final(10, "a", 0, 40)},
			want: map[string]int{Lost: 1}},
		{name: "lost: no final read of an acknowledged key",
			ops:  []Op{w(1, "a", 1, 0, 10, true), r(9, "a", 1, 11, 12)},
			want: map[string]int{Lost: 1}},
		{name: "a failed final read does not count as one",
			ops:  []Op{w(1, "a", 1, 0, 10, true), {Type: Read, Process: 10, Key: "a", Invoke: ms(40), Complete: ms(41), Final: true}},
			want: map[string]int{Lost: 1}},
		{name: "a final read may return a later failed write",
			ops: []Op{w(1, "a", 1, 0, 10, true), w(1, "a", 2, 11, 20, false), final(10, "a", 2, 40), final(11, "a", 2, 40)}},
		{name: "failed reads are not judged",
			ops: []Op{w(1, "a", 1, 0, 10, true), {Type: Read, Process: 9, Key: "a", Invoke: ms(11), Complete: ms(12)}, final(10, "a", 1, 40)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Check(tc.ops)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			for k, n := range res.Counts {
				if n > 0 {
					got[k] = n
				}
			}
			want := tc.want
			if want == nil {
				want = map[string]int{}
			}
			if len(got) != len(want) {
				t.Fatalf("violations %v, want %v:\n%s", got, want, res.Sample(10))
			}
			for k, n := range want {
				if got[k] != n {
					t.Fatalf("violations %v, want %v:\n%s", got, want, res.Sample(10))
				}
			}
			if len(res.Violations) != sum(want) || res.OK() != (len(want) == 0) {
				t.Fatalf("%d violations listed, counts %v", len(res.Violations), got)
			}
		})
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestCheckRejectsHistoriesOutsideTheModel(t *testing.T) {
	for name, ops := range map[string][]Op{
		"two writers of one key":   {w(1, "a", 1, 0, 1, true), w(2, "a", 2, 2, 3, true)},
		"values not increasing":    {w(1, "a", 2, 0, 1, true), w(1, "a", 2, 2, 3, true)},
		"values starting at 0":     {w(1, "a", 0, 0, 1, true)},
		"overlapping ops":          {w(1, "a", 1, 0, 10, true), w(1, "b", 1, 5, 6, true)},
		"completes before invoked": {r(9, "a", 0, 5, 4)},
	} {
		if _, err := Check(ops); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCounts(t *testing.T) {
	ops := []Op{w(1, "a", 1, 0, 10, true), w(1, "a", 2, 11, 20, false), r(9, "a", 1, 21, 22),
		{Type: Read, Process: 9, Key: "a", Invoke: ms(23), Complete: ms(24)}, final(10, "a", 1, 40)}
	res, err := Check(ops)
	if err != nil {
		t.Fatal(err)
	}
	if res.Writes != 2 || res.FailedWrites != 1 || res.Reads != 3 || res.FailedReads != 1 || res.FinalReads != 1 {
		t.Fatalf("counts: %s", res.Summary())
	}
	if !strings.Contains(res.Summary(), "violations 0") {
		t.Fatal(res.Summary())
	}
}

// memStore is a linearizable store (a map under a mutex) and a variant that serves
// one side from a snapshot that stops following writes.
type memStore struct {
	mu      sync.Mutex
	m       map[string]int64
	frozen  map[string]int64 // side 1 reads this when set and serveOld
	old     bool
	dropped bool // writes fail (and are lost) when set
}

func (s *memStore) write(_ context.Context, _ int, key string, v int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropped {
		return errors.New("unavailable")
	}
	s.m[key] = v
	return nil
}

func (s *memStore) read(_ context.Context, side int, key string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if side == 1 && s.old {
		return s.frozen[key], nil
	}
	return s.m[key], nil
}

// freeze takes a snapshot of the map for side 1.
func (s *memStore) freeze() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = map[string]int64{}
	for k, v := range s.m {
		s.frozen[k] = v
	}
}

// serveOld makes side 1 read the snapshot (true) or the live map (false).
func (s *memStore) serveOld(on bool) {
	s.mu.Lock()
	s.old = on
	s.mu.Unlock()
}

func workload(s *memStore) Workload {
	return Workload{Writers: 4, KeysPerWriter: 2, Readers: 4, Sides: 2, Write: s.write, Read: s.read,
		Pause: 100 * time.Microsecond, Tail: 20 * time.Millisecond}
}

func TestRunLinearizableStore(t *testing.T) {
	s := &memStore{m: map[string]int64{}}
	ops, err := Run(context.Background(), workload(s), func(context.Context) error {
		time.Sleep(50 * time.Millisecond)
		s.mu.Lock()
		s.dropped = true // failed writes are indeterminate: none of this is a violation
		s.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		s.mu.Lock()
		s.dropped = false
		s.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Check(ops)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Writes == 0 || res.FailedWrites == 0 || res.FinalReads != 2*8 {
		t.Fatalf("%s\n%s", res.Summary(), res.Sample(5))
	}
}

func TestRunStaleSide(t *testing.T) {
	s := &memStore{m: map[string]int64{}}
	ops, err := Run(context.Background(), workload(s), func(context.Context) error {
		time.Sleep(20 * time.Millisecond)
		s.freeze()
		for range 5 { // side 1 flips between the live map and an old snapshot
			time.Sleep(10 * time.Millisecond)
			s.serveOld(true)
			time.Sleep(10 * time.Millisecond)
			s.serveOld(false)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Check(ops)
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts[Stale] == 0 || res.Counts[NonMonotonic] == 0 || res.Counts[Lost] != 0 {
		t.Fatalf("a side serving an old snapshot: %s", res.Summary())
	}
}
