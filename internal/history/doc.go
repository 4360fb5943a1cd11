// Package history records concurrent operations on a key-value store and checks the
// recorded history for stale, non-monotonic, unknown and lost reads.
//
// The model: every key has exactly one writer, which writes strictly increasing
// integer values (1, 2, 3, ...); 0 stands for "absent" (no value yet). Each
// operation is recorded with its invoke time (taken before the call) and complete
// time (taken after it returned), on one monotonic clock. A write that returned
// success is acknowledged; a write that returned an error is indeterminate: it may
// or may not have taken effect, now or later, and the checker accepts both. Every
// process (writer, reader) issues one operation at a time.
//
// Violations (see Check):
//
//   - stale: a read returned less than the greatest value whose write was
//     acknowledged before the read was invoked;
//   - non-monotonic: a reader read a key and got less than it got from an earlier
//     read of the same key (earlier: completed before this one was invoked);
//   - unknown: a read returned a value no write of that key had been invoked with
//     before the read completed;
//   - lost: a final read (made after the workload and every fault had ended) returned
//     less than the greatest acknowledged value of the key, or a key with an
//     acknowledged write has no final read at all.
package history
