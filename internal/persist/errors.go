package persist

import (
	"errors"
	"fmt"
)

// Error classes callers branch on with errors.Is.
var (
	// ErrInvalid: the request is malformed (unknown kind or op, missing or bad key, bad JSON). Nothing was changed.
	ErrInvalid = errors.New("invalid request")
	// ErrTooLarge: a key or payload is over its limit. Nothing was changed.
	ErrTooLarge = errors.New("too large")
	// ErrUnavailable: MongoDB (or, where it is needed, Redis) cannot be reached; retryable.
	ErrUnavailable = errors.New("persistence unavailable")
	// ErrCacheUnavailable wraps ErrUnavailable: a write failed because Redis, which it
	// needs to keep the other replicas' caches coherent, cannot be reached. MongoDB may
	// be fine, and reads still are.
	ErrCacheUnavailable = fmt.Errorf("%w: cache unreachable", ErrUnavailable)
)

// invalidf returns an error that wraps ErrInvalid with a message saying what is wrong.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// tooLargef returns an error that wraps ErrTooLarge.
func tooLargef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrTooLarge, fmt.Sprintf(format, args...))
}
