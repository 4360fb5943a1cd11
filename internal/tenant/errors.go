package tenant

import "errors"

// ErrNotFound: no BacktestPersistence of that namespace and name is known to the registry.
var ErrNotFound = errors.New("no such BacktestPersistence")

// UnavailableError says why a known tenant is not served right now (retryable):
// an infrastructure condition that is not True, or a store that failed to open.
type UnavailableError struct {
	// Reason is a CamelCase reason, e.g. MongoNotReady or StoreInitFailed.
	Reason string
	// Message is the human-readable explanation (the condition's message where there is one).
	Message string
}

// Error implements error.
func (e *UnavailableError) Error() string {
	if e.Message == "" {
		return e.Reason
	}
	return e.Reason + ": " + e.Message
}
