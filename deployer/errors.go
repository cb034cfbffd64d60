package deployer

import (
	"errors"
	"fmt"
)

// Error codes for errors a person can act on. Everything else is internal:
// logged in full and shown in chat only as "internal error".
const (
	EInvalid   = "invalid"   // the request is malformed or refers to nothing
	ENotFound  = "not_found" // no such deployment, ref or change
	EConflict  = "conflict"  // the state changed, or something stands in the way
	EForbidden = "forbidden" // the person may not do this
	EInternal  = "internal"
)

// Error is an application error: a code and a message written for the chat.
type Error struct {
	Code    string
	Message string
	// Next lists what the person may do about it; the bot renders the
	// choices after the message with the chat's prefix.
	Next []Choice
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with a formatted, human message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Or adds choices for what the person may do next.
func (e *Error) Or(next ...Choice) *Error {
	e.Next = append(e.Next, next...)
	return e
}

// ErrorNext returns the choices an application error offers, or nil.
func ErrorNext(err error) []Choice {
	var e *Error
	if errors.As(err, &e) {
		return e.Next
	}
	return nil
}

// ErrorCode returns the code of an application error, EInternal otherwise.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns what a person should read for err: the message of an
// application error, or "internal error" for anything else.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error (the bot's log has the details)"
}
