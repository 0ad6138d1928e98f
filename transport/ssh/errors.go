package ssh

import (
	"errors"
	"fmt"
)

// Errors callers can test with errors.Is.
var (
	// ErrHostKeyUnknown: the host has no entry in known_hosts (strict mode).
	ErrHostKeyUnknown = errors.New("host key unknown")
	// ErrHostKeyChanged: the host presented a key that differs from the one
	// recorded in known_hosts. Always refused, even in accept-new mode.
	ErrHostKeyChanged = errors.New("host key changed")
	// ErrHostKeyRevoked: the presented key is marked @revoked in known_hosts.
	ErrHostKeyRevoked = errors.New("host key revoked")
	// ErrNoAuth: neither an identity file nor ssh-agent provides a key.
	ErrNoAuth = errors.New("no SSH authentication method")
	// ErrAuthFailed: the host accepted none of the keys offered.
	ErrAuthFailed = errors.New("authentication failed")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("ssh client closed")
)

// authFailed is the handshake's own error, marked as ErrAuthFailed
// without changing its text.
type authFailed struct{ error }

func (e authFailed) Unwrap() error        { return e.error }
func (e authFailed) Is(target error) bool { return target == ErrAuthFailed }

// ExitError is a remote command that ran and finished unsuccessfully.
type ExitError struct {
	Code   int    // exit status; 128+n when killed by a known signal n
	Signal string // signal name without "SIG" when killed by a signal, else ""
	Cmd    string // the command as given to Run
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return fmt.Sprintf("command killed by signal %s", e.Signal)
	}
	return fmt.Sprintf("command exited with status %d", e.Code)
}
