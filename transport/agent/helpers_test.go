package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/pki/pkitest"
	"github.com/drover-dev/drover/internal/syncbuf"
	"github.com/drover-dev/drover/internal/testwait"

	"github.com/coder/websocket"

	"github.com/drover-dev/drover/internal/fence"
	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/transport/agent/wire"
)

// testCA is a throwaway cluster CA with the coordinator's server cert.
type testCA struct {
	*pkitest.CA
	server tls.Certificate
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	c := &testCA{CA: pkitest.New(t)}
	c.server = c.Cert(t, "server", pki.RoleServer)
	return c
}

type fakeRegistry struct {
	mu        sync.Mutex
	admitErr  error
	admitted  []string
	enrollErr error
	enrolled  []wire.EnrollRequest
	resp      wire.EnrollResponse
}

func (r *fakeRegistry) Enroll(_ context.Context, req wire.EnrollRequest) (wire.EnrollResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.enrolled = append(r.enrolled, req)
	if r.enrollErr != nil {
		return wire.EnrollResponse{}, r.enrollErr
	}
	return r.resp, nil
}

func (r *fakeRegistry) Admit(cert *x509.Certificate) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.admitted = append(r.admitted, cert.Subject.CommonName)
	return r.admitErr
}

type fakeLeader struct {
	follower atomic.Bool
	leader   atomic.Value // string
}

func (l *fakeLeader) IsLeader() bool { return !l.follower.Load() }
func (l *fakeLeader) LeaderHTTP() string {
	s, _ := l.leader.Load().(string)
	return s
}

type env struct {
	t    *testing.T
	ca   *testCA
	reg  *fakeRegistry
	lead *fakeLeader
	logs *syncbuf.Buffer
	hub  *Hub
	srv  *httptest.Server
}

// newEnv runs a hub behind a TLS server configured like the coordinator's
// API. tune, when given, adjusts the hub before it serves.
func newEnv(t *testing.T, tune ...func(*Hub)) *env {
	t.Helper()
	e := &env{t: t, ca: newTestCA(t), reg: &fakeRegistry{}, lead: &fakeLeader{}, logs: &syncbuf.Buffer{}}
	e.hub = New(Config{
		Registry: e.reg,
		Leader:   e.lead,
		Log:      slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	e.hub.grace = 0 // TestReconnectGrace sets its own
	for _, f := range tune {
		f(e.hub)
	}
	e.srv = httptest.NewUnstartedServer(e.hub.Handler())
	e.srv.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{e.ca.server},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    e.ca.Pool,
	}
	e.srv.StartTLS()
	t.Cleanup(func() {
		e.hub.CloseAll()
		e.srv.Close()
	})
	return e
}

// client returns an HTTPS client trusting the test CA, presenting cert
// when not nil.
func (e *env) client(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: e.ca.Pool}
	if cert != nil {
		// Present it even when the server asks for another CA's certificates.
		c := *cert
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

func (e *env) url(path string) string { return e.srv.URL + path }

// fakeAgent speaks package wire over a coder/websocket connection.
type fakeAgent struct {
	t     *testing.T
	conn  *websocket.Conn
	pings atomic.Int32
}

// dial opens a WebSocket with cert; it does not say hello.
func (e *env) dial(cert tls.Certificate) (*fakeAgent, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "wss://"+e.srv.Listener.Addr().String()+wire.ConnectPath,
		&websocket.DialOptions{HTTPClient: e.client(&cert)})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %d: %w", resp.StatusCode, err)
		}
		return nil, err
	}
	c.SetReadLimit(wire.MaxFrame)
	a := &fakeAgent{t: e.t, conn: c}
	e.t.Cleanup(func() { _ = c.CloseNow() })
	return a, nil
}

// connect dials as name (an agent cert of this CA), says hello and waits
// until the hub serves it.
func (e *env) connect(name string, hello wire.Hello) *fakeAgent {
	e.t.Helper()
	a, err := e.dial(e.ca.Cert(e.t, name, pki.RoleAgent))
	if err != nil {
		e.t.Fatal(err)
	}
	if hello.Name == "" {
		hello.Name = name
	}
	a.send(wire.Frame{Type: wire.TypeHello, Hello: &hello})
	testwait.For(e.t, name+" online", func() bool { _, err := e.hub.Host(name); return err == nil })
	return a
}

func (a *fakeAgent) send(f wire.Frame) {
	a.t.Helper()
	b, err := json.Marshal(f)
	if err != nil {
		a.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.conn.Write(ctx, websocket.MessageText, b); err != nil {
		a.t.Errorf("fake agent: send %s: %v", f.Type, err)
	}
}

// read returns the next frame other than a ping.
func (a *fakeAgent) read() (wire.Frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, b, err := a.conn.Read(ctx)
		if err != nil {
			return wire.Frame{}, err
		}
		var f wire.Frame
		if err := json.Unmarshal(b, &f); err != nil {
			return wire.Frame{}, err
		}
		if f.Type == wire.TypePing {
			a.pings.Add(1)
			continue
		}
		return f, nil
	}
}

// action reads the next frame, which must be an action of kind.
func (a *fakeAgent) action(kind wire.Kind) *wire.Action {
	a.t.Helper()
	f, err := a.read()
	if err != nil {
		a.t.Fatalf("fake agent: waiting for a %s action: %v", kind, err)
	}
	if f.Type != wire.TypeAction || f.Action == nil || f.Action.Kind != kind {
		a.t.Fatalf("fake agent: got %+v, want a %s action", f, kind)
	}
	return f.Action
}

func (a *fakeAgent) output(id, data string) {
	a.send(wire.Frame{Type: wire.TypeOutput, Output: &wire.Output{ID: id, Data: []byte(data)}})
}

func (a *fakeAgent) result(r wire.Result) {
	a.send(wire.Frame{Type: wire.TypeResult, Result: &r})
}

// closed waits until the hub closes the connection and returns the close
// status (-1 when it was not a close frame).
func (a *fakeAgent) closed() websocket.StatusCode {
	a.t.Helper()
	for {
		_, err := a.read()
		if err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

// termCtx is a context confirmed under Raft term.
func termCtx(t *testing.T, term uint64) context.Context {
	t.Helper()
	ctx, err := fence.Check(fence.With(context.Background(), func(context.Context) (uint64, error) { return term, nil }))
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

// async runs f in a goroutine; the channel yields its error.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

func recvErr(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the call to return")
		return nil
	}
}

// errBody decodes a JSON error answer.
func errBody(t *testing.T, resp *http.Response) errorBody {
	t.Helper()
	defer resp.Body.Close()
	var b errorBody
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatalf("decoding the error body: %v", err)
	}
	if b.Error == "" || b.Code == "" {
		t.Fatalf("error body %+v lacks error or code", b)
	}
	return b
}

func mustIs(t *testing.T, err, target error, contains ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want one wrapping %v", err, target)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("err %q does not mention %q", err, s)
		}
	}
}
