package history

import (
	"sync"
	"time"
)

// OpType is what an operation did.
type OpType uint8

// Operation types.
const (
	Write OpType = iota + 1
	Read
)

func (t OpType) String() string {
	switch t {
	case Write:
		return "write"
	case Read:
		return "read"
	}
	return "?"
}

// Op is one recorded operation.
type Op struct {
	Type OpType
	// Process is the writer or reader that issued it (sequential: one op at a time).
	Process int
	// Side is which client of the system under test served it (a store, a replica).
	Side int
	Key  string
	// Value is the value written, or the value a read returned (0: absent).
	Value int64
	// Invoke and Complete are offsets on the recorder's monotonic clock.
	Invoke, Complete time.Duration
	// OK: the write was acknowledged, or the read returned a value. A failed read
	// returned nothing and is not checked; a failed write is indeterminate.
	OK bool
	// Final marks the reads made after the workload and all faults ended.
	Final bool
}

// Recorder collects operations from concurrent processes. Safe for concurrent use.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
}

// NewRecorder returns an empty recorder whose clock starts now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now is the current offset on the recorder's clock. Take it before invoking an
// operation and again after it returned.
func (r *Recorder) Now() time.Duration { return time.Since(r.start) }

// Add records one operation.
func (r *Recorder) Add(op Op) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Ops returns a copy of the recorded operations.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}
