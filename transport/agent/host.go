package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/drover-dev/drover/internal/fence"
	"github.com/drover-dev/drover/transport/agent/wire"
)

// AgentHost drives one agent the way the engine drives an SSH host (it
// implements orchestrator.Host). It is bound to the agent's name, not to
// one connection: each call uses the agent's session of the moment, so an
// agent that reconnected between two steps is still usable, while an action
// in flight when its connection drops fails with ErrDisconnected.
type AgentHost struct {
	hub  *Hub
	name string
}

// Host returns the Host of a connected agent, or an error wrapping
// ErrOffline that names it ("agent web3 is offline (last seen 12s ago)").
func (h *Hub) Host(name string) (*AgentHost, error) {
	if _, err := h.live(name); err != nil {
		return nil, err
	}
	return &AgentHost{hub: h, name: name}, nil
}

// Name is the agent's name.
func (a *AgentHost) Name() string { return a.name }

// Close does nothing: the session belongs to the hub, not to this Host.
func (a *AgentHost) Close() error { return nil }

// Run runs cmd on the agent with /bin/sh -c, copying its output (stdout
// and stderr, bounded by the agent at wire.MaxOutput) to out as it comes;
// when out has a Stderr() writer, stderr goes there, apart (an agent too
// old to know wire.Action.Streams sends both to out).
// A non-zero exit is an *ExitError; a term older than one the agent has
// seen, an error wrapping fence.ErrFenced; an agent restart, ErrLost; a
// dropped connection, ErrDisconnected.
//
// When ctx ends first Run returns ctx.Err() at once, but the command may
// go on on the agent: the protocol has no cancel, and the agent bounds the
// command by the action's Timeout (ctx's deadline, when it has one).
func (a *AgentHost) Run(ctx context.Context, cmd string, out io.Writer) error {
	act := &wire.Action{Kind: wire.KindRun, Command: cmd}
	if _, ok := out.(interface{ Stderr() io.Writer }); ok {
		act.Streams = true
	}
	s, p, err := a.start(ctx, act)
	if err != nil {
		return err
	}
	defer close(p.gone)
	res, werr, err := a.wait(ctx, s, p, out)
	if err != nil {
		return err
	}
	if err := a.refused(s, act, res); err != nil {
		return err
	}
	if res.Truncated {
		a.hub.log.Info("agent truncated the output of a command", "agent", a.name, "limit", wire.MaxOutput)
	}
	switch {
	case res.ExitCode != 0:
		msg := res.Error
		if msg == "" {
			msg = fmt.Sprintf("command exited with status %d", res.ExitCode)
		}
		return &ExitError{Code: res.ExitCode, Msg: msg}
	case res.Error != "":
		return fmt.Errorf("agent %s: %s", a.name, res.Error)
	case werr != nil:
		return fmt.Errorf("agent %s: writing the command's output: %w", a.name, werr)
	}
	return nil
}

// Put writes r to path on the agent with mode (its permission bits). The
// content is spooled to a temp file first, to send its size and SHA-256
// ahead of the bytes; the agent writes a temp file beside path, checks
// both and renames it over path.
func (a *AgentHost) Put(ctx context.Context, path string, r io.Reader, mode fs.FileMode) error {
	if _, err := a.hub.await(ctx, a.name); err != nil {
		return err // before spooling what may be a large artifact
	}
	f, err := os.CreateTemp("", "drover-put-*")
	if err != nil {
		return fmt.Errorf("put %s on agent %s: spooling the content: %w", path, a.name, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	sum := sha256.New()
	size, err := io.Copy(io.MultiWriter(f, sum), r)
	if err != nil {
		return fmt.Errorf("put %s on agent %s: reading the content: %w", path, a.name, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("put %s on agent %s: spooling the content: %w", path, a.name, err)
	}

	act := &wire.Action{
		Kind:   wire.KindPut,
		Path:   path,
		Mode:   uint32(mode.Perm()),
		Size:   size,
		SHA256: hex.EncodeToString(sum.Sum(nil)),
	}
	s, p, err := a.start(ctx, act)
	if err != nil {
		return err
	}
	defer close(p.gone)

	// abort ends the upload early with an EOF chunk: the agent sees a short
	// file, fails its size check and removes its temp file rather than
	// waiting for the rest.
	abort := func() {
		s.take(p.id)
		_ = s.send(&wire.Frame{Type: wire.TypeChunk, Chunk: &wire.Chunk{ID: p.id, EOF: true}})
	}
	buf := make([]byte, wire.ChunkSize)
	for {
		n, rerr := io.ReadFull(f, buf)
		if n > 0 {
			select {
			case ev := <-p.ch: // an early answer: a stale term, a full disk
				if ev.res != nil {
					return a.putResult(s, act, ev.res)
				}
			case <-p.failed:
				return p.failErr
			default:
			}
			if err := ctx.Err(); err != nil {
				abort()
				return err
			}
			if err := s.send(&wire.Frame{Type: wire.TypeChunk, Chunk: &wire.Chunk{ID: p.id, Data: buf[:n]}}); err != nil {
				s.take(p.id)
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			abort()
			return fmt.Errorf("put %s on agent %s: reading the spooled content: %w", path, a.name, rerr)
		}
	}
	if err := s.send(&wire.Frame{Type: wire.TypeChunk, Chunk: &wire.Chunk{ID: p.id, EOF: true}}); err != nil {
		s.take(p.id)
		return err
	}
	res, _, err := a.wait(ctx, s, p, nil)
	if err != nil {
		return err
	}
	return a.putResult(s, act, res)
}

func (a *AgentHost) putResult(s *session, act *wire.Action, res *wire.Result) error {
	if err := a.refused(s, act, res); err != nil {
		return err
	}
	if res.Error != "" {
		return fmt.Errorf("put %s on agent %s: %s", act.Path, a.name, res.Error)
	}
	return nil
}

// Check has the agent make health check c from the host itself, bounded
// there by timeout (and by ctx's deadline). An unhealthy check is an error
// with the agent's message.
func (a *AgentHost) Check(ctx context.Context, c wire.Check, timeout time.Duration) error {
	act := &wire.Action{Kind: wire.KindCheck, Check: &c, Timeout: wire.Duration(timeout)}
	if timeout > 0 {
		// The agent ends the check after timeout; should its answer never
		// come, stop waiting a little later.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout+a.hub.deadAfter)
		defer cancel()
	}
	s, p, err := a.start(ctx, act)
	if err != nil {
		return err
	}
	defer close(p.gone)
	res, _, err := a.wait(ctx, s, p, nil)
	if err != nil {
		return err
	}
	if err := a.refused(s, act, res); err != nil {
		return err
	}
	if res.Error != "" {
		if res.TimedOut {
			return timedOut(res.Error)
		}
		return errors.New(res.Error)
	}
	return nil
}

// timedOut is a check the agent ended because its time ran out. It reads
// as the agent's message and is context.DeadlineExceeded for errors.Is,
// as a local check cut by its deadline would be.
type timedOut string

func (e timedOut) Error() string { return string(e) }
func (e timedOut) Unwrap() error { return context.DeadlineExceeded }

// start sends act and returns the action waiting for its result; the
// caller closes p.gone when it stops waiting. It fills in the ID, the term
// ctx was confirmed under, and a Timeout no later than ctx's deadline.
func (a *AgentHost) start(ctx context.Context, act *wire.Action) (*session, *pending, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl).Truncate(time.Millisecond)
		if left <= 0 {
			return nil, nil, context.DeadlineExceeded
		}
		if act.Timeout <= 0 || wire.Duration(left) < act.Timeout {
			act.Timeout = wire.Duration(left)
		}
	}
	s, err := a.hub.await(ctx, a.name)
	if err != nil {
		return nil, nil, err
	}
	act.Term = fence.Term(ctx)
	p, err := s.register(act.Term)
	if err != nil {
		return nil, nil, err
	}
	act.ID = p.id
	if err := s.send(&wire.Frame{Type: wire.TypeAction, Action: act}); err != nil {
		s.take(p.id)
		close(p.gone)
		return nil, nil, err
	}
	return s, p, nil
}

// wait returns the action's Result, copying output to out (when not nil)
// in the order it came; werr is the first error writing to out. When ctx
// ends first it returns ctx.Err() and drops what comes later: the action
// may go on on the agent, there is no cancel in the protocol.
func (a *AgentHost) wait(ctx context.Context, s *session, p *pending, out io.Writer) (res *wire.Result, werr, err error) {
	errOut := out
	if e, ok := out.(interface{ Stderr() io.Writer }); ok {
		errOut = e.Stderr()
	}
	handle := func(ev event) *wire.Result {
		if ev.res == nil && out != nil && werr == nil {
			w := out
			if ev.stderr {
				w = errOut
			}
			_, werr = w.Write(ev.data)
		}
		return ev.res
	}
	for {
		select {
		case ev := <-p.ch:
			if res := handle(ev); res != nil {
				return res, werr, nil
			}
		case <-p.failed:
			// What came before the failure still counts.
			for {
				select {
				case ev := <-p.ch:
					if res := handle(ev); res != nil {
						return res, werr, nil
					}
				default:
					return nil, werr, p.failErr
				}
			}
		case <-ctx.Done():
			s.take(p.id)
			return nil, werr, ctx.Err()
		}
	}
}

// refused maps a Result that says the action never ran (a stale term) or
// may have half run (a restart) to its error.
func (a *AgentHost) refused(s *session, act *wire.Action, res *wire.Result) error {
	switch {
	case res.Rejected:
		var msg string
		if seen := s.maxTerm.Load(); seen > act.Term {
			msg = fmt.Sprintf("agent %s rejected term %d: it has seen %d", a.name, act.Term, seen)
		} else if res.Error != "" {
			msg = fmt.Sprintf("agent %s rejected term %d: %s", a.name, act.Term, res.Error)
		} else {
			msg = fmt.Sprintf("agent %s rejected term %d as stale", a.name, act.Term)
		}
		return &agentError{msg, fence.ErrFenced}
	case res.Lost:
		return &agentError{fmt.Sprintf("agent %s: action %s lost: the agent restarted while it ran", a.name, act.ID), ErrLost}
	}
	return nil
}
