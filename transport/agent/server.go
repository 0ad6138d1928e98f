package agent

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/drover-dev/drover/internal/notify"
	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/transport/agent/wire"
)

// Error codes of the JSON answers (the same vocabulary as the API's).
const (
	codeNotLeader           = "not_leader"
	codeRefused             = "refused"
	codeCertificateRequired = "certificate_required"
	codeForbidden           = "forbidden"
	codeBadRequest          = "bad_request"
	codeTooLarge            = "too_large"
	codeTooMany             = "too_many_requests"
	codeNotFound            = "not_found"
	codeMethod              = "method_not_allowed"
	codeInternal            = "internal"
)

// maxEnrollBody bounds an enrollment request: a name, a token and a public
// key fit in a few KiB.
const maxEnrollBody = 64 << 10

// Hub is the coordinator's side of the agent protocol: the agents connected
// to this node, the handlers they talk to, and a Host for each.
type Hub struct {
	cfg Config
	log *slog.Logger

	// wire.PingInterval, wire.DeadAfter and reconnectGrace; tests shorten them.
	pingInterval time.Duration
	deadAfter    time.Duration
	grace        time.Duration
	// awaiting, when set (tests), is called as an action starts waiting
	// for an agent to reconnect.
	awaiting func(name string)

	enrolls *sourceLimiter // enrollment attempts per source address

	mu       sync.Mutex
	agents   map[string]*agent // every agent seen since start
	attached notify.Signal     // fires when a session starts
}

// agent is what the hub remembers of one agent name.
type agent struct {
	st   Status   // as of the last hello; LastHeartbeat/MaxTerm as of the last session's end
	sess *session // the live session, nil when offline
}

// New returns a Hub. cfg.Registry and cfg.Leader are required; cfg.Log
// defaults to discarding.
func New(cfg Config) *Hub {
	if cfg.Registry == nil || cfg.Leader == nil {
		panic("hub.New: Config.Registry and Config.Leader are required")
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{
		cfg:          cfg,
		log:          log,
		pingInterval: wire.PingInterval,
		deadAfter:    wire.DeadAfter,
		grace:        reconnectGrace,
		enrolls:      newSourceLimiter(enrollRate, enrollBurst),
		agents:       make(map[string]*agent),
	}
}

// Handler serves wire.ConnectPath and wire.EnrollPath. The coordinator
// mounts it on its API server (TLS with ClientAuth VerifyClientCertIfGiven
// and the cluster CA), outside the token-checked API routes: connecting is
// authenticated by the agent's certificate, enrolling by its join token.
// The ResponseWriter must support hijacking (directly or via Unwrap).
func (h *Hub) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(wire.ConnectPath, h.serveConnect)
	mux.HandleFunc(wire.EnrollPath, h.serveEnroll)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, codeNotFound, "no such agent endpoint: "+r.URL.Path)
	})
	return mux
}

// Agents returns every agent seen by this node since it started, sorted by
// name. Online is false once an agent disconnected or has been silent for
// wire.DeadAfter.
func (h *Hub) Agents() []Status {
	h.mu.Lock()
	out := make([]Status, 0, len(h.agents))
	for _, a := range h.agents {
		st := a.st
		if s := a.sess; s != nil {
			st.LastHeartbeat = s.lastBeat()
			st.MaxTerm = s.maxTerm.Load()
			st.Online = s.alive()
		}
		out = append(out, st)
	}
	h.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// CloseAll closes every session. The coordinator calls it when it loses
// leadership: actions in flight fail with ErrDisconnected, and the agents
// reconnect to the new leader.
func (h *Hub) CloseAll() {
	h.mu.Lock()
	var live []*session
	for _, a := range h.agents {
		if a.sess != nil {
			live = append(live, a.sess)
			h.detachLocked(a, a.sess)
		}
	}
	h.mu.Unlock()
	for _, s := range live {
		s.shutdown(websocket.StatusGoingAway, "no longer the leader")
	}
	if len(live) > 0 {
		h.log.Info("closed all agent sessions", "count", len(live))
	}
}

// detachLocked records the end of a's session s; h.mu is held.
func (h *Hub) detachLocked(a *agent, s *session) {
	if a.sess != s {
		return
	}
	a.st.LastHeartbeat = s.lastBeat()
	a.st.MaxTerm = s.maxTerm.Load()
	a.st.Online = false
	a.sess = nil
}

// live returns the live session of name, or an error wrapping ErrOffline.
func (h *Hub) live(name string) (*session, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := h.agents[name]
	if a == nil {
		return nil, &agentError{fmt.Sprintf("agent %s is offline (never connected)", name), ErrOffline}
	}
	if a.sess != nil && a.sess.alive() {
		return a.sess, nil
	}
	last := a.st.LastHeartbeat
	if a.sess != nil {
		last = a.sess.lastBeat()
	}
	ago := time.Since(last).Round(time.Second)
	return nil, &agentError{fmt.Sprintf("agent %s is offline (last seen %s ago)", name, ago), ErrOffline}
}

// reconnectGrace is how long an action waits for an agent that was
// connected before to come back: a restarted agent (a crash, an upgrade, a
// leader change) reconnects within a second or two, and failing at once
// would also fail the rollback that needs it.
const reconnectGrace = 10 * time.Second

// await is live, waiting up to h.grace (within ctx) for an agent
// this node has seen before to reconnect.
func (h *Hub) await(ctx context.Context, name string) (*session, error) {
	s, err := h.live(name)
	if err == nil {
		return s, nil
	}
	h.mu.Lock()
	_, seen := h.agents[name]
	h.mu.Unlock()
	if !seen {
		return nil, err
	}
	if h.awaiting != nil {
		h.awaiting(name)
	}
	deadline := time.NewTimer(h.grace)
	defer deadline.Stop()
	for {
		attached := h.attached.C()
		s, lerr := h.live(name)
		if lerr == nil {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return nil, lerr
		case <-deadline.C:
			return nil, lerr
		case <-attached:
		}
	}
}

// Drop closes the session of name (a revoked agent), if it has one.
func (h *Hub) Drop(name string) {
	h.mu.Lock()
	a := h.agents[name]
	var s *session
	if a != nil && a.sess != nil {
		s = a.sess
		h.detachLocked(a, s)
	}
	h.mu.Unlock()
	if s != nil {
		s.shutdown(websocket.StatusPolicyViolation, "revoked")
	}
}

// leading answers 503 with the leader's address unless this node leads.
func (h *Hub) leading(w http.ResponseWriter) bool {
	if h.cfg.Leader.IsLeader() {
		return true
	}
	leader := h.cfg.Leader.LeaderHTTP()
	w.Header().Set(wire.LeaderHeader, leader)
	msg := "this coordinator does not lead; no leader is known"
	if leader != "" {
		msg = "this coordinator does not lead; the leader is " + leader
	}
	writeError(w, http.StatusServiceUnavailable, codeNotLeader, msg)
	return false
}

// verifiedLeaf returns the client certificate whose chain the TLS layer
// verified against the cluster CA, or nil.
func verifiedLeaf(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil
	}
	return r.TLS.VerifiedChains[0][0]
}

func (h *Hub) serveConnect(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, codeMethod, "connect with a WebSocket upgrade (GET)")
		return
	}
	if !h.leading(w) {
		return
	}
	leaf := verifiedLeaf(r)
	if leaf == nil {
		writeError(w, http.StatusUnauthorized, codeCertificateRequired,
			"an agent certificate issued by the cluster CA is required")
		return
	}
	name := pki.CommonName(leaf)
	if role := pki.RoleOf(leaf); role != pki.RoleAgent {
		h.log.Info("agent connection refused: wrong certificate role", "peer", name, "role", role, "remote", r.RemoteAddr)
		writeError(w, http.StatusForbidden, codeForbidden,
			fmt.Sprintf("certificate %q has role %q; agents connect with an agent certificate", name, role))
		return
	}
	if err := h.cfg.Registry.Admit(leaf); err != nil {
		h.log.Info("agent connection refused", "agent", name, "remote", r.RemoteAddr, "err", err)
		writeError(w, http.StatusForbidden, codeRefused, err.Error())
		return
	}
	// Agents send no Origin header; Accept refuses a cross-origin one.
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		h.log.Info("agent connection: WebSocket upgrade failed", "agent", name, "remote", r.RemoteAddr, "err", err)
		return
	}
	conn.SetReadLimit(wire.MaxFrame)
	h.serve(conn, name, r.RemoteAddr)
}

// serve runs one accepted connection until it ends. r.Context() is not
// used after the upgrade (see websocket.Accept).
func (h *Hub) serve(conn *websocket.Conn, name, remote string) {
	hello, err := h.readHello(conn, name)
	if err != nil {
		h.log.Info("agent connection refused", "agent", name, "remote", remote, "err", err)
		_ = conn.Close(websocket.StatusPolicyViolation, closeReason(err.Error()))
		return
	}

	s := newSession(h, name, conn)
	now := time.Now()
	s.beat.Store(now.UnixNano())
	s.maxTerm.Store(hello.MaxTerm)

	h.mu.Lock()
	a := h.agents[name]
	if a == nil {
		a = &agent{}
		h.agents[name] = a
	}
	old := a.sess
	a.sess = s
	a.st = Status{
		Name:          name,
		Address:       remote,
		Version:       hello.Version,
		OS:            hello.OS,
		Arch:          hello.Arch,
		Hostname:      hello.Hostname,
		Connected:     now,
		LastHeartbeat: now,
		Online:        true,
		MaxTerm:       hello.MaxTerm,
	}
	h.mu.Unlock()
	h.attached.Fire()

	if old != nil {
		// The agent restarted (or its network moved): what it reports lost
		// fails with ErrLost, the rest of the old session's actions with
		// ErrDisconnected.
		for _, id := range hello.Lost {
			if p := old.take(id); p != nil {
				p.fail(&agentError{
					fmt.Sprintf("agent %s: action %s lost: the agent restarted while it ran", name, id), ErrLost})
			}
		}
		old.shutdown(websocket.StatusPolicyViolation, "replaced by a new connection")
	}
	// Leadership may have been lost between the check and now, after
	// CloseAll ran: do not keep a session a follower would serve.
	if !h.cfg.Leader.IsLeader() {
		s.shutdown(websocket.StatusGoingAway, "no longer the leader")
	}
	h.log.Info("agent connected", "agent", name, "remote", remote, "version", hello.Version,
		"os", hello.OS, "arch", hello.Arch, "max_term", hello.MaxTerm, "lost", len(hello.Lost))

	s.startPings()
	err = s.readLoop()

	// Closes the connection unless already done (a close handshake in the
	// background, bounded by the library's timeouts).
	s.shutdown(websocket.StatusGoingAway, "connection lost: "+errText(err))
	h.mu.Lock()
	h.detachLocked(a, s)
	h.mu.Unlock()
	h.log.Info("agent disconnected", "agent", name, "remote", remote, "err", err)
}

// readHello reads the first frame, which must be a Hello for the
// certificate's name.
func (h *Hub) readHello(conn *websocket.Conn, name string) (*wire.Hello, error) {
	ctx, cancel := context.WithTimeout(context.Background(), h.deadAfter)
	defer cancel()
	_, b, err := conn.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading hello: %w", err)
	}
	f, err := wire.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	if f.Type != wire.TypeHello {
		return nil, fmt.Errorf("first frame is %q, want hello", f.Type)
	}
	if f.Hello.Name != name {
		return nil, fmt.Errorf("hello name %q does not match certificate %q", f.Hello.Name, name)
	}
	return f.Hello, nil
}

func (h *Hub) serveEnroll(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, codeMethod, "enroll with POST")
		return
	}
	if !h.enrolls.admits(r.RemoteAddr, time.Now()) {
		h.log.Info("agent enrollment refused: too many failed attempts from this address", "remote", r.RemoteAddr)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, codeTooMany, "too many failed enrollment attempts from this address; retry later")
		return
	}
	if !h.leading(w) {
		return
	}
	// Only failures count against the source: a fleet behind one address
	// enrolls at full speed, guessing tokens does not.
	enrolled := false
	defer func() {
		if !enrolled {
			h.enrolls.failed(r.RemoteAddr, time.Now())
		}
	}()
	r.Body = http.MaxBytesReader(w, r.Body, maxEnrollBody)
	var req wire.EnrollRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge,
				fmt.Sprintf("enrollment request larger than %d bytes", maxEnrollBody))
			return
		}
		writeError(w, http.StatusBadRequest, codeBadRequest, "enrollment request: "+err.Error())
		return
	}
	// Never log req.Token (nor req as a whole).
	resp, err := h.cfg.Registry.Enroll(r.Context(), req)
	switch {
	case errors.Is(err, ErrRefused):
		h.log.Info("agent enrollment refused", "agent", req.Name, "remote", r.RemoteAddr, "err", err)
		writeError(w, http.StatusForbidden, codeRefused, err.Error())
		return
	case err != nil:
		h.log.Warn("agent enrollment failed", "agent", req.Name, "remote", r.RemoteAddr, "err", err)
		writeError(w, http.StatusInternalServerError, codeInternal, "enrollment failed: "+err.Error())
		return
	}
	enrolled = true
	h.log.Info("agent enrolled", "agent", req.Name, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, resp)
}

type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	writeJSON(w, status, errorBody{Error: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: "encoding the answer: " + err.Error(), Code: codeInternal})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// closeReason fits s in a WebSocket close frame (125 bytes of payload).
func closeReason(s string) string {
	const max = 120
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "")
}

// agentError is an error with its own message that still matches one of
// the package's sentinel errors with errors.Is.
type agentError struct {
	msg string
	err error
}

func (e *agentError) Error() string { return e.msg }
func (e *agentError) Unwrap() error { return e.err }

func errText(err error) string {
	if err == nil {
		return "closed"
	}
	return err.Error()
}
