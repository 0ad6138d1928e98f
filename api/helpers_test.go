package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/notify"
	"github.com/drover-dev/drover/internal/pki/pkitest"
	"github.com/drover-dev/drover/internal/syncbuf"

	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/raftstore"
)

// --- a throwaway PKI ------------------------------------------------------

// testPKI is a cluster CA made by pki.Init in a temp dir, with the
// certificates of a coordinator, an operator and a host agent issued by it.
type testPKI struct {
	dir                   string
	base                  *tls.Config // trusts the CA only, presents nothing
	server, client, agent tls.Certificate
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	ca := pkitest.New(t)
	base, err := pki.ClientConfig(pki.Paths{CA: filepath.Join(ca.Dir, pki.CAFile)})
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{dir: ca.Dir, base: base}
	issue := func(name string, role pki.Role) tls.Certificate { return ca.Cert(t, name, role) }
	p.server = issue("coord", pki.RoleServer)
	p.client = issue("operator", pki.RoleClient)
	p.agent = issue("web1", pki.RoleAgent)
	// The server tells a peer coordinator by OUServer: the tests of that
	// rule mean nothing if pki's server role is written differently.
	if ous := p.server.Leaf.Subject.OrganizationalUnit; !slices.Contains(ous, OUServer) {
		t.Fatalf("pki server certificate has OU %q, the API looks for %q", ous, OUServer)
	}
	return p
}

// clientTLS trusts the CA and presents cert (none when nil).
func (p *testPKI) clientTLS(cert *tls.Certificate) *tls.Config {
	c := p.base.Clone()
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

func (p *testPKI) httpClient(cert *tls.Certificate) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: p.clientTLS(cert)}, Timeout: 10 * time.Second}
}

// serverTLS is a coordinator's API configuration: the server certificate,
// and client certificates verified against the CA when given.
func (p *testPKI) serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	c, err := pki.APIServerConfig(pki.DirPaths(p.dir, "coord"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// --- a fake coordinator ---------------------------------------------------

// Tokens of the fake store.
const (
	tokManage = "manage-secret"
	tokRead   = "read-secret"
	tokAgent  = "agent-secret"
)

// store is the replicated state every fake node shares.
type store struct {
	mu        sync.Mutex
	deps      map[string]*deploy.Deployment
	order     []string
	events    []deploy.Event
	seq       uint64
	changed   notify.Signal
	tokens    map[string]raftstore.Token // by clear text
	artifacts map[string][]byte
	members   []Member
	writes    []string         // every write the backend accepted
	fail      map[string]error // verb ("submit", "pause", ...) -> error to return
	// lose counts, per verb, the writes to answer as if leadership was lost
	// while committing them, after they were done.
	lose map[string]int
	keys map[string]string // request key -> result of the write it did
	seen []string          // request keys of the submits received, in order
}

func newStore() *store {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return &store{
		deps: map[string]*deploy.Deployment{},
		tokens: map[string]raftstore.Token{
			tokManage: {Name: "admin", Role: raftstore.RoleManage, Hash: "h1", Created: now},
			tokRead:   {Name: "ci", Role: raftstore.RoleRead, Hash: "h2", Created: now},
			tokAgent:  {Name: "join", Role: raftstore.RoleAgentJoin, Hash: "h3", Created: now},
		},
		artifacts: map[string][]byte{},
		fail:      map[string]error{},
		lose:      map[string]int{},
		keys:      map[string]string{},
	}
}

// bump wakes the watchers; callers hold mu.
func (s *store) bump() { s.changed.Fire() }

// write records an accepted write, unless the test made op's verb fail.
func (s *store) write(op string) error {
	verb, _, _ := strings.Cut(op, " ")
	if err := s.fail[verb]; err != nil {
		return err
	}
	s.writes = append(s.writes, op)
	return nil
}

// lost answers a write that was done as if leadership was lost while
// committing it, when the test asked for that.
func (s *store) lost(verb, node string) error {
	if s.lose[verb] == 0 {
		return nil
	}
	s.lose[verb]--
	return fmt.Errorf("node %s: %w: %w", node, raftstore.ErrOutcomeUnknown, raftstore.ErrNotLeader)
}

func (s *store) writeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.writes)
}

func (s *store) setFail(op string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[op] = err
}

// addDeployment records a running deployment and its created event.
func (s *store) addDeployment(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deps[id] = &deploy.Deployment{ID: id, Name: "web", Kind: deploy.KindDeploy, State: deploy.StateRunning}
	s.order = append(s.order, id)
	s.record(deploy.Event{Deployment: id, Kind: deploy.EvCreated})
}

// stage records a stage event for a host of id.
func (s *store) stage(id, host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record(deploy.Event{Deployment: id, Kind: deploy.EvStage, Host: host, Stage: deploy.StageDrain})
}

// finish makes id terminal, with its state event.
func (s *store) finish(id string, st deploy.DeploymentState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deps[id].State = st
	s.record(deploy.Event{Deployment: id, Kind: deploy.EvState, State: st})
}

// record applies one command carrying ev; callers hold mu.
func (s *store) record(ev deploy.Event) {
	s.seq++
	ev.Seq = s.seq
	ev.Time = time.Unix(int64(s.seq), 0).UTC()
	s.events = append(s.events, ev)
	s.bump()
}

// fakeNode is one coordinator over the shared store: Node, Cluster,
// Deployments, Artifacts and Auth at once. Writes need leadership, as in
// the real backend.
type fakeNode struct {
	st *store
	id string

	mu         sync.Mutex
	leader     bool
	leaderHTTP string
	httpAddr   string
	moved      notify.Signal
	revoked    map[string]bool // certificates this node refuses, by CN
}

// revoke makes this node refuse the certificate named cn.
func (n *fakeNode) revoke(cn string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.revoked == nil {
		n.revoked = map[string]bool{}
	}
	n.revoked[cn] = true
}

func (n *fakeNode) Admit(cert *x509.Certificate) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.revoked[cert.Subject.CommonName] {
		return fmt.Errorf("certificate %s is revoked", cert.Subject.CommonName)
	}
	return nil
}

func (n *fakeNode) setLeader(leader bool, leaderHTTP string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.leader, n.leaderHTTP = leader, leaderHTTP
	n.moved.Fire()
}

func (n *fakeNode) LeaderChanged() <-chan struct{} { return n.moved.C() }

func (n *fakeNode) Status() NodeStatus {
	n.mu.Lock()
	defer n.mu.Unlock()
	state := "Follower"
	if n.leader {
		state = "Leader"
	}
	return NodeStatus{ID: n.id, HTTPAddr: n.httpAddr, State: state, LeaderHTTP: n.leaderHTTP, AppliedIndex: 42, LastContactMS: 3}
}

func (n *fakeNode) IsLeader() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leader
}

func (n *fakeNode) LeaderHTTP() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leaderHTTP
}

// lock takes the store for a write, failing when this node is not the leader.
func (n *fakeNode) lock() (unlock func(), err error) {
	if !n.IsLeader() {
		return nil, fmt.Errorf("node %s: %w", n.id, raftstore.ErrNotLeader)
	}
	n.st.mu.Lock()
	return n.st.mu.Unlock, nil
}

func (n *fakeNode) Members(ctx context.Context) ([]Member, error) {
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	return slices.Clone(n.st.members), nil
}

func (n *fakeNode) Join(ctx context.Context, req JoinRequest) error {
	unlock, err := n.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := n.st.write("join " + req.ID); err != nil {
		return err
	}
	return n.st.lost("join", n.id)
}

func (n *fakeNode) Remove(ctx context.Context, id string) error {
	unlock, err := n.lock()
	if err != nil {
		return err
	}
	defer unlock()
	return n.st.write("remove " + id)
}

func (n *fakeNode) Backup(w io.Writer) error {
	_, err := io.WriteString(w, `{"deployments":{}}`)
	return err
}

func (n *fakeNode) Restore(ctx context.Context, r io.Reader) error {
	unlock, err := n.lock()
	if err != nil {
		return err
	}
	defer unlock()
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return n.st.write("restore " + string(b))
}

func (n *fakeNode) Submit(ctx context.Context, req SubmitRequest) (string, error) {
	unlock, err := n.lock()
	if err != nil {
		return "", err
	}
	defer unlock()
	key := raftstore.RequestKey(ctx)
	n.st.seen = append(n.st.seen, key)
	if id, ok := n.st.keys[key]; ok && key != "" {
		return id, nil // what the coordinator does with a repeat
	}
	if err := n.st.write("submit " + req.PlanName); err != nil {
		return "", err
	}
	id := fmt.Sprintf("d%d", len(n.st.order)+1)
	n.st.deps[id] = &deploy.Deployment{ID: id, Name: req.PlanName, State: deploy.StateRunning, ArtifactSHA256: req.ArtifactSHA256,
		By: req.By, Message: req.Message}
	n.st.order = append(n.st.order, id)
	n.st.record(deploy.Event{Deployment: id, Kind: deploy.EvCreated})
	if key != "" {
		n.st.keys[key] = id
	}
	if err := n.st.lost("submit", n.id); err != nil {
		return "", err
	}
	return id, nil
}

func (n *fakeNode) List() []deploy.Deployment {
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	var out []deploy.Deployment
	for _, id := range n.st.order {
		out = append(out, *n.st.deps[id])
	}
	return out
}

func (n *fakeNode) Get(id string) (deploy.Deployment, error) {
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	d, ok := n.st.deps[id]
	if !ok {
		return deploy.Deployment{}, fmt.Errorf("%s: %w", id, deploy.ErrUnknownDeployment)
	}
	return *d, nil
}

func (n *fakeNode) Act(ctx context.Context, id string, a Action) error {
	unlock, err := n.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if _, ok := n.st.deps[id]; !ok {
		return fmt.Errorf("%s: %w", id, deploy.ErrUnknownDeployment)
	}
	return n.st.write(string(a) + " " + id)
}

func (n *fakeNode) Rollback(ctx context.Context, id, to string) (string, error) {
	unlock, err := n.lock()
	if err != nil {
		return "", err
	}
	defer unlock()
	what := "rollback " + id
	if to != "" {
		what += " to " + to
	}
	if err := n.st.write(what); err != nil {
		return "", err
	}
	return id + "-rb", nil
}

func (n *fakeNode) Repair(ctx context.Context, req RepairRequest) (RepairResponse, error) {
	unlock, err := n.lock()
	if err != nil {
		return RepairResponse{}, err
	}
	defer unlock()
	if err := n.st.write("repair " + req.Of + req.PlanName); err != nil {
		return RepairResponse{}, err
	}
	return RepairResponse{ID: "repair-1", Skipped: []string{"web9"}}, nil
}

func (n *fakeNode) Events(id string, after uint64) ([]deploy.Event, uint64) {
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	var out []deploy.Event
	for _, ev := range n.st.events {
		if ev.Seq > after && (id == "" || ev.Deployment == id) {
			out = append(out, ev)
		}
	}
	return out, n.st.seq
}

func (n *fakeNode) Changed() <-chan struct{} {
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	return n.st.changed.C()
}

func (n *fakeNode) Has(sha string) bool {
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	_, ok := n.st.artifacts[sha]
	return ok
}

func (n *fakeNode) Put(ctx context.Context, sha string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	if err := n.st.fail["put"]; err != nil {
		return err
	}
	if got := sha256Hex(b); got != sha {
		return fmt.Errorf("content is %s, not %s: %w", got, sha, ErrDigest)
	}
	n.st.artifacts[sha] = b
	op := "put " + sha[:8]
	if IsReplica(ctx) {
		op += " replica"
	}
	n.st.writes = append(n.st.writes, op)
	return nil
}

func (n *fakeNode) Open(sha string) (io.ReadCloser, int64, error) {
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	b, ok := n.st.artifacts[sha]
	if !ok {
		return nil, 0, fmt.Errorf("artifact %s: %w", sha, os.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

func (n *fakeNode) Authenticate(token string) (raftstore.TokenRole, bool) {
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	t, ok := n.st.tokens[token]
	return t.Role, ok
}

func (n *fakeNode) CreateToken(ctx context.Context, req TokenRequest) (string, error) {
	unlock, err := n.lock()
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := n.st.write("token " + req.Name); err != nil {
		return "", err
	}
	secret := "new-" + req.Name
	n.st.tokens[secret] = raftstore.Token{Name: req.Name, Role: req.Role, Hash: "hash-" + req.Name}
	return secret, nil
}

func (n *fakeNode) Tokens() []raftstore.Token {
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	var out []raftstore.Token
	for _, t := range n.st.tokens {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b raftstore.Token) int { return cmpString(a.Name, b.Name) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (n *fakeNode) DeleteToken(ctx context.Context, name string) error {
	unlock, err := n.lock()
	if err != nil {
		return err
	}
	defer unlock()
	for k, t := range n.st.tokens {
		if t.Name == name {
			delete(n.st.tokens, k)
			return n.st.write("untoken " + name)
		}
	}
	return fmt.Errorf("token %s: %w", name, raftstore.ErrNoToken)
}

// --- servers --------------------------------------------------------------

// seenRequest is what a test node saw of one request that reached it.
type seenRequest struct {
	method, path, forwardedBy, lastEventID string
}

type testNode struct {
	*fakeNode
	srv  *httptest.Server
	addr string

	mu   sync.Mutex
	seen []seenRequest
}

func (n *testNode) requests() []seenRequest {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.seen)
}

// startNode serves a fake coordinator over TLS; leader says whether it
// leads (set followers' leader address with setLeader).
func startNode(t *testing.T, p *testPKI, st *store, id string, leader bool) *testNode {
	t.Helper()
	n := &testNode{fakeNode: &fakeNode{st: st, id: id, leader: leader}}
	h := NewServer(Config{
		Node: n.fakeNode, Cluster: n.fakeNode, Deployments: n.fakeNode, Artifacts: n.fakeNode, Auth: n.fakeNode,
		Certs:        n.fakeNode,
		Forward:      p.httpClient(&p.server),
		NodeID:       id,
		Metrics:      http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "drover_up 1\n") }),
		Log:          testLogger(t),
		heartbeat:    50 * time.Millisecond,
		probeTimeout: 500 * time.Millisecond,
	})
	n.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		n.seen = append(n.seen, seenRequest{r.Method, r.URL.Path, r.Header.Get(HeaderForwardedBy), r.Header.Get("Last-Event-ID")})
		n.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	n.srv.TLS = p.serverTLS(t)
	n.srv.StartTLS()
	t.Cleanup(n.srv.Close)
	n.addr = n.srv.Listener.Addr().String()
	n.fakeNode.mu.Lock()
	n.httpAddr = n.addr
	if leader {
		n.leaderHTTP = n.addr
	}
	n.fakeNode.mu.Unlock()
	return n
}

// deadAddr is an address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func newTestClient(t *testing.T, p *testPKI, token string, addrs ...string) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{Addrs: addrs, TLS: p.clientTLS(&p.client), Token: token, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func testLogger(t *testing.T) *slog.Logger {
	lb := &syncbuf.Buffer{}
	t.Cleanup(func() {
		out := lb.String()
		for _, secret := range []string{tokManage, tokRead, tokAgent, "wrong-token", "Bearer"} {
			if strings.Contains(out, secret) {
				t.Errorf("the log holds %q:\n%s", secret, out)
			}
		}
		if testing.Verbose() {
			t.Logf("server log:\n%s", out)
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (n *fakeNode) Logs(q deploy.LogQuery) (deploy.LogPage, error) {
	if _, err := n.Get(q.ID); err != nil {
		return deploy.LogPage{}, err
	}
	return deploy.LogPage{Lines: []deploy.LogLine{{Seq: q.After + 1, Host: q.Host, Stage: q.Stage, Stream: deploy.Stderr, Text: "boom"}}, Next: q.After + 1}, nil
}
