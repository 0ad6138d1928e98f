package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/drover-dev/drover/internal/fence"
	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/transport/agent/wire"
)

func TestConnectedAgentIsListed(t *testing.T) {
	e := newEnv(t)
	e.connect("web1", wire.Hello{Version: "1.2.3", OS: "linux", Arch: "amd64", Hostname: "web1.example", MaxTerm: 3})
	e.connect("app0", wire.Hello{Version: "1.2.3"})

	got := e.hub.Agents()
	if len(got) != 2 || got[0].Name != "app0" || got[1].Name != "web1" {
		t.Fatalf("Agents() = %+v, want app0 and web1 in order", got)
	}
	w := got[1]
	if !w.Online || w.Version != "1.2.3" || w.OS != "linux" || w.Arch != "amd64" || w.Hostname != "web1.example" ||
		w.MaxTerm != 3 || w.Address == "" || w.Connected.IsZero() || w.LastHeartbeat.IsZero() {
		t.Fatalf("status = %+v", w)
	}
	h, err := e.hub.Host("web1")
	if err != nil {
		t.Fatal(err)
	}
	if h.Name() != "web1" || h.Close() != nil {
		t.Fatal("Name/Close")
	}
	if got := e.reg.admitted; len(got) != 2 {
		t.Fatalf("Admit called for %v", got)
	}
}

func TestRunStreamsOutputAndMapsExit(t *testing.T) {
	e := newEnv(t)
	a := e.connect("web1", wire.Hello{MaxTerm: 2})
	h, _ := e.hub.Host("web1")

	ctx, cancel := context.WithTimeout(termCtx(t, 7), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	done := async(func() error { return h.Run(ctx, "echo hello; echo world", &out) })
	act := a.action(wire.KindRun)
	if act.Command != "echo hello; echo world" || act.Term != 7 || act.ID == "" {
		t.Fatalf("action = %+v", act)
	}
	if d := time.Duration(act.Timeout); d <= 25*time.Second || d > 30*time.Second {
		t.Fatalf("timeout = %s, want about 30s (ctx's deadline)", d)
	}
	a.output(act.ID, "hello\n")
	a.output("someone-else", "not ours\n")
	a.output(act.ID, "world\n")
	a.result(wire.Result{ID: act.ID})
	if err := recvErr(t, done); err != nil {
		t.Fatal(err)
	}
	if out.String() != "hello\nworld\n" {
		t.Fatalf("output = %q", out.String())
	}
	if got := e.hub.Agents()[0].MaxTerm; got != 7 {
		t.Fatalf("MaxTerm = %d after an action under term 7", got)
	}

	// A non-zero exit.
	out.Reset()
	done = async(func() error { return h.Run(context.Background(), "exit 3", &out) })
	act = a.action(wire.KindRun)
	if act.Timeout != 0 || act.Term != 0 {
		t.Fatalf("action without deadline or fence = %+v", act)
	}
	a.output(act.ID, "oops\n")
	a.result(wire.Result{ID: act.ID, ExitCode: 3, Error: "exit status 3"})
	err := recvErr(t, done)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || ee.Msg != "exit status 3" {
		t.Fatalf("err = %#v, want *ExitError code 3", err)
	}
	if out.String() != "oops\n" {
		t.Fatalf("output = %q", out.String())
	}

	// An error without an exit code (the command could not start).
	done = async(func() error { return h.Run(context.Background(), "x", nil) })
	act = a.action(wire.KindRun)
	a.result(wire.Result{ID: act.ID, Error: "timed out after 1s"})
	if err := recvErr(t, done); err == nil || errors.As(err, &ee) || !strings.Contains(err.Error(), "timed out after 1s") {
		t.Fatalf("err = %v", err)
	}

	// Result.Lost.
	done = async(func() error { return h.Run(context.Background(), "x", nil) })
	act = a.action(wire.KindRun)
	a.result(wire.Result{ID: act.ID, Lost: true})
	mustIs(t, recvErr(t, done), ErrLost, "web1")
}

func TestRunContextEnds(t *testing.T) {
	e := newEnv(t)
	a := e.connect("web1", wire.Hello{})
	h, _ := e.hub.Host("web1")

	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := async(func() error { return h.Run(ctx, "sleep 100", &out) })
	act := a.action(wire.KindRun)
	cancel()
	if err := recvErr(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// Late output and result are dropped; the session goes on.
	a.output(act.ID, "late\n")
	a.result(wire.Result{ID: act.ID})
	done = async(func() error { return h.Run(context.Background(), "true", nil) })
	act2 := a.action(wire.KindRun)
	a.result(wire.Result{ID: act2.ID})
	if err := recvErr(t, done); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Fatalf("output written after Run returned: %q", out.String())
	}

	// An expired deadline never reaches the agent.
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if err := h.Run(ctx, "true", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestPutSendsChunksAndChecksum(t *testing.T) {
	e := newEnv(t)
	a := e.connect("web1", wire.Hello{})
	h, _ := e.hub.Host("web1")

	data := make([]byte, 2*wire.ChunkSize+12345)
	rand.Read(data)
	done := async(func() error {
		return h.Put(termCtx(t, 4), "/opt/app/bin/app", bytes.NewReader(data), 0o750)
	})
	act := a.action(wire.KindPut)
	want := sha256.Sum256(data)
	if act.Path != "/opt/app/bin/app" || act.Mode != 0o750 || act.Size != int64(len(data)) ||
		act.SHA256 != hex.EncodeToString(want[:]) || act.Term != 4 {
		t.Fatalf("action = %+v", act)
	}
	var got []byte
	chunks := 0
	for {
		f, err := a.read()
		if err != nil {
			t.Fatal(err)
		}
		if f.Type != wire.TypeChunk || f.Chunk == nil || f.Chunk.ID != act.ID {
			t.Fatalf("frame = %+v, want a chunk of %s", f, act.ID)
		}
		if len(f.Chunk.Data) > wire.ChunkSize {
			t.Fatalf("chunk of %d bytes", len(f.Chunk.Data))
		}
		chunks++
		got = append(got, f.Chunk.Data...)
		if f.Chunk.EOF {
			break
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes, not the %d sent", len(got), len(data))
	}
	if chunks < 3 {
		t.Fatalf("%d chunks", chunks)
	}
	a.result(wire.Result{ID: act.ID})
	if err := recvErr(t, done); err != nil {
		t.Fatal(err)
	}

	// An empty file: one EOF chunk. And the agent's error comes back.
	done = async(func() error { return h.Put(context.Background(), "/etc/empty", strings.NewReader(""), 0o644) })
	act = a.action(wire.KindPut)
	f, err := a.read()
	if err != nil || f.Chunk == nil || !f.Chunk.EOF || len(f.Chunk.Data) != 0 || act.Size != 0 {
		t.Fatalf("frame = %+v, %v", f, err)
	}
	a.result(wire.Result{ID: act.ID, Error: "no space left on device"})
	if err := recvErr(t, done); err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("err = %v", err)
	}
}

func TestPutRejectedEarly(t *testing.T) {
	e := newEnv(t)
	a := e.connect("web1", wire.Hello{MaxTerm: 9})
	h, _ := e.hub.Host("web1")

	data := make([]byte, 8*wire.ChunkSize)
	done := async(func() error { return h.Put(termCtx(t, 8), "/x", bytes.NewReader(data), 0o644) })
	act := a.action(wire.KindPut)
	a.result(wire.Result{ID: act.ID, Rejected: true, Error: "term 8 < 9"})
	go func() { // drain what the hub sent before it noticed
		for {
			if _, err := a.read(); err != nil {
				return
			}
		}
	}()
	mustIs(t, recvErr(t, done), fence.ErrFenced, "agent web1 rejected term 8: it has seen 9")
}

func TestCheck(t *testing.T) {
	e := newEnv(t)
	a := e.connect("web1", wire.Hello{})
	h, _ := e.hub.Host("web1")

	c := wire.Check{HTTP: "http://127.0.0.1:8080/health", Status: 200, BodyContains: "ok"}
	done := async(func() error { return h.Check(context.Background(), c, 2*time.Second) })
	act := a.action(wire.KindCheck)
	if act.Check == nil || *act.Check != c || time.Duration(act.Timeout) != 2*time.Second {
		t.Fatalf("action = %+v", act)
	}
	a.result(wire.Result{ID: act.ID})
	if err := recvErr(t, done); err != nil {
		t.Fatal(err)
	}

	done = async(func() error { return h.Check(context.Background(), wire.Check{TCP: "127.0.0.1:5432"}, time.Second) })
	act = a.action(wire.KindCheck)
	a.result(wire.Result{ID: act.ID, Error: "dial tcp 127.0.0.1:5432: connection refused"})
	if err := recvErr(t, done); err == nil || err.Error() != "dial tcp 127.0.0.1:5432: connection refused" ||
		errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}

	// A check the agent's timer ended is a deadline for errors.Is, so that
	// a health window closing on the agent's clock is not a failure.
	done = async(func() error { return h.Check(context.Background(), wire.Check{TCP: "127.0.0.1:5432"}, time.Second) })
	act = a.action(wire.KindCheck)
	a.result(wire.Result{ID: act.ID, Error: "tcp 127.0.0.1:5432: timeout after 1s", TimedOut: true})
	if err := recvErr(t, done); !errors.Is(err, context.DeadlineExceeded) || err.Error() != "tcp 127.0.0.1:5432: timeout after 1s" {
		t.Fatalf("err = %v, want the agent's message and context.DeadlineExceeded", err)
	}
}

// Actions of one session are independent: answers may come in any order.
func TestConcurrentActions(t *testing.T) {
	e := newEnv(t)
	a := e.connect("web1", wire.Hello{})
	h, _ := e.hub.Host("web1")

	var out bytes.Buffer
	run := async(func() error { return h.Run(context.Background(), "deploy", &out) })
	runAct := a.action(wire.KindRun)
	check := async(func() error { return h.Check(context.Background(), wire.Check{TCP: "127.0.0.1:1"}, time.Second) })
	checkAct := a.action(wire.KindCheck)
	a.output(runAct.ID, "a")
	a.result(wire.Result{ID: checkAct.ID})
	if err := recvErr(t, check); err != nil {
		t.Fatal(err)
	}
	a.output(runAct.ID, "b")
	a.result(wire.Result{ID: runAct.ID})
	if err := recvErr(t, run); err != nil || out.String() != "ab" {
		t.Fatalf("run: %v, output %q", err, out.String())
	}
}

func TestStaleTermFenced(t *testing.T) {
	e := newEnv(t)
	a := e.connect("web3", wire.Hello{MaxTerm: 5})
	h, _ := e.hub.Host("web3")
	done := async(func() error { return h.Run(termCtx(t, 4), "systemctl restart app", nil) })
	act := a.action(wire.KindRun)
	if act.Term != 4 {
		t.Fatalf("term = %d", act.Term)
	}
	a.result(wire.Result{ID: act.ID, Rejected: true, Error: "stale term 4 (seen 5)"})
	mustIs(t, recvErr(t, done), fence.ErrFenced, "agent web3 rejected term 4: it has seen 5")
}

func TestHelloLostFailsPendingAction(t *testing.T) {
	e := newEnv(t)
	a1 := e.connect("web1", wire.Hello{})
	h, _ := e.hub.Host("web1")
	done := async(func() error { return h.Run(context.Background(), "migrate", nil) })
	act := a1.action(wire.KindRun)

	// The agent restarted; its new connection reports the action lost.
	e.connect("web1", wire.Hello{Lost: []string{act.ID, "unknown-id"}})
	mustIs(t, recvErr(t, done), ErrLost, "web1", act.ID)
	if st := a1.closed(); st != websocket.StatusPolicyViolation {
		t.Fatalf("old connection closed with %v", st)
	}
}

func TestDisconnectMidAction(t *testing.T) {
	e := newEnv(t)
	a := e.connect("web1", wire.Hello{})
	h, _ := e.hub.Host("web1")
	done := async(func() error { return h.Run(context.Background(), "sleep 10", nil) })
	a.action(wire.KindRun)
	_ = a.conn.CloseNow()
	mustIs(t, recvErr(t, done), ErrDisconnected, "web1")

	testwait.For(t, "web1 offline", func() bool { return !e.hub.Agents()[0].Online })
	_, err := e.hub.Host("web1")
	mustIs(t, err, ErrOffline, "agent web1 is offline (last seen ", "s ago)")
	// The Host obtained before goes on failing cleanly.
	mustIs(t, h.Run(context.Background(), "true", nil), ErrOffline, "web1")
	mustIs(t, h.Put(context.Background(), "/x", strings.NewReader("x"), 0o644), ErrOffline, "web1")
}

func TestHostUnknownAgent(t *testing.T) {
	e := newEnv(t)
	_, err := e.hub.Host("web9")
	mustIs(t, err, ErrOffline, "agent web9 is offline (never connected)")
	if got := e.hub.Agents(); len(got) != 0 {
		t.Fatalf("Agents() = %+v", got)
	}
}

func TestSecondConnectionReplacesFirst(t *testing.T) {
	e := newEnv(t)
	a1 := e.connect("web1", wire.Hello{Version: "1"})
	h, _ := e.hub.Host("web1")
	done := async(func() error { return h.Run(context.Background(), "long", nil) })
	a1.action(wire.KindRun)

	a2 := e.connect("web1", wire.Hello{Version: "2"})
	mustIs(t, recvErr(t, done), ErrDisconnected, "web1")
	if st := a1.closed(); st != websocket.StatusPolicyViolation {
		t.Fatalf("old connection closed with %v", st)
	}
	// The same Host now uses the new connection.
	done = async(func() error { return h.Run(context.Background(), "true", nil) })
	act := a2.action(wire.KindRun)
	a2.result(wire.Result{ID: act.ID})
	if err := recvErr(t, done); err != nil {
		t.Fatal(err)
	}
	got := e.hub.Agents()
	if len(got) != 1 || !got[0].Online || got[0].Version != "2" {
		t.Fatalf("Agents() = %+v", got)
	}
}

func TestCloseAll(t *testing.T) {
	e := newEnv(t)
	a1 := e.connect("web1", wire.Hello{})
	a2 := e.connect("web2", wire.Hello{})
	h, _ := e.hub.Host("web1")
	done := async(func() error { return h.Run(context.Background(), "long", nil) })
	a1.action(wire.KindRun)

	e.hub.CloseAll()
	mustIs(t, recvErr(t, done), ErrDisconnected, "web1")
	for _, st := range e.hub.Agents() {
		if st.Online {
			t.Fatalf("%s online after CloseAll", st.Name)
		}
	}
	for _, a := range []*fakeAgent{a1, a2} {
		if st := a.closed(); st != websocket.StatusGoingAway {
			t.Fatalf("closed with %v, want going away", st)
		}
	}
	_, err := e.hub.Host("web2")
	mustIs(t, err, ErrOffline, "web2")
}

func TestPingsAndSilentAgentDropped(t *testing.T) {
	e := newEnv(t, func(h *Hub) {
		h.pingInterval = 20 * time.Millisecond
		h.deadAfter = 300 * time.Millisecond
	})
	// An agent that answers keeps its session well past DeadAfter.
	lively := e.connect("web1", wire.Hello{})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				b, _ := json.Marshal(wire.Frame{Type: wire.TypePing})
				if lively.conn.Write(context.Background(), websocket.MessageText, b) != nil {
					return
				}
			}
		}
	}()
	go func() {
		for {
			if _, err := lively.read(); err != nil {
				return
			}
		}
	}()

	// A silent one is dropped.
	silent := e.connect("web2", wire.Hello{})
	if st := silent.closed(); st != websocket.StatusGoingAway {
		t.Fatalf("silent agent closed with %v", st)
	}
	if silent.pings.Load() == 0 {
		t.Fatal("the hub sent no ping")
	}
	testwait.For(t, "web2 offline", func() bool { return !e.hub.Agents()[1].Online })
	if !e.hub.Agents()[0].Online {
		t.Fatal("the agent that pings was dropped")
	}
	if lively.pings.Load() == 0 {
		t.Fatal("the hub sent no ping")
	}
}

func TestConnectNotLeader(t *testing.T) {
	e := newEnv(t)
	e.lead.follower.Store(true)
	e.lead.leader.Store("https://10.0.0.2:7443")
	cert := e.ca.Cert(t, "web1", pki.RoleAgent)

	resp, err := e.client(&cert).Get(e.url(wire.ConnectPath))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(wire.LeaderHeader) != "https://10.0.0.2:7443" {
		t.Fatalf("%d, leader %q", resp.StatusCode, resp.Header.Get(wire.LeaderHeader))
	}
	if b := errBody(t, resp); b.Code != "not_leader" {
		t.Fatalf("body = %+v", b)
	}
	if _, err := e.dial(cert); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("dial: %v", err)
	}

	// No leader known: the header is there, empty.
	e.lead.leader.Store("")
	resp, err = e.client(nil).Post(e.url(wire.EnrollPath), "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := resp.Header[http.CanonicalHeaderKey(wire.LeaderHeader)]; resp.StatusCode != 503 || !ok || v[0] != "" {
		t.Fatalf("%d, header %v %v", resp.StatusCode, v, ok)
	}
	if b := errBody(t, resp); b.Code != "not_leader" {
		t.Fatalf("body = %+v", b)
	}
	if len(e.reg.enrolled) != 0 {
		t.Fatal("a follower enrolled an agent")
	}
}

func TestConnectRefusesWrongCertificates(t *testing.T) {
	e := newEnv(t)

	// No certificate.
	resp, err := e.client(nil).Get(e.url(wire.ConnectPath))
	if err != nil {
		t.Fatal(err)
	}
	if b := errBody(t, resp); resp.StatusCode != http.StatusUnauthorized || b.Code != "certificate_required" {
		t.Fatalf("no cert: %d %+v", resp.StatusCode, b)
	}

	// A client (operator) certificate of the right CA.
	op := e.ca.Cert(t, "alice", pki.RoleClient)
	resp, err = e.client(&op).Get(e.url(wire.ConnectPath))
	if err != nil {
		t.Fatal(err)
	}
	if b := errBody(t, resp); resp.StatusCode != http.StatusForbidden || b.Code != "forbidden" {
		t.Fatalf("client cert: %d %+v", resp.StatusCode, b)
	}
	if _, err := e.dial(op); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("dial with a client cert: %v", err)
	}

	// An agent certificate from another CA: the handshake fails.
	other := newTestCA(t).Cert(t, "web1", pki.RoleAgent)
	if resp, err := e.client(&other).Get(e.url(wire.ConnectPath)); err == nil {
		resp.Body.Close()
		t.Fatalf("a certificate of another CA got %d", resp.StatusCode)
	}
	if _, err := e.dial(other); err == nil {
		t.Fatal("dialed with a certificate of another CA")
	}
	if len(e.reg.admitted) != 0 || len(e.hub.Agents()) != 0 {
		t.Fatalf("admitted %v, agents %v", e.reg.admitted, e.hub.Agents())
	}
}

func TestConnectAdmitRefused(t *testing.T) {
	e := newEnv(t)
	e.reg.admitErr = fmt.Errorf("agent web1 is revoked: %w", ErrRefused)
	cert := e.ca.Cert(t, "web1", pki.RoleAgent)
	resp, err := e.client(&cert).Get(e.url(wire.ConnectPath))
	if err != nil {
		t.Fatal(err)
	}
	b := errBody(t, resp)
	if resp.StatusCode != http.StatusForbidden || b.Code != "refused" || !strings.Contains(b.Error, "revoked") {
		t.Fatalf("%d %+v", resp.StatusCode, b)
	}
	if _, err := e.dial(cert); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("dial: %v", err)
	}
	if len(e.hub.Agents()) != 0 {
		t.Fatal("a refused agent is listed")
	}
}

func TestHelloNameMismatch(t *testing.T) {
	e := newEnv(t)
	a, err := e.dial(e.ca.Cert(t, "web1", pki.RoleAgent))
	if err != nil {
		t.Fatal(err)
	}
	a.send(wire.Frame{Type: wire.TypeHello, Hello: &wire.Hello{Name: "db1"}})
	if st := a.closed(); st != websocket.StatusPolicyViolation {
		t.Fatalf("closed with %v", st)
	}
	if len(e.hub.Agents()) != 0 {
		t.Fatalf("Agents() = %+v", e.hub.Agents())
	}

	// A first frame that is not a hello.
	a, err = e.dial(e.ca.Cert(t, "web1", pki.RoleAgent))
	if err != nil {
		t.Fatal(err)
	}
	a.send(wire.Frame{Type: wire.TypePing})
	if st := a.closed(); st != websocket.StatusPolicyViolation {
		t.Fatalf("closed with %v", st)
	}
	if len(e.hub.Agents()) != 0 {
		t.Fatalf("Agents() = %+v", e.hub.Agents())
	}
}

func TestMalformedFrameClosesSession(t *testing.T) {
	e := newEnv(t)
	a := e.connect("web1", wire.Hello{})
	h, _ := e.hub.Host("web1")
	done := async(func() error { return h.Run(context.Background(), "x", nil) })
	a.action(wire.KindRun)
	if err := a.conn.Write(context.Background(), websocket.MessageText, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	mustIs(t, recvErr(t, done), ErrDisconnected, "malformed frame")
	if st := a.closed(); st != websocket.StatusPolicyViolation {
		t.Fatalf("closed with %v", st)
	}
}

func TestEnroll(t *testing.T) {
	e := newEnv(t)
	e.reg.resp = wire.EnrollResponse{Certificate: []byte("CERT PEM"), CA: []byte("CA PEM")}
	const token = "drover-join-s3cr3t-t0ken"
	body, _ := json.Marshal(wire.EnrollRequest{Name: "web1", Token: token, PublicKey: []byte{1, 2, 3}})
	post := func(b []byte) *http.Response {
		t.Helper()
		resp, err := e.client(nil).Post(e.url(wire.EnrollPath), "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	resp := post(body)
	var got wire.EnrollResponse
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d: %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if string(got.Certificate) != "CERT PEM" || string(got.CA) != "CA PEM" {
		t.Fatalf("response = %+v", got)
	}
	if r := e.reg.enrolled[0]; r.Name != "web1" || r.Token != token || !bytes.Equal(r.PublicKey, []byte{1, 2, 3}) {
		t.Fatalf("registry got %+v", r)
	}

	e.reg.enrollErr = fmt.Errorf("join token unknown or spent: %w", ErrRefused)
	resp = post(body)
	if b := errBody(t, resp); resp.StatusCode != http.StatusForbidden || b.Code != "refused" {
		t.Fatalf("%d %+v", resp.StatusCode, b)
	}

	e.reg.enrollErr = errors.New("raft: apply timed out")
	resp = post(body)
	if b := errBody(t, resp); resp.StatusCode != http.StatusInternalServerError || b.Code != "internal" {
		t.Fatalf("%d %+v", resp.StatusCode, b)
	}

	resp = post([]byte("{nope"))
	if b := errBody(t, resp); resp.StatusCode != http.StatusBadRequest || b.Code != "bad_request" {
		t.Fatalf("%d %+v", resp.StatusCode, b)
	}

	big, _ := json.Marshal(wire.EnrollRequest{Name: "web1", PublicKey: make([]byte, maxEnrollBody)})
	resp = post(big)
	if b := errBody(t, resp); resp.StatusCode != http.StatusRequestEntityTooLarge || b.Code != "too_large" {
		t.Fatalf("%d %+v", resp.StatusCode, b)
	}

	resp, err := e.client(nil).Get(e.url(wire.EnrollPath))
	if err != nil {
		t.Fatal(err)
	}
	if b := errBody(t, resp); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d %+v", resp.StatusCode, b)
	}

	if strings.Contains(e.logs.String(), token) {
		t.Fatal("the join token was logged")
	}
	if !strings.Contains(e.logs.String(), "agent enrolled") {
		t.Fatalf("logs: %s", e.logs.String())
	}
}

// A caller stuck writing output does not hold up CloseAll.
func TestCloseAllWithStuckCaller(t *testing.T) {
	e := newEnv(t)
	a := e.connect("web1", wire.Hello{})
	h, _ := e.hub.Host("web1")
	release := make(chan struct{})
	done := async(func() error { return h.Run(context.Background(), "x", blockingWriter(release)) })
	act := a.action(wire.KindRun)
	a.output(act.ID, "first")
	a.output(act.ID, "second")

	closed := async(func() error { e.hub.CloseAll(); return nil })
	if err := recvErr(t, closed); err != nil {
		t.Fatal(err)
	}
	close(release)
	mustIs(t, recvErr(t, done), ErrDisconnected)
}

type blockingWriter chan struct{}

func (w blockingWriter) Write(p []byte) (int, error) {
	<-w
	return len(p), nil
}

// An action on an agent that just dropped its connection waits a little
// for it to come back (a restart, a leader change) before it fails.
func TestReconnectGrace(t *testing.T) {
	waiting := make(chan struct{})
	e := newEnv(t, func(h *Hub) {
		h.grace = 5 * time.Second
		var once sync.Once
		h.awaiting = func(string) { once.Do(func() { close(waiting) }) }
	})
	a := e.connect("web1", wire.Hello{})
	h, _ := e.hub.Host("web1")
	_ = a.conn.CloseNow()
	testwait.For(t, "web1 offline", func() bool { return !e.hub.Agents()[0].Online })
	done := async(func() error { return h.Run(context.Background(), "true", nil) })
	select { // the action waits for web1 before it comes back
	case <-waiting:
	case <-time.After(testwait.Limit):
		t.Fatal("the action did not wait for web1 to reconnect")
	}
	b := e.connect("web1", wire.Hello{})
	act := b.action(wire.KindRun)
	b.send(wire.Frame{Type: wire.TypeResult, Result: &wire.Result{ID: act.ID}})
	if err := recvErr(t, done); err != nil {
		t.Fatalf("run after the agent came back: %v", err)
	}
}

// streams is an output whose caller keeps stderr apart.
type streams struct{ out, err bytes.Buffer }

func (s *streams) Write(p []byte) (int, error) { return s.out.Write(p) }
func (s *streams) Stderr() io.Writer           { return &s.err }

// A caller that keeps stderr apart asks the agent for Streams and gets
// stderr frames written to its Stderr().
func TestRunKeepsStderrApart(t *testing.T) {
	e := newEnv(t)
	a := e.connect("web1", wire.Hello{})
	h, _ := e.hub.Host("web1")
	var s streams
	done := async(func() error { return h.Run(context.Background(), "x", &s) })
	act := a.action(wire.KindRun)
	if !act.Streams {
		t.Fatalf("action = %+v, want streams", act)
	}
	a.output(act.ID, "out\n")
	a.send(wire.Frame{Type: wire.TypeOutput, Output: &wire.Output{ID: act.ID, Data: []byte("err\n"), Stderr: true}})
	a.result(wire.Result{ID: act.ID})
	if err := recvErr(t, done); err != nil {
		t.Fatal(err)
	}
	if s.out.String() != "out\n" || s.err.String() != "err\n" {
		t.Fatalf("stdout %q, stderr %q", s.out.String(), s.err.String())
	}
	// A plain writer: no Streams asked.
	var out bytes.Buffer
	done = async(func() error { return h.Run(context.Background(), "x", &out) })
	if act = a.action(wire.KindRun); act.Streams {
		t.Fatalf("action = %+v, want no streams", act)
	}
	a.result(wire.Result{ID: act.ID})
	if err := recvErr(t, done); err != nil {
		t.Fatal(err)
	}
}
