package raftstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/drover-dev/drover/deploy"
	"github.com/hashicorp/raft"
)

// Idempotent writes. A client that may send the same write twice (its
// first answer was lost) names it with a request key; the key travels in
// the command's envelope, and the state remembers the keys it applied, so
// that a repeat is answered with the first one's result instead of being
// applied again.

var (
	// ErrOutcomeUnknown means leadership was lost after the command was
	// appended to the log: it may or may not be applied. The error also
	// matches ErrNotLeader.
	ErrOutcomeUnknown = errors.New("leadership lost while the command was being committed: it may or may not have been applied")
	// ErrAlreadyApplied is matched by an *AppliedError.
	ErrAlreadyApplied = errors.New("request already applied")
)

// AppliedError is Apply's answer to a command whose request key was applied
// before: nothing changed. Result is what the first one produced (the ID of
// the deployment a CreateDeployment recorded, "" for other commands).
type AppliedError struct {
	Key    string
	Result string
}

func (e *AppliedError) Error() string {
	return fmt.Sprintf("request %s: %v", e.Key, ErrAlreadyApplied)
}

// Is makes errors.Is(err, ErrAlreadyApplied) hold.
func (e *AppliedError) Is(target error) bool { return target == ErrAlreadyApplied }

// Applied reports whether err says the command's request was applied
// before, and that first application's result.
func Applied(err error) (result string, ok bool) {
	var e *AppliedError
	if errors.As(err, &e) {
		return e.Result, true
	}
	return "", false
}

// AppliedRequest is one remembered request key.
type AppliedRequest struct {
	Key    string `json:"key"`
	Result string `json:"result,omitempty"`
	Seq    uint64 `json:"seq"` // the State.Seq of its command
}

// maxRequestKeys bounds the remembered keys; the oldest go first. A client
// repeats a request within seconds, while thousands of writes (host stages
// included) go by only in hours.
const maxRequestKeys = 1024

// MaxRequestKeyLen bounds a request key's length.
const MaxRequestKeyLen = 128

type requestKeyCtx struct{}

// WithRequestKey returns a context whose Apply calls of an operator's write
// (a command that implements keyed: CreateDeployment, Request, SetState,
// PutToken, DeleteToken) carry key, making them idempotent. Bookkeeping
// applied on the way under the same context (Prune before a submit) does
// not: it would take the key and leave the write a "repeat". An empty key
// changes nothing.
func WithRequestKey(ctx context.Context, key string) context.Context {
	if key == "" {
		return ctx
	}
	return context.WithValue(ctx, requestKeyCtx{}, key)
}

// keyed reports whether c records an operator's write, the kind of command
// a request key names.
func keyed(c deploy.Command) bool {
	switch c.(type) {
	case *deploy.CreateDeployment, *deploy.Request, *deploy.SetState, *PutToken, *DeleteToken:
		return true
	}
	return false
}

// requestKey is the key c carries when applied under ctx.
func requestKey(ctx context.Context, c deploy.Command) string {
	if !keyed(c) {
		return ""
	}
	return RequestKey(ctx)
}

// RequestKey returns the request key ctx carries, "" if none.
func RequestKey(ctx context.Context) string {
	k, _ := ctx.Value(requestKeyCtx{}).(string)
	return k
}

// applyOnce applies c unless key was applied before. Only a command that
// was applied is remembered: a refused one changed nothing, and its repeat
// is judged afresh.
func (s *State) applyOnce(c deploy.Command, key string) error {
	if key != "" {
		for _, r := range s.Requests {
			if r.Key == key {
				s.Seq++ // a command all the same: Seq counts every one
				return &AppliedError{Key: key, Result: r.Result}
			}
		}
	}
	if err := s.safeApply(c); err != nil || key == "" {
		return err
	}
	var result string
	if cd, ok := c.(*deploy.CreateDeployment); ok {
		result = cd.Deployment.ID
	}
	s.Requests = append(s.Requests, AppliedRequest{Key: key, Result: result, Seq: s.Seq})
	if n := len(s.Requests) - maxRequestKeys; n > 0 {
		s.Requests = append([]AppliedRequest(nil), s.Requests[n:]...)
	}
	return nil
}

// leadershipError converts raft's leadership errors. raft.ErrNotLeader
// means nothing was appended (ErrNotLeader: the caller may try the
// leader); raft.ErrLeadershipLost means the entry was appended and may
// still commit under the next leader (ErrOutcomeUnknown). It returns nil
// for any other error.
func leadershipError(what string, err error) error {
	switch {
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%s: %w: %w (%w)", what, ErrOutcomeUnknown, ErrNotLeader, err)
	case errors.Is(err, raft.ErrNotLeader):
		return fmt.Errorf("%s: %w: %w", what, ErrNotLeader, err)
	}
	return nil
}

// RequestResult returns the result of the request key's command if it was
// applied (and is still remembered).
func (s *Store) RequestResult(key string) (result string, ok bool) {
	if key == "" {
		return "", false
	}
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	for _, r := range s.fsm.state.Requests {
		if r.Key == key {
			return r.Result, true
		}
	}
	return "", false
}
