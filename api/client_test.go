package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/raftstore"
)

func TestClientFailover(t *testing.T) {
	p := newPKI(t)
	ctx := context.Background()

	t.Run("first address dead", func(t *testing.T) {
		st := newStore()
		l := startNode(t, p, st, "n1", true)
		c := newTestClient(t, p, tokManage, deadAddr(t), l.addr)
		if _, err := c.Submit(ctx, SubmitRequest{PlanName: "web", Plan: "name: web"}); err != nil {
			t.Fatal(err)
		}
		if got := c.next.Load(); got != 1 {
			t.Fatalf("next address %d, want 1 (the one that answered)", got)
		}
		if _, err := c.Deployments(ctx); err != nil {
			t.Fatal(err)
		}
		if st.writeCount() != 1 || len(l.requests()) != 2 {
			t.Fatalf("writes %d, leader saw %+v", st.writeCount(), l.requests())
		}
	})

	t.Run("follower without a leader, then the leader", func(t *testing.T) {
		st := newStore()
		f := startNode(t, p, st, "n2", false)
		l := startNode(t, p, st, "n1", true)
		c := newTestClient(t, p, tokManage, f.addr, l.addr)
		id, err := c.Submit(ctx, SubmitRequest{PlanName: "web", Plan: "name: web"})
		if err != nil || id != "d1" {
			t.Fatalf("submit: %q %v", id, err)
		}
		if st.writeCount() != 1 || len(f.requests()) != 1 {
			t.Fatalf("writes %d, follower saw %+v", st.writeCount(), f.requests())
		}
	})

	t.Run("leader elected while trying", func(t *testing.T) {
		st := newStore()
		f := startNode(t, p, st, "n2", false)
		l := startNode(t, p, st, "n1", false)
		time.AfterFunc(150*time.Millisecond, func() {
			l.setLeader(true, l.addr)
			f.setLeader(false, l.addr)
		})
		c := newTestClient(t, p, tokManage, f.addr, l.addr)
		if err := c.Act(ctx, "d0", ActionPause); !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v, want the leader's ErrNotFound", err)
		}
	})

	t.Run("nobody answers", func(t *testing.T) {
		a, b := deadAddr(t), deadAddr(t)
		c := newTestClient(t, p, tokManage, a, b)
		ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		_, err := c.Deployments(ctx)
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
		if msg := err.Error(); !strings.Contains(msg, a) || !strings.Contains(msg, b) || !strings.Contains(msg, "refused") {
			t.Fatalf("message %q lacks the addresses or the cause", msg)
		}
	})

	t.Run("no leader anywhere, within Timeout", func(t *testing.T) {
		st := newStore()
		f := startNode(t, p, st, "n2", false)
		c, err := NewClient(ClientConfig{Addrs: []string{f.addr}, TLS: p.clientTLS(&p.client), Token: tokManage, Timeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = c.Act(ctx, "d1", ActionAbort)
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrNoLeader) {
			t.Fatalf("got %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("gave up after %v", d)
		}
		if st.writeCount() != 0 {
			t.Fatal("a write happened")
		}
	})
}

// breaker accepts a request, then drops the connection without answering.
func breaker(t *testing.T, p *testPKI) string {
	return serveTLS(t, p, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
}

// serveTLS serves h over the test PKI's TLS and returns its address.
func serveTLS(t *testing.T, p *testPKI, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = p.serverTLS(t)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestClientDoesNotRepeatWrites(t *testing.T) {
	p := newPKI(t)
	st := newStore()
	l := startNode(t, p, st, "n1", true)
	c := newTestClient(t, p, tokManage, breaker(t, p), l.addr)

	// A join carries no request key: it is not repeated.
	err := c.Join(context.Background(), JoinRequest{ID: "n9", RaftAddr: "10.0.0.9:7000", HTTPAddr: "10.0.0.9:8443"})
	if err == nil || errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "may have been applied") {
		t.Fatalf("got %v, want an error saying the write may have happened", err)
	}
	if len(l.requests()) != 0 || st.writeCount() != 0 {
		t.Fatalf("the write was repeated on the next address: %+v", l.requests())
	}
	// A read is repeated.
	if _, err := c.Deployments(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestClientRepeatsKeyedWrites: a write that carries a request key is sent
// again when its answer was lost, with the same key, and the repeat of a
// write that was done answers the first one's result.
func TestClientRepeatsKeyedWrites(t *testing.T) {
	ctx := context.Background()
	submit := SubmitRequest{PlanName: "web", Plan: "name: web"}
	t.Run("leadership lost while committing", func(t *testing.T) {
		p := newPKI(t)
		st := newStore()
		st.lose["submit"] = 1
		l := startNode(t, p, st, "n1", true)
		c := newTestClient(t, p, tokManage, l.addr)
		id, err := c.Submit(ctx, submit)
		if err != nil {
			t.Fatalf("submit: %v (a repeat of a submit that was done must answer it, not fail)", err)
		}
		if id != "d1" || len(st.order) != 1 {
			t.Fatalf("id %q, deployments %v; want d1 only", id, st.order)
		}
		if len(st.seen) != 2 || st.seen[0] == "" || st.seen[0] != st.seen[1] {
			t.Fatalf("request keys received %q, want the same key twice", st.seen)
		}
	})
	t.Run("answer lost in transit", func(t *testing.T) {
		p := newPKI(t)
		st := newStore()
		l := startNode(t, p, st, "n1", true)
		c := newTestClient(t, p, tokManage, breaker(t, p), l.addr)
		if _, err := c.Submit(ctx, submit); err != nil {
			t.Fatal(err)
		}
		if len(st.seen) != 1 || st.seen[0] == "" {
			t.Fatalf("request keys received %q, want one key", st.seen)
		}
	})
	t.Run("each call is a new request", func(t *testing.T) {
		p := newPKI(t)
		st := newStore()
		l := startNode(t, p, st, "n1", true)
		c := newTestClient(t, p, tokManage, l.addr)
		for range 2 {
			if _, err := c.Submit(ctx, submit); err != nil {
				t.Fatal(err)
			}
		}
		if len(st.order) != 2 || st.seen[0] == st.seen[1] {
			t.Fatalf("deployments %v, keys %q: want two of each", st.order, st.seen)
		}
	})
	t.Run("a write without a key is not repeated after an unknown outcome", func(t *testing.T) {
		p := newPKI(t)
		st := newStore()
		st.lose["join"] = 1
		l := startNode(t, p, st, "n1", true)
		c := newTestClient(t, p, tokManage, l.addr)
		err := c.Join(ctx, JoinRequest{ID: "n9", RaftAddr: "10.0.0.9:7000", HTTPAddr: "10.0.0.9:8443"})
		if !errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, ErrNotLeader) {
			t.Fatalf("join: %v, want ErrOutcomeUnknown (and not ErrNotLeader, which says it was not done)", err)
		}
		if st.writeCount() != 1 {
			t.Fatalf("%d joins, want 1", st.writeCount())
		}
	})
	t.Run("a malformed key is refused", func(t *testing.T) {
		p := newPKI(t)
		st := newStore()
		l := startNode(t, p, st, "n1", true)
		req, _ := http.NewRequest(http.MethodPost, "https://"+l.addr+"/v1/deployments", strings.NewReader(`{"plan":"name: web"}`))
		req.Header.Set("Authorization", "Bearer "+tokManage)
		req.Header.Set(HeaderIdempotencyKey, strings.Repeat("k", 200))
		resp, err := p.httpClient(&p.client).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || st.writeCount() != 0 {
			t.Fatalf("status %d, %d writes; want 400 and none", resp.StatusCode, st.writeCount())
		}
	})
}

func TestClientErrors(t *testing.T) {
	p := newPKI(t)
	ctx := context.Background()
	cases := []struct {
		name    string
		backend error // returned by the fake's Act
		status  int
		is      []error
		message string
	}{
		{"unknown deployment", fmt.Errorf("d9: %w", deploy.ErrUnknownDeployment), 404, []error{ErrNotFound}, "d9: no such deployment"},
		{"host locked", fmt.Errorf("web1: %w d0", deploy.ErrHostLocked), 409, []error{ErrConflict}, ""},
		{"name in use", deploy.ErrNameInUse, 409, []error{ErrConflict}, ""},
		{"exists", deploy.ErrExists, 409, []error{ErrConflict}, ""},
		{"terminal", fmt.Errorf("d1 is succeeded: %w", deploy.ErrTerminal), 409, []error{ErrConflict}, ""},
		{"bad plan", fmt.Errorf("%w: web.yaml:3:5: unknown field \"batchs\"\nweb.yaml:9:1: hosts: empty", ErrBadRequest), 400,
			[]error{ErrBadRequest}, "bad request: web.yaml:3:5: unknown field \"batchs\"\nweb.yaml:9:1: hosts: empty"},
		{"digest", fmt.Errorf("artifact: %w", ErrDigest), 400, []error{ErrBadRequest, ErrDigest}, ""},
		{"deadline", fmt.Errorf("apply: %w", context.DeadlineExceeded), 504, nil, ""},
		{"other", errors.New("disk on fire"), 500, nil, "disk on fire"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newStore()
			st.addDeployment("d1")
			l := startNode(t, p, st, "n1", true)
			st.setFail("pause", tc.backend)
			c := newTestClient(t, p, tokManage, l.addr)
			err := c.Act(ctx, "d1", ActionPause)
			var e *Error
			if !errors.As(err, &e) || e.Status != tc.status {
				t.Fatalf("got %#v, want status %d", err, tc.status)
			}
			for _, target := range tc.is {
				if !errors.Is(err, target) {
					t.Errorf("%v is not %v", err, target)
				}
			}
			for _, other := range []error{ErrNotFound, ErrConflict, ErrBadRequest, ErrDigest, ErrUnauthorized, ErrForbidden} {
				if errors.Is(err, other) && !slices.Contains(tc.is, other) {
					t.Errorf("%v is also %v", err, other)
				}
			}
			if tc.message != "" && err.Error() != tc.message {
				t.Errorf("message %q, want %q", err.Error(), tc.message)
			}
		})
	}

	t.Run("credentials", func(t *testing.T) {
		st := newStore()
		l := startNode(t, p, st, "n1", true)
		for _, c := range []struct {
			token string
			cert  *tls.Certificate
			want  error
		}{
			{"wrong-token", &p.client, ErrUnauthorized},
			{tokRead, &p.client, ErrForbidden},
			{tokAgent, &p.client, ErrForbidden},
			{tokManage, nil, ErrCertificateRequired},
		} {
			cl, err := NewClient(ClientConfig{Addrs: []string{l.addr}, TLS: p.clientTLS(c.cert), Token: c.token})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cl.Submit(ctx, SubmitRequest{PlanName: "web", Plan: "x"}); !errors.Is(err, c.want) {
				t.Errorf("token %q: got %v, want %v", c.token, err, c.want)
			}
		}
		if st.writeCount() != 0 {
			t.Fatal("a refused request wrote")
		}
	})
}

func TestClientArtifactsAndTokens(t *testing.T) {
	p := newPKI(t)
	ctx := context.Background()
	st := newStore()
	l := startNode(t, p, st, "n1", true)
	f := startNode(t, p, st, "n2", false)
	f.setLeader(false, l.addr)
	c := newTestClient(t, p, tokManage, f.addr)

	archive := bytes.Repeat([]byte("release "), 100000)
	sha := sha256Hex(archive)
	opens := 0
	open := func() (io.ReadCloser, error) { opens++; return io.NopCloser(bytes.NewReader(archive)), nil }
	if err := c.UploadArtifact(ctx, sha, open); err != nil {
		t.Fatal(err)
	}
	if err := c.UploadArtifact(ctx, sha, open); err != nil {
		t.Fatal(err)
	}
	if opens != 1 || !bytes.Equal(st.artifacts[sha], archive) {
		t.Fatalf("opened %d times; stored %d bytes", opens, len(st.artifacts[sha]))
	}
	if len(l.requests()) != 0 {
		t.Fatalf("the upload reached the leader: %+v", l.requests())
	}
	err := c.UploadArtifact(ctx, strings.Repeat("ab", 32), open)
	if !errors.Is(err, ErrDigest) || !errors.Is(err, ErrBadRequest) {
		t.Fatalf("mismatch: got %v", err)
	}

	// A coordinator fetches it with its server certificate alone.
	resp, err := p.httpClient(&p.server).Get("https://" + f.addr + "/v1/artifacts/" + sha)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, archive) || resp.ContentLength != int64(len(archive)) {
		t.Fatalf("download: %d, %d bytes", resp.StatusCode, len(got))
	}

	tr, err := c.CreateToken(ctx, TokenRequest{Name: "deployer", Role: raftstore.RoleManage, TTL: Duration(time.Hour)})
	if err != nil || tr.Token != "new-deployer" || tr.Role != raftstore.RoleManage {
		t.Fatalf("create: %+v %v", tr, err)
	}
	ts, err := c.Tokens(ctx)
	if err != nil || len(ts) != 4 {
		t.Fatalf("tokens: %+v %v", ts, err)
	}
	_, body := rawDo(t, p, "GET", "https://"+f.addr+"/v1/tokens", "", nil)
	if bytes.Contains(body, []byte("hash")) || bytes.Contains(body, []byte("h1")) {
		t.Fatalf("token list leaks hashes: %s", body)
	}
	if err := c.DeleteToken(ctx, "deployer"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteToken(ctx, "deployer"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := c.CreateToken(ctx, TokenRequest{Name: "x", Role: "root"}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("bad role: %v", err)
	}

	st.members = []Member{{ID: "n1", HTTPAddr: l.addr}}
	if err := c.Join(ctx, JoinRequest{ID: "n3", RaftAddr: "r3", HTTPAddr: "h3"}); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveMember(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	id, err := c.Submit(ctx, SubmitRequest{PlanName: "web", Plan: "name: web", ArtifactSHA256: sha})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := c.Deployment(ctx, id); err != nil || d.ArtifactSHA256 != sha {
		t.Fatalf("deployment: %+v %v", d, err)
	}
	if ds, err := c.Deployments(ctx); err != nil || len(ds) != 1 {
		t.Fatalf("deployments: %+v %v", ds, err)
	}
	if rb, err := c.Rollback(ctx, id, ""); err != nil || rb != id+"-rb" {
		t.Fatalf("rollback: %q %v", rb, err)
	}
	if rb, err := c.Rollback(ctx, id, "v0"); err != nil || rb != id+"-rb" {
		t.Fatalf("rollback --to: %q %v", rb, err)
	}
	if p, err := c.Logs(ctx, deploy.LogQuery{ID: id, Host: "web1", Stage: deploy.StageActivate, After: 4}); err != nil ||
		len(p.Lines) != 1 || p.Lines[0].Host != "web1" || p.Lines[0].Stage != deploy.StageActivate || p.Lines[0].Seq != 5 || p.Next != 5 {
		t.Fatalf("logs: %+v %v", p, err)
	}
	if _, err := c.Logs(ctx, deploy.LogQuery{ID: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("logs of an unknown deployment: %v", err)
	}
	if s, err := c.Status(ctx); err != nil || s.ID != "n2" {
		t.Fatalf("status: %+v %v", s, err)
	}
	want := []string{"put " + sha[:8], "token deployer", "untoken deployer", "join n3", "remove n3", "submit web", "rollback d1", "rollback d1 to v0"}
	if !slices.Equal(st.writes, want) {
		t.Fatalf("writes %q, want %q", st.writes, want)
	}
}

func TestParseAddrs(t *testing.T) {
	cases := []struct {
		in   string
		want []string
		err  bool
	}{
		{"10.0.0.1:7443", []string{"10.0.0.1:7443"}, false},
		{" a:1, b:2 ,,a:1", []string{"a:1", "b:2"}, false},
		{"https://c1.example:7443,[::1]:8443", []string{"c1.example:7443", "[::1]:8443"}, false},
		{"", nil, true},
		{" , ", nil, true},
		{"host", nil, true},
		{"host:http", nil, true},
		{":7443", nil, true},
		{"http://a:1", nil, true},
		{"https://a:1/v1", nil, true},
	}
	for _, tc := range cases {
		got, err := ParseAddrs(tc.in)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("ParseAddrs(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestErrorIs(t *testing.T) {
	all := []error{ErrBadRequest, ErrDigest, ErrUnauthorized, ErrForbidden, ErrNotFound, ErrConflict,
		ErrCertificateRequired, ErrNotLeader, ErrNoLeader}
	cases := []struct {
		e    Error
		want []error
	}{
		{Error{400, "bad_request", ""}, []error{ErrBadRequest}},
		{Error{400, "digest_mismatch", ""}, []error{ErrBadRequest, ErrDigest}},
		{Error{401, "unauthorized", ""}, []error{ErrUnauthorized}},
		{Error{401, "certificate_required", ""}, []error{ErrCertificateRequired}},
		{Error{403, "forbidden", ""}, []error{ErrForbidden}},
		{Error{404, "", ""}, []error{ErrNotFound}},
		{Error{409, "conflict", ""}, []error{ErrConflict}},
		{Error{503, "not_leader", ""}, []error{ErrNotLeader, raftstore.ErrNotLeader}},
		{Error{503, "no_leader", ""}, []error{ErrNoLeader}},
		{Error{500, "internal", "boom"}, nil},
	}
	for _, tc := range cases {
		for _, target := range all {
			if got, want := errors.Is(&tc.e, target), slices.Contains(tc.want, target); got != want {
				t.Errorf("errors.Is(%+v, %v) = %v", tc.e, target, got)
			}
		}
	}
}

func TestDurationJSON(t *testing.T) {
	b, err := json.Marshal(TokenRequest{Name: "a", Role: raftstore.RoleRead, TTL: Duration(90 * time.Second)})
	if err != nil || !strings.Contains(string(b), `"ttl":"1m30s"`) {
		t.Fatalf("%s %v", b, err)
	}
	var r TokenRequest
	if err := json.Unmarshal(b, &r); err != nil || r.TTL != Duration(90*time.Second) {
		t.Fatalf("%+v %v", r, err)
	}
}

// blackHole accepts connections and never answers: a node that hangs, or
// whose replies are lost.
func blackHole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// silentStream answers an event stream with its first event, then sends
// nothing more, not even heartbeats: a node that went silent mid-stream.
func silentStream(t *testing.T, p *testPKI, first deploy.Event) string {
	t.Helper()
	return serveTLS(t, p, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		b, _ := json.Marshal(first)
		fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", first.Seq, first.Kind, b)
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})
}

// A watcher whose node goes silent or hangs moves to another node at once
// instead of waiting for TCP: no sticky preference for the address that
// just failed.
func TestClientPassesOverSilentNodes(t *testing.T) {
	p := newPKI(t)

	t.Run("a read does not wait for a node that never answers", func(t *testing.T) {
		st := newStore()
		l := startNode(t, p, st, "n1", true)
		c := newTestClient(t, p, tokRead, blackHole(t), l.addr)
		// Well under the handshake timeout the black hole would cost.
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout-time.Second)
		defer cancel()
		for i := range 3 {
			if _, err := c.Deployments(ctx); err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
		}
		if len(l.requests()) != 3 {
			t.Fatalf("the leader saw %+v", l.requests())
		}
	})

	t.Run("a silent stream resumes on another node after the last event", func(t *testing.T) {
		st := newStore()
		l := startNode(t, p, st, "n1", true)
		st.addDeployment("d1") // 1
		st.stage("d1", "web1") // 2
		st.mu.Lock()
		first := st.events[0]
		st.mu.Unlock()
		silent := silentStream(t, p, first)
		c := newTestClient(t, p, tokRead, silent, l.addr)
		c.idle = 200 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var got []uint64
		err := c.Watch(ctx, "d1", 0, func(ev deploy.Event) error {
			got = append(got, ev.Seq)
			if ev.Seq == 2 {
				st.finish("d1", deploy.StateSucceeded) // 3
			}
			return nil
		})
		if err != nil {
			t.Fatalf("watch: %v (events %v)", err, got)
		}
		if !slices.Equal(got, []uint64{1, 2, 3}) {
			t.Fatalf("events %v, want 1 2 3", got)
		}
		reqs := l.requests()
		if len(reqs) == 0 || reqs[0].lastEventID != "1" {
			t.Fatalf("the other node saw %+v, want a resume after event 1", reqs)
		}
	})
}

// A deployment records who asked, from the caller's certificate (through a
// follower too), never from the request body; and why, from the request.
func TestSubmitRecordsWhoAsked(t *testing.T) {
	p := newPKI(t)
	ctx := context.Background()
	st := newStore()
	l := startNode(t, p, st, "n1", true)
	f := startNode(t, p, st, "n2", false)
	f.setLeader(false, l.addr)
	for _, addr := range []string{l.addr, f.addr} {
		c := newTestClient(t, p, tokManage, addr)
		id, err := c.Submit(ctx, SubmitRequest{PlanName: "web", Plan: "name: web", Message: "fix the login page", By: "client root"})
		if err != nil {
			t.Fatal(err)
		}
		d, err := c.Deployment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if d.By != "client operator" || d.Message != "fix the login page" {
			t.Errorf("through %s: by %q, message %q; want the caller's certificate (operator) and the message", addr, d.By, d.Message)
		}
	}
	// A body that names someone is refused: "by" is not a request field.
	body := `{"plan_name":"web","plan":"name: web","by":"client root"}`
	req, _ := http.NewRequest(http.MethodPost, "https://"+l.addr+"/v1/deployments", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tokManage)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.httpClient(&p.client).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `unknown field \"by\"`) {
		t.Errorf("a submit naming its author: %s %s, want 400 unknown field", resp.Status, b)
	}
}
