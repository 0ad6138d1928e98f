package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/raftstore"
)

// HeaderForwardedBy marks a request a follower forwarded to the leader; its
// value is the follower's node ID. A node that is not the leader refuses a
// request carrying it (no forwarding loops).
const HeaderForwardedBy = "X-Drover-Forwarded-By"

// HeaderIdempotencyKey names a write once per logical call: a repeat of it
// (its first answer was lost) is answered with the first one's result
// instead of being done again. At most raftstore.MaxRequestKeyLen printable
// ASCII characters.
const HeaderIdempotencyKey = "Idempotency-Key"

// OUServer is the Subject.OrganizationalUnit that marks a coordinator's own
// certificate (the cluster CA also issues "drover-client" and
// "drover-agent").
const OUServer = "drover-server"

const (
	maxJSONBody      = 4 << 20 // bytes of a JSON request body
	defaultHeartbeat = streamHeartbeat
	defaultProbe     = time.Second
)

// Config wires the API server to its coordinator.
type Config struct {
	Node        Node
	Cluster     Cluster
	Deployments Deployments
	Artifacts   Artifacts
	Auth        Auth
	// Agents lists and revokes host agents (optional).
	Agents Agents
	// Certs refuses revoked certificates on every route (optional).
	Certs Certificates
	// Forward carries requests to the leader and status probes to the
	// other members. It must present this node's server certificate and
	// trust the cluster CA. Forwarded requests use its Transport only (its
	// Timeout would cut event streams); status probes use it as is.
	Forward *http.Client
	// NodeID names this node in HeaderForwardedBy.
	NodeID string
	// Metrics serves GET /metrics (404 when nil).
	Metrics http.Handler
	// Log receives one line per request (never tokens, headers or bodies).
	Log *slog.Logger
	// Local serves an embedded coordinator on a unix socket that only its
	// owner can open (mode 0600 in a 0700 directory): the socket's file
	// permissions are the authentication, and every caller may manage.
	// Never set it for a network listener.
	Local bool

	heartbeat    time.Duration // between SSE comment lines; tests shorten it
	probeTimeout time.Duration // per member status probe
}

// access is what a route asks of its caller.
type access int

const (
	accessCert   access = iota // a verified certificate, nothing more
	accessNode                 // a server certificate, or a manage token
	accessRead                 // a read or manage token
	accessManage               // a manage token
)

// placement is where a route is served.
type placement int

const (
	local      placement = iota // on the node that receives it
	leader                      // on the leader (writes)
	leaderRead                  // on the leader unless ?stale=true
)

type route struct {
	pattern string
	access  access
	place   placement
	// stream routes carry long-lived or large bodies: no deadlines and no
	// JSON body limit.
	stream bool
	handle http.HandlerFunc
}

type server struct {
	cfg   Config
	log   *slog.Logger
	proxy *forwarder
}

// NewServer returns the coordinator's API handler. Serve it over TLS with
// ClientAuth tls.VerifyClientCertIfGiven and the cluster CA as ClientCAs.
// It panics when a collaborator is missing (a wiring mistake).
func NewServer(cfg Config) http.Handler {
	var missing []string
	for name, v := range map[string]any{"Node": cfg.Node, "Cluster": cfg.Cluster,
		"Deployments": cfg.Deployments, "Artifacts": cfg.Artifacts, "Auth": cfg.Auth} {
		if v == nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		panic("api.NewServer: missing " + strings.Join(missing, ", "))
	}
	if cfg.Forward == nil {
		cfg.Forward = http.DefaultClient
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.heartbeat <= 0 {
		cfg.heartbeat = defaultHeartbeat
	}
	if cfg.probeTimeout <= 0 {
		cfg.probeTimeout = defaultProbe
	}
	s := &server{cfg: cfg, log: cfg.Log}
	s.proxy = newForwarder(cfg.Forward, cfg.NodeID, cfg.Log)

	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.Handle(rt.pattern, s.wrap(rt))
	}
	mux.Handle("/", s.wrap(route{access: accessCert, place: local, handle: func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &Error{http.StatusNotFound, codeNotFound, "no such route: " + r.Method + " " + r.URL.Path})
	}}))
	return s.logRequests(mux)
}

func (s *server) routes() []route {
	return []route{
		{"GET /v1/status", accessCert, local, false, s.status},
		{"GET /metrics", accessCert, local, false, s.metrics},

		{"GET /v1/cluster/members", accessRead, leaderRead, false, s.members},
		{"POST /v1/cluster/join", accessNode, leader, false, s.join},
		{"DELETE /v1/cluster/members/{id}", accessManage, leader, false, s.removeMember},
		{"GET /v1/cluster/backup", accessManage, leaderRead, true, s.backup},
		{"POST /v1/cluster/restore", accessManage, leader, true, s.restore},

		// Coordinators push uploads to each other (see coordinator/artifacts.go).
		{"PUT /v1/artifacts/{sha256}", accessNode, local, true, s.putArtifact},
		{"GET /v1/artifacts/{sha256}", accessNode, local, true, s.getArtifact},
		{"HEAD /v1/artifacts/{sha256}", accessNode, local, false, s.headArtifact},

		{"POST /v1/deployments", accessManage, leader, false, s.submit},
		{"GET /v1/deployments", accessRead, leaderRead, false, s.list},
		{"GET /v1/deployments/{id}", accessRead, leaderRead, false, s.get},
		{"POST /v1/deployments/{id}/pause", accessManage, leader, false, s.act(ActionPause)},
		{"POST /v1/deployments/{id}/resume", accessManage, leader, false, s.act(ActionResume)},
		{"POST /v1/deployments/{id}/abort", accessManage, leader, false, s.act(ActionAbort)},
		{"POST /v1/deployments/{id}/rollback", accessManage, leader, false, s.rollback},
		{"GET /v1/deployments/{id}/events", accessRead, leaderRead, true, s.events},
		{"GET /v1/deployments/{id}/logs", accessRead, leaderRead, false, s.logs},
		{"POST /v1/repairs", accessManage, leader, false, s.repair},

		{"GET /v1/hosts", accessRead, leader, false, s.hosts},
		{"POST /v1/agents/{name}/revoke", accessManage, leader, false, s.revokeAgent},

		{"POST /v1/tokens", accessManage, leader, false, s.createToken},
		{"GET /v1/tokens", accessManage, leaderRead, false, s.tokens},
		{"DELETE /v1/tokens/{name}", accessManage, leader, false, s.deleteToken},
	}
}

// wrap checks the caller, then serves the route here or on the leader. A
// refused request reaches neither the backend nor the leader.
func (s *server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.authorize(r, rt.access); err != nil {
			// A token created a moment ago may not have reached this
			// follower yet: the leader, which stored it, decides.
			if err.Code == codeUnauthorized && s.hasBearer(r) && !s.cfg.Node.IsLeader() {
				switch by := r.Header.Get(HeaderForwardedBy); {
				case by != "":
					// Forwarded here as to the leader, by a node that has
					// not yet seen this one stop leading (it restarted with
					// its state not caught up): not ours to refuse.
					writeError(w, &Error{http.StatusServiceUnavailable, codeNotLeader,
						fmt.Sprintf("node %s is not the leader (request forwarded by %s)", s.cfg.NodeID, by)})
					return
				case s.cfg.Node.LeaderHTTP() != "":
					s.forward(w, r, leader)
					return
				default:
					// A node that knows no leader (restarting, or cut
					// off) may not have caught up: it cannot say no.
					w.Header().Set("Retry-After", "1")
					writeError(w, &Error{http.StatusServiceUnavailable, codeNoLeader,
						fmt.Sprintf("node %s knows no leader and cannot check this token yet", s.cfg.NodeID)})
					return
				}
			}
			writeError(w, err)
			return
		}
		if rt.stream {
			rc := http.NewResponseController(w)
			_ = rc.SetReadDeadline(time.Time{})
			_ = rc.SetWriteDeadline(time.Time{})
		} else {
			r.Body = http.MaxBytesReader(w, r.Body, maxJSONBody)
		}
		if s.forward(w, r, rt.place) {
			return
		}
		if key := r.Header.Get(HeaderIdempotencyKey); key != "" {
			if !validKey(key) {
				writeError(w, fmt.Errorf("%w: %s: want 1 to %d printable ASCII characters", ErrBadRequest,
					HeaderIdempotencyKey, raftstore.MaxRequestKeyLen))
				return
			}
			r = r.WithContext(raftstore.WithRequestKey(r.Context(), key))
		}
		rt.handle(w, r)
	})
}

func validKey(k string) bool {
	if len(k) > raftstore.MaxRequestKeyLen {
		return false
	}
	for _, c := range []byte(k) {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// authorize is the one place that decides who may call what.
// Node rights come from the caller's own server certificate only: on a
// forwarded request the caller is the forwarder's caller (see caller), and
// its token is checked again here.
func (s *server) authorize(r *http.Request, a access) *Error {
	if s.cfg.Local {
		return nil // the socket's owner (Config.Local)
	}
	cert, err := s.caller(r)
	if err != nil {
		return err
	}
	if a == accessCert {
		return nil
	}
	if a == accessNode && isServer(cert) {
		return nil
	}
	token, ok := bearer(r)
	if !ok {
		return &Error{http.StatusUnauthorized, codeUnauthorized, "an API token is required (Authorization: Bearer)"}
	}
	role, ok := s.cfg.Auth.Authenticate(token)
	if !ok {
		return &Error{http.StatusUnauthorized, codeUnauthorized, "invalid or expired API token"}
	}
	switch role {
	case raftstore.RoleManage:
		return nil
	case raftstore.RoleRead:
		if a == accessRead {
			return nil
		}
		return &Error{http.StatusForbidden, codeForbidden, "this token can only read"}
	}
	return &Error{http.StatusForbidden, codeForbidden, fmt.Sprintf("a %s token cannot use the API", role)}
}

func (s *server) hasBearer(r *http.Request) bool { _, ok := bearer(r); return ok }

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// forward serves the request on the leader when it must be and this node
// is not it; it reports whether the request has been answered.
func (s *server) forward(w http.ResponseWriter, r *http.Request, p placement) bool {
	switch {
	case p == local:
		return false
	case p == leaderRead && stale(r):
		return false
	case s.cfg.Node.IsLeader():
		return false
	}
	if by := r.Header.Get(HeaderForwardedBy); by != "" {
		writeError(w, &Error{http.StatusServiceUnavailable, codeNotLeader,
			fmt.Sprintf("node %s is not the leader (request forwarded by %s)", s.cfg.NodeID, by)})
		return true
	}
	addr := s.cfg.Node.LeaderHTTP()
	if addr == "" {
		w.Header().Set("Retry-After", "1")
		writeError(w, &Error{http.StatusServiceUnavailable, codeNoLeader,
			fmt.Sprintf("node %s knows no leader", s.cfg.NodeID)})
		return true
	}
	s.proxy.serve(w, r, addr, s.cfg.Node)
	return true
}

func stale(r *http.Request) bool {
	v, err := strconv.ParseBool(r.URL.Query().Get("stale"))
	return err == nil && v
}

// --- handlers -------------------------------------------------------------

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.Node.Status())
}

func (s *server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Metrics == nil {
		writeError(w, &Error{http.StatusNotFound, codeNotFound, "metrics are not enabled"})
		return
	}
	s.cfg.Metrics.ServeHTTP(w, r)
}

func (s *server) members(w http.ResponseWriter, r *http.Request) {
	ms, err := s.cfg.Cluster.Members(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	var wg sync.WaitGroup
	for i := range ms {
		m := &ms[i]
		if m.ID == s.cfg.NodeID {
			st := s.cfg.Node.Status()
			m.Reachable, m.State, m.LastContactMS, m.AppliedIndex = true, st.State, st.LastContactMS, st.AppliedIndex
			continue
		}
		if m.HTTPAddr == "" {
			m.LastContactMS, m.Error = -1, "no API address registered"
			continue
		}
		wg.Go(func() { s.probe(r.Context(), m) })
	}
	wg.Wait()
	if ms == nil {
		ms = []Member{}
	}
	writeJSON(w, http.StatusOK, ms)
}

// probe asks a member what it says of itself.
func (s *server) probe(ctx context.Context, m *Member) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.probeTimeout)
	defer cancel()
	st, err := func() (NodeStatus, error) {
		var st NodeStatus
		u := url.URL{Scheme: "https", Host: m.HTTPAddr, Path: "/v1/status"}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return st, err
		}
		resp, err := s.cfg.Forward.Do(req)
		if err != nil {
			return st, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return st, readError(resp)
		}
		return st, json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st)
	}()
	if err != nil {
		m.Reachable, m.LastContactMS, m.Error = false, -1, err.Error()
		return
	}
	m.Reachable, m.State, m.LastContactMS, m.AppliedIndex = true, st.State, st.LastContactMS, st.AppliedIndex
}

func (s *server) join(w http.ResponseWriter, r *http.Request) {
	var req JoinRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.ID == "" || req.RaftAddr == "" || req.HTTPAddr == "" {
		writeError(w, fmt.Errorf("%w: a join needs id, raft_addr and http_addr", ErrBadRequest))
		return
	}
	if err := s.cfg.Cluster.Join(r.Context(), req); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) removeMember(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Cluster.Remove(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// hosts is served by the leader only: agents connect to the leader, so
// only it knows which are online.
func (s *server) hosts(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Agents == nil {
		writeJSON(w, http.StatusOK, []AgentInfo{})
		return
	}
	writeJSON(w, http.StatusOK, s.cfg.Agents.AgentList())
}

func (s *server) revokeAgent(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Agents == nil {
		writeError(w, fmt.Errorf("%w: no agents here", ErrNotFound))
		return
	}
	if err := s.cfg.Agents.RevokeAgent(r.Context(), r.PathValue("name")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) backup(w http.ResponseWriter, r *http.Request) {
	var b bytes.Buffer
	if err := s.cfg.Cluster.Backup(&b); err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = b.WriteTo(w)
}

func (s *server) restore(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, raftstore.MaxBackupBytes)
	if err := s.cfg.Cluster.Restore(r.Context(), r.Body); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) putArtifact(w http.ResponseWriter, r *http.Request) {
	sha, err := artifactName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx := r.Context()
	if r.Header.Get(HeaderReplica) != "" {
		cert, _ := s.caller(r) // authorize accepted it
		if cert == nil || !isServer(cert) {
			writeError(w, &Error{http.StatusForbidden, codeForbidden,
				HeaderReplica + " is for coordinators' own pushes (a server certificate)"})
			return
		}
		ctx = context.WithValue(ctx, replicaKey{}, true)
	}
	if err := s.cfg.Artifacts.Put(ctx, sha, r.Body); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) getArtifact(w http.ResponseWriter, r *http.Request) {
	sha, err := artifactName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	rc, size, err := s.cfg.Artifacts.Open(sha)
	if err != nil {
		writeError(w, err)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+sha+`"`)
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		s.log.Warn("artifact download cut short", "sha256", sha, "err", err)
	}
}

func (s *server) headArtifact(w http.ResponseWriter, r *http.Request) {
	sha, err := artifactName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if !s.cfg.Artifacts.Has(sha) {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func artifactName(r *http.Request) (string, error) {
	sha := r.PathValue("sha256")
	if !validSHA256(sha) {
		return "", fmt.Errorf("%w: %q is not a lower-case hex SHA-256", ErrBadRequest, sha)
	}
	return sha, nil
}

func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (s *server) submit(w http.ResponseWriter, r *http.Request) {
	var req SubmitRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	switch {
	case strings.TrimSpace(req.Plan) == "":
		writeError(w, fmt.Errorf("%w: the plan is empty", ErrBadRequest))
		return
	case req.ArtifactSHA256 != "" && !validSHA256(req.ArtifactSHA256):
		writeError(w, fmt.Errorf("%w: artifact_sha256 %q is not a lower-case hex SHA-256", ErrBadRequest, req.ArtifactSHA256))
		return
	}
	if cert, _ := s.caller(r); cert != nil { // authorize accepted it
		req.By = "client " + cert.Subject.CommonName
	}
	id, err := s.cfg.Deployments.Submit(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Location", "/v1/deployments/"+url.PathEscape(id))
	writeJSON(w, http.StatusCreated, SubmitResponse{ID: id})
}

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	if s.listPage(w, r) {
		return
	}
	ds := s.cfg.Deployments.List()
	if ds == nil {
		ds = []deploy.Deployment{}
	}
	writeJSON(w, http.StatusOK, ds)
}

func (s *server) get(w http.ResponseWriter, r *http.Request) {
	d, err := s.cfg.Deployments.Get(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *server) act(a Action) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.cfg.Deployments.Act(r.Context(), r.PathValue("id"), a); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *server) rollback(w http.ResponseWriter, r *http.Request) {
	var req RollbackRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			writeError(w, err)
			return
		}
	}
	id, err := s.cfg.Deployments.Rollback(r.Context(), r.PathValue("id"), req.To)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Location", "/v1/deployments/"+url.PathEscape(id))
	writeJSON(w, http.StatusCreated, SubmitResponse{ID: id})
}

func (s *server) repair(w http.ResponseWriter, r *http.Request) {
	var req RepairRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if (strings.TrimSpace(req.Plan) == "") == (req.Of == "") {
		writeError(w, fmt.Errorf("%w: a repair needs a plan or a deployment (of), not both", ErrBadRequest))
		return
	}
	out, err := s.cfg.Deployments.Repair(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Location", "/v1/deployments/"+url.PathEscape(out.ID))
	writeJSON(w, http.StatusCreated, out)
}

// TokenInfo describes an API token; the hash stays in the replicated state.
type TokenInfo struct {
	Name    string              `json:"name"`
	Role    raftstore.TokenRole `json:"role"`
	Created time.Time           `json:"created"`
	Expires time.Time           `json:"expires,omitzero"`
	Used    bool                `json:"used,omitempty"`
	Agent   string              `json:"agent,omitempty"`
	Replace bool                `json:"replace,omitempty"`
}

func (s *server) createToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	switch {
	case strings.TrimSpace(req.Name) == "":
		writeError(w, fmt.Errorf("%w: a token needs a name", ErrBadRequest))
		return
	case req.Role != raftstore.RoleManage && req.Role != raftstore.RoleRead && req.Role != raftstore.RoleAgentJoin:
		writeError(w, fmt.Errorf("%w: role %q is not one of %s, %s, %s", ErrBadRequest, req.Role,
			raftstore.RoleManage, raftstore.RoleRead, raftstore.RoleAgentJoin))
		return
	case req.TTL < 0:
		writeError(w, fmt.Errorf("%w: ttl is negative", ErrBadRequest))
		return
	case req.Role == raftstore.RoleAgentJoin && req.Agent == "":
		writeError(w, fmt.Errorf("%w: an %s token is made for one agent: name it (agent)", ErrBadRequest, raftstore.RoleAgentJoin))
		return
	case req.Role != raftstore.RoleAgentJoin && (req.Agent != "" || req.Replace):
		writeError(w, fmt.Errorf("%w: agent and replace are for %s tokens", ErrBadRequest, raftstore.RoleAgentJoin))
		return
	}
	token, err := s.cfg.Auth.CreateToken(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, TokenResponse{Name: req.Name, Role: req.Role, Token: token})
}

func (s *server) tokens(w http.ResponseWriter, r *http.Request) {
	ts := s.cfg.Auth.Tokens()
	out := make([]TokenInfo, 0, len(ts))
	for _, t := range ts {
		out = append(out, TokenInfo{Name: t.Name, Role: t.Role, Created: t.Created, Expires: t.Expires, Used: t.Used,
			Agent: t.Agent, Replace: t.Replace})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) deleteToken(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Auth.DeleteToken(r.Context(), r.PathValue("name")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
