package gateway

import (
	"slices"
	"testing"
)

// Bodies that end inside a string or an escape are malformed, also when the slice
// has no spare capacity behind it (the server hands the decoder exactly the bytes
// it read, and a read past the end would panic).
func TestDecodeClippedBodiesEndingInsideStrings(t *testing.T) {
	whole := []string{
		`{"value":{"a":"\`,
		`{"kind":"state","op":"write","key":{"signalId":"a","bucketName":"b"},"value":"aaaa\`,
		`{"kind":"state","op":"write","key":{"signalId":"a","bucketName":"b"},"value":["x","\u12`,
		`{"kind":"state","op":"write","key":{"signalId":"a","bucketName":"b"},"value":{"k\`,
		`{"kind":"state","op":"write","key":{"signalId":"a","bucketName":"b"},"value":"\"\\\"`,
		`{"ops":[{"kind":"state","op":"write","key":{"signalId":"a","bucketName":"b"},"value":"\`,
	}
	for _, s := range whole {
		for n := 1; n <= len(s); n++ {
			b := slices.Clip([]byte(s[:n]))
			if _, err := DecodeOp(b); err == nil {
				t.Errorf("DecodeOp(%q) accepted a truncated body", b)
			} else if c := classify(err).Code; c != CodeInvalidRequest {
				t.Errorf("DecodeOp(%q): code %s, want %s", b, c, CodeInvalidRequest)
			}
			if _, err := DecodeBatch(slices.Clip([]byte(s[:n])), 10); err == nil {
				t.Errorf("DecodeBatch(%q) accepted a truncated body", b)
			}
		}
	}
}
