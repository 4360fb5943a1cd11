package infra

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/auth"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	v1 "github.com/backtestpersistence/operator/api/v1"
)

// UnreachableError says a server could not be reached (refused, timed out, unknown host).
type UnreachableError struct {
	What string // "mongo" or "redis"
	Err  error
}

func (e *UnreachableError) Error() string { return fmt.Sprintf("%s unreachable: %v", e.What, e.Err) }
func (e *UnreachableError) Unwrap() error { return e.Err }

// AuthError says a server was reached and rejected the credentials.
type AuthError struct {
	What string // "mongo" or "redis"
	Err  error
}

func (e *AuthError) Error() string { return fmt.Sprintf("%s authentication failed: %v", e.What, e.Err) }
func (e *AuthError) Unwrap() error { return e.Err }

// Class is what went wrong with a server, as far as a status condition cares.
type Class int

const (
	// ClassNone: no error.
	ClassNone Class = iota
	// ClassCheckFailed: the check could not be completed; the server's state is unknown.
	ClassCheckFailed
	// ClassUnreachable: the server could not be reached.
	ClassUnreachable
	// ClassAuthFailed: the server rejected the credentials.
	ClassAuthFailed
	// ClassInvalidURI: the connection string is unusable.
	ClassInvalidURI
	// ClassSecretMissing: a referenced Secret does not exist.
	ClassSecretMissing
	// ClassKeyMissing: a referenced Secret lacks the key.
	ClassKeyMissing
)

// Classify sorts an error from this package, the MongoDB driver or go-redis into a Class.
func Classify(err error) Class {
	if err == nil {
		return ClassNone
	}
	var (
		secretMissing *SecretMissingError
		keyMissing    *KeyMissingError
		invalid       *InvalidURIError
		unreachable   *UnreachableError
		authErr       *AuthError
	)
	switch {
	case errors.As(err, &secretMissing):
		return ClassSecretMissing
	case errors.As(err, &keyMissing):
		return ClassKeyMissing
	case errors.As(err, &invalid):
		return ClassInvalidURI
	case errors.As(err, &authErr):
		return ClassAuthFailed
	case errors.As(err, &unreachable):
		return ClassUnreachable
	}
	if isAuthFailure(err) {
		return ClassAuthFailed
	}
	if isUnreachable(err) {
		return ClassUnreachable
	}
	return ClassCheckFailed
}

// Reason is the condition reason for an error (v1.ReasonSucceeded for nil).
func Reason(err error) string {
	switch Classify(err) {
	case ClassNone:
		return v1.ReasonSucceeded
	case ClassSecretMissing:
		return v1.ReasonSecretMissing
	case ClassKeyMissing:
		return v1.ReasonSecretKeyMissing
	case ClassInvalidURI:
		return v1.ReasonInvalidURI
	case ClassUnreachable:
		return v1.ReasonUnreachable
	case ClassAuthFailed:
		return v1.ReasonAuthenticationFailed
	default:
		return v1.ReasonCheckFailed
	}
}

// mongoAuthFailed is MongoDB's AuthenticationFailed error code.
const mongoAuthFailed = 18

func isAuthFailure(err error) bool {
	var authE *auth.Error
	if errors.As(err, &authE) {
		return true
	}
	var cmdErr mongo.CommandError
	if errors.As(err, &cmdErr) && cmdErr.HasErrorCode(mongoAuthFailed) {
		return true
	}
	// Redis reports bad credentials as error replies; go-redis keeps the reply text.
	msg := err.Error()
	for _, p := range []string{"WRONGPASS", "NOAUTH", "invalid password", "invalid username-password pair"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func isUnreachable(err error) bool {
	var (
		sel    topology.ServerSelectionError
		selPtr *topology.ServerSelectionError
		dnsErr *net.DNSError
		opErr  *net.OpError
	)
	switch {
	case errors.As(err, &sel), errors.As(err, &selPtr):
		return true
	case errors.As(err, &dnsErr), errors.As(err, &opErr):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case mongo.IsNetworkError(err):
		return true
	}
	return false
}
