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

// A body that is not valid UTF-8 is malformed: encoding/json would store U+FFFD
// in place of the bytes the client sent.
func TestDecodeRejectsInvalidUTF8(t *testing.T) {
	for _, b := range []string{
		"{\"kind\":\"state\",\"op\":\"write\",\"key\":{\"signalId\":\"a\",\"bucketName\":\"b\"},\"value\":\"\xff\xfe\",\"when\":1}",
		"{\"kind\":\"state\",\"op\":\"write\",\"key\":{\"signalId\":\"a\",\"bucketName\":\"b\"},\"value\":{\"k\xc3\":1},\"when\":1}",
		"{\"kind\":\"state\",\"op\":\"write\",\"key\":{\"signalId\":\"a\",\"bucketName\":\"b\"},\"value\":\"\xed\xa0\x80\",\"when\":1}", // a surrogate
	} {
		if _, err := DecodeOp([]byte(b)); err == nil || classify(err).Code != CodeInvalidRequest {
			t.Errorf("DecodeOp(%q): %v, want InvalidRequest", b, err)
		}
		if _, err := DecodeBatch([]byte(`{"ops":[`+b+`]}`), 10); err == nil || classify(err).Code != CodeInvalidRequest {
			t.Errorf("DecodeBatch(%q): %v, want InvalidRequest", b, err)
		}
	}
}

// A request that names a field twice is refused, whichever decoder path it takes.
func TestDecodeRejectsDuplicateFields(t *testing.T) {
	for _, b := range []string{
		`{"kind":"state","kind":"state","op":"read","key":{"signalId":"a","bucketName":"b"}}`,
		`{"kind":"state","op":"read","key":{"signalId":"a","signalId":"a","bucketName":"b"}}`,
		`{"kind":"st\u0061te","op":"read","op":"read","key":{"signalId":"a","bucketName":"b"}}`,
		`{"kind":"state","op":"read","key":{"signalId":"a","bucketName":"b"},"key":{"signalId":"a","bucketName":"b"}}`,
	} {
		if _, err := DecodeOp([]byte(b)); err == nil || classify(err).Code != CodeInvalidRequest {
			t.Errorf("DecodeOp(%s): %v, want InvalidRequest", b, err)
		}
	}
	if _, err := DecodeBatch([]byte(`{"ops":[],"ops":[{"kind":"log","op":"read","key":{}}]}`), 10); err == nil {
		t.Error("DecodeBatch accepted a repeated ops")
	}
	// Repeated names inside a value are the payload's own business.
	if _, err := DecodeOp([]byte(`{"kind":"state","op":"write","key":{"signalId":"a","bucketName":"b"},"value":{"x":1,"x":2},"when":1}`)); err != nil {
		t.Errorf("value with repeated names: %v", err)
	}
}
