package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/containerd/errdefs"
)

// Stable error codes of the API. Clients match on these, not on messages.
const (
	CodeUnauthenticated = "unauthenticated"
	CodeForbidden       = "forbidden"
	CodeRateLimited     = "rate_limited"
	CodeBodyTooLarge    = "body_too_large"
	CodeMalformed       = "malformed_request"
	CodeInvalidArgument = "invalid_argument"
	CodeNotFound        = "not_found"
	CodeAlreadyExists   = "already_exists"
	// CodeRefused: vordr (the verification gate, the profile or the
	// operator's annotation rules) refused the container.
	CodeRefused  = "refused"
	CodeConflict = "conflict"
	// CodeMethodNotAllowed: the route exists without this method (Allow
	// lists those it has).
	CodeMethodNotAllowed = "method_not_allowed"
	CodeUnavailable      = "unavailable"
	CodeTimeout          = "timeout"
	CodeInternal         = "internal"
)

// Error is an API error with its HTTP status.
type Error struct {
	Status  int
	Code    string
	Message string
	// Err is the cause, logged but not sent.
	Err error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func apiError(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

// fromErr maps a containerd or vordr error to an API error. containerd's
// errdefs classes carry through gRPC, so the class decides the status and
// the message (which names what was wrong, e.g. the gate's reason) is
// passed on.
func fromErr(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	e := &Error{Message: cleanMessage(err.Error()), Err: err}
	switch {
	// A refusal first: the gate's error wraps its cause (e.g. the image's
	// missing evidence, a NotFound) under PermissionDenied, and the caller
	// must learn that it was refused, not that something was missing.
	case errdefs.IsPermissionDenied(err), errdefs.IsFailedPrecondition(err):
		e.Status, e.Code = http.StatusForbidden, CodeRefused
	case errdefs.IsNotFound(err):
		e.Status, e.Code = http.StatusNotFound, CodeNotFound
	case errdefs.IsAlreadyExists(err):
		e.Status, e.Code = http.StatusConflict, CodeAlreadyExists
	case errdefs.IsInvalidArgument(err):
		e.Status, e.Code = http.StatusBadRequest, CodeInvalidArgument
	case errdefs.IsConflict(err):
		e.Status, e.Code = http.StatusConflict, CodeConflict
	case errdefs.IsUnavailable(err):
		e.Status, e.Code = http.StatusServiceUnavailable, CodeUnavailable
	case errdefs.IsDeadlineExceeded(err), errors.Is(err, context.DeadlineExceeded):
		e.Status, e.Code = http.StatusGatewayTimeout, CodeTimeout
	case errdefs.IsNotImplemented(err):
		e.Status, e.Code = http.StatusNotImplemented, "not_implemented"
	default:
		e.Status, e.Code = http.StatusInternalServerError, CodeInternal
	}
	return e
}

// cleanMessage drops the lines gRPC appends for each wrapped error class
// ("permission denied" once per hop): the first line says it all.
func cleanMessage(msg string) string {
	first, rest, ok := strings.Cut(msg, "\n")
	if !ok {
		return msg
	}
	for _, l := range strings.Split(rest, "\n") {
		if len(l) > 40 {
			return msg
		}
	}
	return first
}

func writeError(w http.ResponseWriter, e *Error) {
	var b errorBody
	b.Error.Code, b.Error.Message = e.Code, e.Message
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vordr"`)
	}
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
