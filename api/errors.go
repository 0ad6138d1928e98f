package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/raftstore"
)

// Errors. The backend wraps ErrBadRequest and ErrDigest; the client's
// *Error matches every sentinel below with errors.Is, by its code.
var (
	// ErrBadRequest marks a request the server cannot act on as sent (an
	// invalid plan, a bad artifact reference): 400 with the full message.
	ErrBadRequest = errors.New("bad request")
	// ErrDigest marks an artifact whose content does not hash to its name.
	ErrDigest = errors.New("artifact digest mismatch")

	ErrUnauthorized        = errors.New("unauthorized")
	ErrForbidden           = errors.New("forbidden")
	ErrNotFound            = errors.New("not found")
	ErrConflict            = errors.New("conflict")
	ErrCertificateRequired = errors.New("client certificate required")
	// ErrNotLeader is raftstore.ErrNotLeader: the node that answered is not
	// (or no longer) the leader.
	ErrNotLeader = raftstore.ErrNotLeader
	// ErrOutcomeUnknown is raftstore.ErrOutcomeUnknown: the leader was lost
	// while committing the write, which may or may not have been applied.
	ErrOutcomeUnknown = raftstore.ErrOutcomeUnknown
	// ErrNoLeader means the cluster has no leader that the node knows of.
	ErrNoLeader = errors.New("no leader")
	// ErrUnavailable means no address answered; the error wraps the last
	// failure and names the addresses tried.
	ErrUnavailable = errors.New("no coordinator answered")
)

// Error codes, the "code" of an error body.
const (
	codeBadRequest          = "bad_request"
	codeDigest              = "digest_mismatch"
	codeUnauthorized        = "unauthorized"
	codeForbidden           = "forbidden"
	codeNotFound            = "not_found"
	codeConflict            = "conflict"
	codeCertificateRequired = "certificate_required"
	codeNotLeader           = "not_leader"
	codeNoLeader            = "no_leader"
	codeOutcomeUnknown      = "outcome_unknown"
	codeTooLarge            = "too_large"
	codeTimeout             = "timeout"
	codeBadGateway          = "bad_gateway"
	codeUnavailable         = "unavailable"
	codeInternal            = "internal"
)

// Error is an error answered by a coordinator.
type Error struct {
	Status  int    // HTTP status
	Code    string // machine-readable code, e.g. "not_found"
	Message string // the server's message, in full
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	}
	return e.Message
}

// Is matches the package's sentinels by code (by status when the answer
// carried no code).
func (e *Error) Is(target error) bool {
	code := e.code()
	switch target {
	case ErrBadRequest:
		return code == codeBadRequest || code == codeDigest
	case ErrDigest:
		return code == codeDigest
	case ErrUnauthorized:
		return code == codeUnauthorized
	case ErrForbidden:
		return code == codeForbidden
	case ErrNotFound:
		return code == codeNotFound
	case ErrConflict:
		return code == codeConflict
	case ErrCertificateRequired:
		return code == codeCertificateRequired
	case ErrNotLeader:
		return code == codeNotLeader
	case ErrNoLeader:
		return code == codeNoLeader
	case ErrOutcomeUnknown:
		return code == codeOutcomeUnknown
	}
	return false
}

func (e *Error) code() string {
	if e.Code != "" {
		return e.Code
	}
	switch e.Status {
	case http.StatusBadRequest:
		return codeBadRequest
	case http.StatusUnauthorized:
		return codeUnauthorized
	case http.StatusForbidden:
		return codeForbidden
	case http.StatusNotFound:
		return codeNotFound
	case http.StatusConflict:
		return codeConflict
	}
	return ""
}

// statusOf is the HTTP status that goes with a code (for an error that
// arrives inside an event stream, after the 200).
func statusOf(code string) int {
	switch code {
	case codeBadRequest, codeDigest:
		return http.StatusBadRequest
	case codeUnauthorized, codeCertificateRequired:
		return http.StatusUnauthorized
	case codeForbidden:
		return http.StatusForbidden
	case codeNotFound:
		return http.StatusNotFound
	case codeConflict:
		return http.StatusConflict
	case codeNotLeader, codeNoLeader, codeUnavailable, codeOutcomeUnknown:
		return http.StatusServiceUnavailable
	case codeTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// errorBody is the JSON form of an error.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// toError turns anything a handler or the backend returned into the answer
// the client sees. Errors are matched with errors.Is, never by their text.
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	msg := err.Error()
	var mbe *http.MaxBytesError
	switch {
	// Before ErrNotLeader, which it also matches: "not the leader" tells
	// the client the write was not done, and this one may have been.
	case errors.Is(err, raftstore.ErrOutcomeUnknown):
		return &Error{http.StatusServiceUnavailable, codeOutcomeUnknown, msg}
	case errors.Is(err, raftstore.ErrNotLeader):
		return &Error{http.StatusServiceUnavailable, codeNotLeader, msg}
	case errors.Is(err, ErrNoLeader):
		return &Error{http.StatusServiceUnavailable, codeNoLeader, msg}
	case errors.Is(err, ErrDigest):
		return &Error{http.StatusBadRequest, codeDigest, msg}
	case errors.Is(err, ErrBadRequest), errors.Is(err, deploy.ErrBadCommand):
		return &Error{http.StatusBadRequest, codeBadRequest, msg}
	case errors.As(err, &mbe):
		return &Error{http.StatusRequestEntityTooLarge, codeTooLarge,
			fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
	case errors.Is(err, deploy.ErrUnknownDeployment), errors.Is(err, raftstore.ErrNoToken),
		errors.Is(err, fs.ErrNotExist), errors.Is(err, ErrNotFound):
		return &Error{http.StatusNotFound, codeNotFound, msg}
	case errors.Is(err, deploy.ErrHostLocked), errors.Is(err, deploy.ErrNameInUse),
		errors.Is(err, deploy.ErrExists), errors.Is(err, deploy.ErrTerminal), errors.Is(err, raftstore.ErrBusy),
		errors.Is(err, ErrConflict):
		return &Error{http.StatusConflict, codeConflict, msg}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{http.StatusGatewayTimeout, codeTimeout, msg}
	case errors.Is(err, context.Canceled):
		return &Error{http.StatusServiceUnavailable, codeUnavailable, msg}
	}
	return &Error{http.StatusInternalServerError, codeInternal, msg}
}

// unavailableError is ErrUnavailable with its story.
type unavailableError struct {
	tried []string
	last  error // the last failure, nil when none was seen
	ctx   error // why trying stopped early, nil when it did not
}

func (e *unavailableError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v (tried %s)", ErrUnavailable, strings.Join(e.tried, ", "))
	if e.last != nil {
		fmt.Fprintf(&b, ": %v", e.last)
	}
	if e.ctx != nil {
		fmt.Fprintf(&b, " (%v)", e.ctx)
	}
	return b.String()
}

func (e *unavailableError) Unwrap() []error {
	out := []error{ErrUnavailable}
	if e.last != nil {
		out = append(out, e.last)
	}
	if e.ctx != nil {
		out = append(out, e.ctx)
	}
	return out
}
