package history

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Violation kinds.
const (
	Stale        = "stale"
	NonMonotonic = "non-monotonic"
	Unknown      = "unknown"
	Lost         = "lost"
)

// Violation is one read that broke a property.
type Violation struct {
	Kind string
	Op   Op
	// Want is the least value the read should have returned (for unknown reads, 0).
	Want int64
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: process %d (side %d) read %s=%d at [%v, %v], want >= %d",
		v.Kind, v.Op.Process, v.Op.Side, v.Op.Key, v.Op.Value, v.Op.Invoke, v.Op.Complete, v.Want)
}

// Result is the outcome of Check.
type Result struct {
	Writes, FailedWrites int
	Reads, FailedReads   int
	FinalReads           int
	Violations           []Violation
	// Counts per violation kind.
	Counts map[string]int
}

// OK reports whether the history has no violation.
func (r Result) OK() bool { return len(r.Violations) == 0 }

// Summary is a one-line account of the history.
func (r Result) Summary() string {
	return fmt.Sprintf("writes %d (failed %d), reads %d (failed %d, final %d), violations %d (stale %d, non-monotonic %d, unknown %d, lost %d)",
		r.Writes, r.FailedWrites, r.Reads, r.FailedReads, r.FinalReads, len(r.Violations),
		r.Counts[Stale], r.Counts[NonMonotonic], r.Counts[Unknown], r.Counts[Lost])
}

// Sample returns up to n violations, one per line, earliest first.
func (r Result) Sample(n int) string {
	var b strings.Builder
	for i, v := range r.Violations {
		if i == n {
			fmt.Fprintf(&b, "... and %d more\n", len(r.Violations)-n)
			break
		}
		b.WriteString(v.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// keyWrites are the writes of one key.
type keyWrites struct {
	// acked are the acknowledged writes ordered by completion (values increase).
	acked []Op
	// invokedAt maps each written value (acknowledged or not) to its write's invoke time.
	invokedAt map[int64]time.Duration
	maxAcked  int64
}

// floor is the greatest value acknowledged before t (0 if none).
func (k *keyWrites) floor(t time.Duration) int64 {
	i := sort.Search(len(k.acked), func(i int) bool { return k.acked[i].Complete >= t })
	if i == 0 {
		return 0
	}
	return k.acked[i-1].Value
}

// Check validates the history. It returns an error when the history does not follow
// the model (a key written by two processes, values not increasing, overlapping
// operations of one process): such a history cannot be judged.
func Check(ops []Op) (Result, error) {
	res := Result{Counts: map[string]int{}}
	writes := map[string]*keyWrites{}
	writer := map[string]int{}
	lastWrite := map[string]int64{}
	byProcess := map[int][]Op{}
	sorted := append([]Op(nil), ops...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Invoke < sorted[j].Invoke })
	for _, op := range sorted {
		if op.Complete < op.Invoke {
			return res, fmt.Errorf("process %d: %s of %s completes before it is invoked", op.Process, op.Type, op.Key)
		}
		byProcess[op.Process] = append(byProcess[op.Process], op)
		if op.Type != Write {
			continue
		}
		if w, ok := writer[op.Key]; ok && w != op.Process {
			return res, fmt.Errorf("key %s written by processes %d and %d", op.Key, w, op.Process)
		}
		writer[op.Key] = op.Process
		if op.Value <= lastWrite[op.Key] {
			return res, fmt.Errorf("key %s: write of %d after %d (values must increase from 1)", op.Key, op.Value, lastWrite[op.Key])
		}
		lastWrite[op.Key] = op.Value
		k := writes[op.Key]
		if k == nil {
			k = &keyWrites{invokedAt: map[int64]time.Duration{}}
			writes[op.Key] = k
		}
		k.invokedAt[op.Value] = op.Invoke
		res.Writes++
		if !op.OK {
			res.FailedWrites++
			continue
		}
		k.acked = append(k.acked, op)
		k.maxAcked = op.Value
	}
	for p, list := range byProcess {
		for i := 1; i < len(list); i++ {
			if list[i].Invoke < list[i-1].Complete {
				return res, fmt.Errorf("process %d runs two operations at once (at %v)", p, list[i].Invoke)
			}
		}
	}
	for _, k := range writes {
		// One writer per key, one op at a time: completion order is value order.
		sort.Slice(k.acked, func(i, j int) bool { return k.acked[i].Complete < k.acked[j].Complete })
	}
	empty := &keyWrites{invokedAt: map[int64]time.Duration{}}
	type pk struct {
		process int
		key     string
	}
	seen := map[pk]Op{} // the greatest value each process has read of each key
	finalSeen := map[string]bool{}
	for _, list := range byProcess {
		for _, op := range list {
			if op.Type != Read {
				continue
			}
			res.Reads++
			if !op.OK {
				res.FailedReads++
				continue
			}
			k := writes[op.Key]
			if k == nil {
				k = empty
			}
			if op.Value != 0 {
				if at, ok := k.invokedAt[op.Value]; !ok || at > op.Complete {
					res.add(Violation{Kind: Unknown, Op: op})
					continue
				}
			}
			if f := k.floor(op.Invoke); op.Value < f && !op.Final {
				res.add(Violation{Kind: Stale, Op: op, Want: f}) // a final read below the floor is lost
			}
			if prev, ok := seen[pk{op.Process, op.Key}]; ok && op.Value < prev.Value {
				res.add(Violation{Kind: NonMonotonic, Op: op, Want: prev.Value})
			} else {
				seen[pk{op.Process, op.Key}] = op
			}
			if op.Final {
				res.FinalReads++
				finalSeen[op.Key] = true
				if op.Value < k.maxAcked {
					res.add(Violation{Kind: Lost, Op: op, Want: k.maxAcked})
				}
			}
		}
	}
	keys := make([]string, 0, len(writes))
	for key := range writes {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if k := writes[key]; k.maxAcked > 0 && !finalSeen[key] {
			res.add(Violation{Kind: Lost, Op: Op{Type: Read, Process: -1, Key: key}, Want: k.maxAcked})
		}
	}
	sort.SliceStable(res.Violations, func(i, j int) bool { return res.Violations[i].Op.Invoke < res.Violations[j].Op.Invoke })
	return res, nil
}

func (r *Result) add(v Violation) {
	r.Violations = append(r.Violations, v)
	r.Counts[v.Kind]++
}
