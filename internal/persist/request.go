package persist

import "encoding/json"

// Request is one operation on one kind, in the form the gateway receives it.
// Key holds the context key fields of the kind (and its item field where the
// kind has one: "key" for Measure/Interval, "memoryId" for Memory), named as in
// KindSpec.Key: strings, and "backtest" as a bool.
type Request struct {
	Kind  Kind            `json:"kind"`
	Op    Op              `json:"op"`
	Key   map[string]any  `json:"key,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
	// When is the logical time of the operation (epoch ms) for kinds that carry it.
	When *int64 `json:"when,omitempty"`
	// Candle window reads: exactly Limit candles starting at Since.
	// Scans: at most Limit keys (1..MaxScanPage), after the cursor After.
	Limit int64 `json:"limit,omitempty"`
	Since int64 `json:"since,omitempty"`
	Until int64 `json:"until,omitempty"`
	// After is a scan's cursor: the "next" of the previous page, empty for the first.
	After string `json:"after,omitempty"`
}

// Result is the outcome of one Request.
// Value is the JSON a read or list returns (the kind's Empty value when nothing is
// stored); Has is the answer of OpHas. Writes and removes return an empty Result.
type Result struct {
	Value json.RawMessage `json:"value,omitempty"`
	Has   *bool           `json:"has,omitempty"`
}
