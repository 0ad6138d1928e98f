package agent

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/pki/pkitest"
	"github.com/drover-dev/drover/internal/syncbuf"

	"github.com/coder/websocket"

	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/transport/agent/wire"
)

// testCA is a cluster CA in a temp dir.
type testCA = pkitest.CA

func newTestCA(t *testing.T) *testCA { return pkitest.New(t) }

func caFile(c *testCA) string { return filepath.Join(c.Dir, pki.CAFile) }

var serverSeq atomic.Int64

// fakeCoord is a coordinator as the agent sees it: enrollment with
// single-use tokens, and the WebSocket endpoint for verified agents.
type fakeCoord struct {
	t    *testing.T
	ca   *testCA
	srv  *httptest.Server
	addr string

	// leader, when set, makes this node a follower: both endpoints answer
	// 503 naming it.
	leader string

	hits  atomic.Int64 // requests seen, on any path
	conns chan *fakeConn

	mu     sync.Mutex
	tokens map[string]bool // token -> spent
	all    []*fakeConn
}

func newFakeCoord(t *testing.T, ca *testCA) *fakeCoord {
	t.Helper()
	name := fmt.Sprintf("coord%d", serverSeq.Add(1))
	tlsCfg, err := pki.APIServerConfig(ca.Issue(t, name, pki.RoleServer))
	if err != nil {
		t.Fatal(err)
	}
	fc := &fakeCoord{t: t, ca: ca, conns: make(chan *fakeConn, 16), tokens: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+wire.EnrollPath, fc.enroll)
	mux.HandleFunc("GET "+wire.ConnectPath, fc.connect)
	fc.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fc.hits.Add(1)
		mux.ServeHTTP(w, r)
	}))
	fc.srv.TLS = tlsCfg
	fc.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the impostor test makes handshakes fail on purpose
	fc.srv.StartTLS()
	fc.addr = fc.srv.Listener.Addr().String()
	t.Cleanup(func() {
		fc.mu.Lock()
		for _, c := range fc.all {
			c.c.CloseNow()
		}
		fc.mu.Unlock()
		fc.srv.Close()
	})
	return fc
}

func (fc *fakeCoord) newToken(spent bool) string {
	tok, err := pki.NewToken()
	if err != nil {
		fc.t.Fatal(err)
	}
	fc.mu.Lock()
	fc.tokens[tok] = spent
	fc.mu.Unlock()
	return tok
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (fc *fakeCoord) notLeader(w http.ResponseWriter) bool {
	if fc.leader == "" {
		return false
	}
	w.Header().Set(wire.LeaderHeader, fc.leader)
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "not the leader", "code": "not_leader"})
	return true
}

func (fc *fakeCoord) enroll(w http.ResponseWriter, r *http.Request) {
	if fc.notLeader(w) {
		return
	}
	var req wire.EnrollRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, 400, map[string]string{"error": err.Error(), "code": "bad_request"})
		return
	}
	fc.mu.Lock()
	spent, known := fc.tokens[req.Token]
	if known && !spent {
		fc.tokens[req.Token] = true
	}
	fc.mu.Unlock()
	switch {
	case !known:
		writeJSON(w, 403, map[string]string{"error": "unknown join token", "code": "token_unknown"})
		return
	case spent:
		writeJSON(w, 403, map[string]string{"error": "join token already used", "code": "token_replayed"})
		return
	}
	pub, err := x509.ParsePKIXPublicKey(req.PublicKey)
	if err != nil {
		writeJSON(w, 400, map[string]string{"error": err.Error(), "code": "bad_key"})
		return
	}
	cert, err := fc.ca.Sign(pub, pki.IssueRequest{Name: req.Name, Role: pki.RoleAgent})
	if err != nil {
		writeJSON(w, 400, map[string]string{"error": err.Error(), "code": "bad_request"})
		return
	}
	caPEM, _ := os.ReadFile(caFile(fc.ca))
	writeJSON(w, 200, wire.EnrollResponse{Certificate: cert, CA: caPEM})
}

func (fc *fakeCoord) connect(w http.ResponseWriter, r *http.Request) {
	if fc.notLeader(w) {
		return
	}
	if len(r.TLS.VerifiedChains) == 0 || pki.RoleOf(r.TLS.PeerCertificates[0]) != pki.RoleAgent {
		writeJSON(w, 403, map[string]string{"error": "an agent certificate is required", "code": "forbidden"})
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	c.SetReadLimit(wire.MaxFrame)
	fc2 := &fakeConn{c: c, name: pki.CommonName(r.TLS.PeerCertificates[0]), frames: make(chan wire.Frame, 4096)}
	fc.mu.Lock()
	fc.all = append(fc.all, fc2)
	fc.mu.Unlock()
	go func() {
		defer close(fc2.frames)
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				return
			}
			var f wire.Frame
			if err := json.Unmarshal(data, &f); err != nil {
				fc.t.Errorf("agent sent a malformed frame: %v", err)
				return
			}
			fc2.frames <- f
		}
	}()
	fc.conns <- fc2
}

// nextConn waits for the agent's next connection and returns it with its
// Hello.
func (fc *fakeCoord) nextConn(t *testing.T) (*fakeConn, wire.Hello) {
	t.Helper()
	select {
	case c := <-fc.conns:
		f := c.next(t)
		if f.Type != wire.TypeHello || f.Hello == nil {
			t.Fatalf("first frame is %q, want hello", f.Type)
		}
		return c, *f.Hello
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not connect")
	}
	panic("unreachable")
}

// fakeConn is one agent connection, seen from the coordinator.
type fakeConn struct {
	c      *websocket.Conn
	name   string // the agent's certificate's common name
	frames chan wire.Frame
}

// next returns the next frame other than a ping.
func (c *fakeConn) next(t *testing.T) wire.Frame {
	t.Helper()
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				t.Fatal("the connection closed")
			}
			if f.Type == wire.TypePing {
				continue
			}
			return f
		case <-time.After(10 * time.Second):
			t.Fatal("no frame from the agent")
		}
	}
}

func (c *fakeConn) send(t *testing.T, f wire.Frame) {
	t.Helper()
	data, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.c.Write(context.Background(), websocket.MessageText, data); err != nil {
		t.Fatal(err)
	}
}

func (c *fakeConn) act(t *testing.T, a wire.Action) {
	t.Helper()
	c.send(t, wire.Frame{Type: wire.TypeAction, Action: &a})
}

// result reads frames until the Result of id and returns it with the
// Output frames of id seen on the way (each Data separately).
func (c *fakeConn) result(t *testing.T, id string) (wire.Result, [][]byte) {
	t.Helper()
	var outs [][]byte
	for {
		f := c.next(t)
		switch {
		case f.Type == wire.TypeOutput && f.Output.ID == id:
			outs = append(outs, f.Output.Data)
		case f.Type == wire.TypeResult && f.Result.ID == id:
			return *f.Result, outs
		case f.Type == wire.TypeResult:
			t.Fatalf("unexpected result %+v while waiting for %s", *f.Result, id)
		}
	}
}

// testAgent is a running agent daemon.
type testAgent struct {
	cancel context.CancelFunc
	done   chan error
}

// newConfig returns a config for an agent named web1 of fc's cluster,
// with a fresh join token and its own state dir.
func newConfig(t *testing.T, fc *fakeCoord, logs *syncbuf.Buffer) Config {
	t.Helper()
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "join.token")
	if err := os.WriteFile(tokFile, []byte(fc.newToken(false)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent logs:\n%s", logs.String())
		}
	})
	return Config{
		Name:         "web1",
		Coordinators: []string{fc.addr},
		CA:           caFile(fc.ca),
		StateDir:     filepath.Join(dir, "state"),
		TokenFile:    tokFile,
		Version:      "1.2.3-test",
		Log:          slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func startAgent(t *testing.T, cfg Config) *testAgent {
	return startAgentTuned(t, cfg, defaultTuning)
}

func startAgentTuned(t *testing.T, cfg Config, tun tuning) *testAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{cancel: cancel, done: make(chan error, 1)}
	go func() { ta.done <- run(ctx, cfg, tun) }()
	t.Cleanup(func() { ta.stop(t) })
	return ta
}

// stop ends the agent's context and waits for Run to return.
func (ta *testAgent) stop(t *testing.T) error {
	t.Helper()
	ta.cancel()
	select {
	case err, ok := <-ta.done:
		if ok {
			close(ta.done)
		}
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	return nil
}
