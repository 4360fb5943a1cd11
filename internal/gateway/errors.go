package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/backtestpersistence/operator/internal/persist"
	"github.com/backtestpersistence/operator/internal/tenant"
)

// Code is the stable, machine-readable error code of an API error.
type Code string

// The error codes of the API and the HTTP status each one travels with.
const (
	CodeInvalidRequest Code = "InvalidRequest" // 400
	CodeUnauthorized   Code = "Unauthorized"   // 401
	CodeForbidden      Code = "Forbidden"      // 403
	CodeNotFound       Code = "NotFound"       // 404
	CodeMethod         Code = "MethodNotAllowed"
	CodeTooLarge       Code = "TooLarge"    // 413
	CodeUnavailable    Code = "Unavailable" // 503, retryable
	CodeInternal       Code = "Internal"    // 500
)

// Status is the HTTP status code of an error code.
func (c Code) Status() int {
	switch c {
	case CodeInvalidRequest:
		return http.StatusBadRequest
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeMethod:
		return http.StatusMethodNotAllowed
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Error is an API error: the JSON body {"code","message"} of every non-2xx response.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Error implements error.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// apiErrorf builds an *Error.
func apiErrorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// classify maps any error of the request path to an API error. Store and registry
// errors keep their message (they never carry credentials: the store reports
// classes and key names, the registry reports condition messages).
func classify(err error) *Error {
	if err == nil {
		return nil // before the variables below, which errors.As moves to the heap
	}
	var apiErr *Error
	var unavailable *tenant.UnavailableError
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.Is(err, tenant.ErrNotFound):
		return &Error{Code: CodeNotFound, Message: err.Error()}
	case errors.As(err, &unavailable):
		return &Error{Code: CodeUnavailable, Message: unavailable.Error()}
	case errors.Is(err, persist.ErrTooLarge):
		return &Error{Code: CodeTooLarge, Message: err.Error()}
	case errors.Is(err, persist.ErrInvalid):
		return &Error{Code: CodeInvalidRequest, Message: err.Error()}
	case errors.Is(err, persist.ErrUnavailable),
		errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeUnavailable, Message: err.Error()}
	case errors.Is(err, context.Canceled):
		// The client went away; the status is never seen, but the metric is honest.
		return &Error{Code: CodeUnavailable, Message: "request cancelled"}
	default:
		return &Error{Code: CodeInternal, Message: err.Error()}
	}
}
