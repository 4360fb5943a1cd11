package infra

import (
	"errors"
	"fmt"
)

// SecretMissingError says a referenced Secret does not exist.
type SecretMissingError struct {
	Namespace, Name string
}

func (e *SecretMissingError) Error() string {
	return fmt.Sprintf("secret %s/%s not found", e.Namespace, e.Name)
}

// KeyMissingError says a referenced Secret exists but has no (or an empty) value under the key.
type KeyMissingError struct {
	Namespace, Name, Key string
}

func (e *KeyMissingError) Error() string {
	return fmt.Sprintf("secret %s/%s has no key %q", e.Namespace, e.Name, e.Key)
}

// InvalidURIError says a connection string cannot be used. The string itself is
// never part of the message: it usually carries a password.
type InvalidURIError struct {
	// What names the setting, e.g. "mongo URI" or "redis URL".
	What string
	// Reason says what is wrong.
	Reason string
}

func (e *InvalidURIError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.What, e.Reason)
}

// IsSecretMissing reports whether err is (or wraps) a *SecretMissingError.
func IsSecretMissing(err error) bool {
	var t *SecretMissingError
	return errors.As(err, &t)
}

// IsKeyMissing reports whether err is (or wraps) a *KeyMissingError.
func IsKeyMissing(err error) bool {
	var t *KeyMissingError
	return errors.As(err, &t)
}

// IsInvalidURI reports whether err is (or wraps) an *InvalidURIError.
func IsInvalidURI(err error) bool {
	var t *InvalidURIError
	return errors.As(err, &t)
}
