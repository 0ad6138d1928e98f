package agent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/drover-dev/drover/transport/agent/wire"
)

// pendingBuffer is the events one action may have queued before the read
// loop waits for its caller: small, because output is bounded by the agent
// (wire.MaxOutput) and the caller drains it as it comes.
const pendingBuffer = 8

// session is one agent connection. It is kept small: one goroutine (the
// handler's read loop), a timer for pings, and the actions in flight.
type session struct {
	hub    *Hub
	name   string
	conn   *websocket.Conn
	ctx    context.Context // ends when the session does; bounds writes
	cancel context.CancelFunc

	wmu sync.Mutex // one frame written at a time

	beat    atomic.Int64  // unix nanoseconds of the last frame received
	maxTerm atomic.Uint64 // highest term the agent has seen, as far as we know

	mu        sync.Mutex
	closed    bool
	pending   map[string]*pending
	timer     *time.Timer
	closeOnce sync.Once
}

// pending is an action waiting for its Result. Output and the Result reach
// the caller through ch, in the order the agent sent them; a failure of
// the session (ErrDisconnected, ErrLost) through fail, which never blocks,
// so that closing sessions never waits for a slow caller.
type pending struct {
	id   string
	term uint64
	ch   chan event
	gone chan struct{} // closed when the caller stops waiting

	failOnce sync.Once
	failed   chan struct{} // closed by fail
	failErr  error
}

// event is an Output's data (of stderr when the action asked for it
// apart) or the Result.
type event struct {
	data   []byte
	stderr bool
	res    *wire.Result
}

func newPending(term uint64) *pending {
	return &pending{
		id:     rand.Text(),
		term:   term,
		ch:     make(chan event, pendingBuffer),
		gone:   make(chan struct{}),
		failed: make(chan struct{}),
	}
}

// deliver hands ev to the caller, or drops it once the caller is gone.
func (p *pending) deliver(ev event) {
	select {
	case p.ch <- ev:
	case <-p.gone:
	}
}

// fail ends the action with err (the first failure wins).
func (p *pending) fail(err error) {
	p.failOnce.Do(func() {
		p.failErr = err
		close(p.failed)
	})
}

func newSession(h *Hub, name string, conn *websocket.Conn) *session {
	ctx, cancel := context.WithCancel(context.Background())
	return &session{hub: h, name: name, conn: conn, ctx: ctx, cancel: cancel}
}

func (s *session) lastBeat() time.Time { return time.Unix(0, s.beat.Load()) }

// alive: not closed, and heard from within DeadAfter.
func (s *session) alive() bool {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	return !closed && time.Since(s.lastBeat()) < s.hub.deadAfter
}

// register adds a pending action with a fresh random ID.
func (s *session) register(term uint64) (*pending, error) {
	p := newPending(term)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, s.disconnected("connection closed")
	}
	if s.pending == nil {
		s.pending = make(map[string]*pending)
	}
	s.pending[p.id] = p
	return p, nil
}

// take removes and returns the pending action id, nil when there is none.
func (s *session) take(id string) *pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending[id]
	delete(s.pending, id)
	return p
}

func (s *session) lookup(id string) *pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending[id]
}

func (s *session) disconnected(why string) error {
	return &agentError{fmt.Sprintf("agent %s disconnected during the action (%s)", s.name, why), ErrDisconnected}
}

// shutdown fails the actions in flight with ErrDisconnected, at once, and
// closes the connection in the background (a close handshake may take a
// few seconds; the read loop then ends and the hub forgets the session).
func (s *session) shutdown(code websocket.StatusCode, why string) {
	s.mu.Lock()
	s.closed = true
	ps := s.pending
	s.pending = nil
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	err := s.disconnected(why)
	for _, p := range ps {
		p.fail(err)
	}
	s.closeOnce.Do(func() {
		go func() {
			_ = s.conn.Close(code, closeReason(why))
			s.cancel()
		}()
	})
}

// send writes one frame. A write that takes DeadAfter means the peer is
// gone: the library then closes the connection, and the read loop ends.
func (s *session) send(f *wire.Frame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encoding %s frame for agent %s: %w", f.Type, s.name, err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, s.hub.deadAfter)
	defer cancel()
	if err := s.conn.Write(ctx, websocket.MessageText, b); err != nil {
		return s.disconnected(err.Error())
	}
	return nil
}

// startPings sends a Ping every PingInterval and drops the session once
// the agent has been silent for DeadAfter. A timer, not a goroutine, so
// that an idle session costs no stack.
func (s *session) startPings() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.timer = time.AfterFunc(s.hub.pingInterval, s.tick)
	}
}

func (s *session) tick() {
	if silent := time.Since(s.lastBeat()); silent >= s.hub.deadAfter {
		s.hub.log.Warn("agent silent: dropping its session", "agent", s.name, "silent", silent.Round(time.Millisecond))
		s.shutdown(websocket.StatusGoingAway, fmt.Sprintf("silent for %s", silent.Round(time.Second)))
		return
	}
	if err := s.send(&wire.Frame{Type: wire.TypePing}); err != nil {
		return // the connection is closed: the read loop ends the session
	}
	s.mu.Lock()
	if !s.closed {
		s.timer.Reset(s.hub.pingInterval)
	}
	s.mu.Unlock()
}

// readLoop reads frames until the connection ends. Any frame counts as a
// heartbeat.
func (s *session) readLoop() error {
	for {
		_, b, err := s.conn.Read(s.ctx)
		if err != nil {
			return err
		}
		s.beat.Store(time.Now().UnixNano())
		f, err := wire.Decode(b)
		if err != nil {
			s.shutdown(websocket.StatusPolicyViolation, "malformed frame")
			return err
		}
		switch f.Type {
		case wire.TypePing:
		case wire.TypeOutput:
			// Output of an action nobody waits for any more is dropped.
			if p := s.lookup(f.Output.ID); p != nil && len(f.Output.Data) > 0 {
				p.deliver(event{data: f.Output.Data, stderr: f.Output.Stderr})
			}
		case wire.TypeResult:
			p := s.take(f.Result.ID)
			if p == nil {
				continue
			}
			if !f.Result.Rejected && !f.Result.Lost {
				raise(&s.maxTerm, p.term)
			}
			p.deliver(event{res: f.Result})
		default:
			s.hub.log.Debug("unexpected frame from agent", "agent", s.name, "type", f.Type)
		}
	}
}

// raise sets v to t if t is higher.
func raise(v *atomic.Uint64, t uint64) {
	for {
		cur := v.Load()
		if t <= cur || v.CompareAndSwap(cur, t) {
			return
		}
	}
}
