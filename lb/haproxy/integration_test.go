package haproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// This file runs the driver against a real HAProxy process. It skips when
// HAProxy is not installed, except under CI=true, where it fails instead.

// haproxyBinary finds HAProxy: $HAPROXY, /usr/sbin/haproxy, then $PATH.
func haproxyBinary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("HAPROXY"), "/usr/sbin/haproxy"} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("haproxy not found (looked at $HAPROXY, /usr/sbin/haproxy, $PATH); CI=true requires this test: install the haproxy package")
	}
	t.Skip("haproxy not installed (looked at $HAPROXY, /usr/sbin/haproxy, $PATH): skipping the real-HAProxy integration test")
	return ""
}

// app is one backend server: "/" answers its name, "/fail" a 500, "/slow"
// holds the request until the test releases it.
type app struct {
	name    string
	srv     *httptest.Server
	hits    atomic.Int64  // requests to "/"
	started chan struct{} // one value per /slow request received
	release chan struct{} // one value lets one /slow request finish
	stop    chan struct{} // closed at cleanup: finish every /slow request
}

func newApp(t testing.TB, name string, ln net.Listener) *app {
	a := &app{name: name, started: make(chan struct{}, 16), release: make(chan struct{}, 16), stop: make(chan struct{})}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			a.started <- struct{}{}
			select {
			case <-a.release:
			case <-a.stop:
			case <-r.Context().Done():
				return
			}
		} else {
			a.hits.Add(1)
		}
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
		fmt.Fprint(w, a.name)
	})
	a.srv = httptest.NewUnstartedServer(h)
	if ln != nil {
		a.srv.Listener.Close()
		a.srv.Listener = ln
	}
	a.srv.Start()
	t.Cleanup(func() {
		close(a.stop)
		a.srv.Close()
	})
	return a
}

func (a *app) port() string {
	_, p, _ := net.SplitHostPort(a.srv.Listener.Addr().String())
	return p
}

// freePort returns a loopback port that nothing listens on (now).
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

type lab struct {
	dir      string
	frontend string // http://127.0.0.1:port
	s1, s2   *app
	s3Port   string // backend "spare", server s3: nothing listens at first, so it goes DOWN
	client   *http.Client
}

func (l *lab) driver(t *testing.T, cfg Config) *Driver {
	t.Helper()
	if cfg.Socket == "" {
		cfg.Socket = filepath.Join(l.dir, "admin.sock")
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 5 * time.Millisecond
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// get sends one request through HAProxy and returns the status and body.
func (l *lab) get(path string) (int, string, error) {
	resp, err := l.client.Get(l.frontend + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func server(t *testing.T, d *Driver, id string) Server {
	t.Helper()
	all, err := d.Servers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if s.ID() == id {
			return s
		}
	}
	t.Fatalf("no server %s in %+v", id, all)
	return Server{}
}

// waitServer polls until cond holds for server id, or fails after 5s.
func waitServer(t *testing.T, d *Driver, id string, what string, cond func(Server) bool) Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var last Server
	for {
		if all, err := d.Servers(ctx); err == nil {
			for _, s := range all {
				if s.ID() == id {
					last = s
					if cond(s) {
						return s
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %s not reached; last %+v", id, what, last)
		case <-tick.C:
		}
	}
}

func startLab(t *testing.T) *lab {
	t.Helper()
	bin := haproxyBinary(t)
	dir := t.TempDir()
	if len(dir) > 90 { // unix socket paths are limited to ~108 bytes
		var err error
		if dir, err = os.MkdirTemp("", "hlab"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	l := &lab{
		dir:    dir,
		s1:     newApp(t, "s1", nil),
		s2:     newApp(t, "s2", nil),
		s3Port: freePort(t),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}},
	}
	fePort := freePort(t)
	l.frontend = "http://127.0.0.1:" + fePort
	cfg := fmt.Sprintf(`global
    stats socket %[1]s/admin.sock mode 600 level admin
    stats socket %[1]s/user.sock mode 600 level user

defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    retries 0

frontend fe
    bind 127.0.0.1:%[2]s
    default_backend web

backend web
    balance roundrobin
    use-server s1 if { path /slow }
    server s1 127.0.0.1:%[3]s check inter 100ms
    server s2 127.0.0.1:%[4]s check inter 100ms

backend spare
    server s3 127.0.0.1:%[5]s check inter 100ms
`, dir, fePort, l.s1.port(), l.s2.port(), l.s3Port)
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	var outMu sync.Mutex
	cmd := exec.Command(bin, "-f", cfgPath, "-db")
	w := writerFunc(func(p []byte) (int, error) { outMu.Lock(); defer outMu.Unlock(); return out.Write(p) })
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		l.client.CloseIdleConnections()
		if t.Failed() {
			outMu.Lock()
			t.Logf("haproxy output:\n%s", out.String())
			outMu.Unlock()
		}
	})

	// Wait for the socket and for both web servers' first checks to pass.
	d := l.driver(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		all, err := d.Servers(ctx)
		up := 0
		for _, s := range all {
			if s.Backend == "web" && s.Up() && s.Admin == AdminReady {
				up++
			}
		}
		if err == nil && up == 2 {
			return l
		}
		select {
		case err := <-exited:
			outMu.Lock()
			defer outMu.Unlock()
			t.Fatalf("haproxy exited: %v\n%s", err, out.String())
		case <-ctx.Done():
			t.Fatalf("haproxy not ready: %v; servers %+v", err, all)
		case <-tick.C:
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// slowRequest starts a /slow request (routed to s1) and returns once s1 is
// handling it; the result arrives on the channel after a.release.
func (l *lab) slowRequest(t *testing.T) <-chan error {
	t.Helper()
	res := make(chan error, 1)
	go func() {
		code, body, err := l.get("/slow")
		if err == nil && (code != 200 || body != "s1") {
			err = fmt.Errorf("slow request: status %d, body %q", code, body)
		}
		res <- err
	}()
	select {
	case <-l.s1.started:
	case err := <-res:
		t.Fatalf("slow request ended early: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("slow request never reached s1")
	}
	return res
}

func TestRealHAProxy(t *testing.T) {
	l := startLab(t)
	ctx := context.Background()
	d := l.driver(t, Config{DrainTimeout: 10 * time.Second, EnableTimeout: 5 * time.Second})

	t.Run("counters", func(t *testing.T) {
		before, err := d.Counters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			path := "/"
			if i%5 == 0 {
				path = "/fail"
			}
			if _, _, err := l.get(path); err != nil {
				t.Fatal(err)
			}
		}
		after, err := d.Counters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var req, errs int64
		for _, s := range []string{"web/s1", "web/s2"} {
			req += after[s].Requests - before[s].Requests
			errs += after[s].Errors - before[s].Errors
		}
		if req != 10 || errs != 2 {
			t.Errorf("counters of web: %d requests, %d errors; want 10 and 2 (before %+v, after %+v)", req, errs, before, after)
		}
	})

	t.Run("weights", func(t *testing.T) {
		cur, initial, err := d.Weight(ctx, "web/s1")
		if err != nil || cur != initial || initial < 1 {
			t.Fatalf("weight of web/s1 = %d (initial %d), %v", cur, initial, err)
		}
		// s1 at 3 times s2's weight takes 3 of every 4 requests.
		if err := d.SetWeight(ctx, "web/s1", 3*initial); err != nil {
			t.Fatal(err)
		}
		if c, i, err := d.Weight(ctx, "web/s1"); c != 3*initial || i != initial || err != nil {
			t.Fatalf("after set: %d (initial %d), %v", c, i, err)
		}
		before := l.s1.hits.Load()
		for range 40 {
			if _, _, err := l.get("/"); err != nil {
				t.Fatal(err)
			}
		}
		if n := l.s1.hits.Load() - before; n < 28 || n > 32 {
			t.Errorf("s1 at weight 3:1 served %d of 40, want 30 (+-2: where the round starts)", n)
		}
		if err := d.SetWeight(ctx, "web/s1", initial); err != nil {
			t.Fatal(err)
		}
		if _, _, err := d.Weight(ctx, "web/nope"); !errors.Is(err, ErrUnknownServer) {
			t.Errorf("weight of web/nope: %v, want ErrUnknownServer", err)
		}
		if err := d.SetWeight(ctx, "web/nope", 1); !errors.Is(err, ErrUnknownServer) {
			t.Errorf("set weight of web/nope: %v, want ErrUnknownServer", err)
		}
	})

	t.Run("check", func(t *testing.T) {
		for _, s := range []string{"web/s1", "web/s2", "spare/s3"} {
			if err := d.Check(ctx, s); err != nil {
				t.Errorf("check %s: %v", s, err)
			}
		}
		for _, s := range []string{"web/nope", "nope/s1"} {
			if err := d.Check(ctx, s); !errors.Is(err, ErrUnknownServer) {
				t.Errorf("check %s = %v, want ErrUnknownServer", s, err)
			}
		}
		user := l.driver(t, Config{Socket: filepath.Join(l.dir, "user.sock")})
		if err := user.Check(ctx, "web/s1"); !errors.Is(err, ErrPermission) {
			t.Errorf("check through a user-level socket = %v, want ErrPermission", err)
		}
		if err := user.Drain(ctx, "web/s1"); !errors.Is(err, ErrPermission) {
			t.Errorf("drain through a user-level socket = %v, want ErrPermission", err)
		}
		if s := server(t, d, "web/s1"); !s.InRotation() {
			t.Errorf("check changed web/s1: %+v", s)
		}
	})

	t.Run("drain waits for in-flight request", func(t *testing.T) {
		slow := l.slowRequest(t)
		drained := make(chan error, 1)
		go func() { drained <- d.Drain(ctx, "web/s1") }()
		s1 := waitServer(t, d, "web/s1", "drain", func(s Server) bool { return s.Admin == AdminDrain })
		if s1.Sessions != 1 || s1.InRotation() {
			t.Fatalf("draining s1 = %+v, want 1 session, out of rotation", s1)
		}

		// New requests all go to s2 while s1 drains.
		before := l.s1.hits.Load()
		for i := range 10 {
			code, body, err := l.get("/")
			if err != nil || code != 200 || body != "s2" {
				t.Fatalf("request %d during drain: %d %q %v", i, code, body, err)
			}
		}
		if n := l.s1.hits.Load() - before; n != 0 {
			t.Fatalf("draining s1 received %d new requests", n)
		}
		select {
		case err := <-drained:
			t.Fatalf("drain returned with a request in flight: %v", err)
		case <-time.After(50 * time.Millisecond):
		}

		l.s1.release <- struct{}{}
		if err := <-slow; err != nil {
			t.Fatalf("in-flight request failed: %v", err)
		}
		select {
		case err := <-drained:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("drain did not return after the last request finished")
		}
		if s := server(t, d, "web/s1"); s.Admin != AdminMaint || s.Status != "MAINT" || s.Sessions != 0 {
			t.Fatalf("drained s1 = %+v, want MAINT", s)
		}
		for range 4 {
			if code, body, err := l.get("/"); err != nil || code != 200 || body != "s2" {
				t.Fatalf("request with s1 in maint: %d %q %v", code, body, err)
			}
		}
		if n := l.s1.hits.Load() - before; n != 0 {
			t.Fatalf("drained s1 received %d new requests", n)
		}
	})

	t.Run("enable", func(t *testing.T) {
		if err := d.Enable(ctx, "web/s1"); err != nil {
			t.Fatal(err)
		}
		if s := server(t, d, "web/s1"); !s.InRotation() {
			t.Fatalf("enabled s1 = %+v", s)
		}
		before := l.s1.hits.Load()
		for range 4 {
			if code, _, err := l.get("/"); err != nil || code != 200 {
				t.Fatalf("request after enable: %d %v", code, err)
			}
		}
		if l.s1.hits.Load() == before {
			t.Fatal("enabled s1 received no requests")
		}
	})

	t.Run("enable waits for UP", func(t *testing.T) {
		// As in a deployment: the app is down while the server is in MAINT.
		// (A server whose last check passed, or that was never checked,
		// is UP at once on leaving MAINT: HAProxy pauses checks in MAINT.)
		waitServer(t, d, "spare/s3", "DOWN", func(s Server) bool { return strings.HasPrefix(s.Status, "DOWN") })
		if err := d.Drain(ctx, "spare/s3"); err != nil {
			t.Fatal(err)
		}
		short := l.driver(t, Config{EnableTimeout: 300 * time.Millisecond})
		err := short.Enable(ctx, "spare/s3")
		// The last status is "UP 1/3" (HAProxy's unconfirmed UP on leaving
		// MAINT) if its first check has not run yet, else "DOWN".
		if !errors.Is(err, ErrEnableTimeout) || !(strings.Contains(err.Error(), `status "DOWN`) || strings.Contains(err.Error(), `status "UP 1/3"`)) {
			t.Fatalf("enable with nothing listening = %v, want ErrEnableTimeout naming the last status", err)
		}
		// Its first check fails; then start the app: Enable waits for the
		// `rise` passing checks.
		waitServer(t, d, "spare/s3", "DOWN", func(s Server) bool { return strings.HasPrefix(s.Status, "DOWN") })
		ln, err := net.Listen("tcp", "127.0.0.1:"+l.s3Port)
		if err != nil {
			t.Fatal(err)
		}
		newApp(t, "s3", ln)
		start := time.Now()
		if err := d.Enable(ctx, "spare/s3"); err != nil {
			t.Fatal(err)
		}
		t.Logf("spare/s3 UP %s after its app started", time.Since(start).Round(time.Millisecond))
		if s := server(t, d, "spare/s3"); !s.InRotation() {
			t.Fatalf("s3 = %+v", s)
		}
	})

	t.Run("drain timeout: fail, then force", func(t *testing.T) {
		slow := l.slowRequest(t)
		fail := l.driver(t, Config{DrainTimeout: 200 * time.Millisecond})
		err := fail.Drain(ctx, "web/s1")
		if !errors.Is(err, ErrDrainTimeout) {
			t.Fatalf("drain = %v, want ErrDrainTimeout", err)
		}
		if s := server(t, d, "web/s1"); s.Admin != AdminDrain || s.Sessions != 1 {
			t.Fatalf("after a failed drain s1 = %+v, want left in drain with its session", s)
		}

		var forced atomic.Int64
		force := l.driver(t, Config{DrainTimeout: 200 * time.Millisecond, Force: true,
			OnDrainForced: func(server string, sessions int) {
				if server == "web/s1" {
					forced.Store(int64(sessions))
				}
			}})
		if err := force.Drain(ctx, "web/s1"); err != nil {
			t.Fatalf("forced drain = %v, want nil", err)
		}
		if forced.Load() != 1 {
			t.Fatalf("OnDrainForced sessions = %d, want 1", forced.Load())
		}
		if s := server(t, d, "web/s1"); s.Admin != AdminMaint {
			t.Fatalf("after a forced drain s1 = %+v, want maint", s)
		}
		// MAINT does not cut the session: the request still completes.
		l.s1.release <- struct{}{}
		if err := <-slow; err != nil {
			t.Fatalf("in-flight request after forced drain: %v", err)
		}
		if err := d.Enable(ctx, "web/s1"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("drain and enable are idempotent", func(t *testing.T) {
		// A coordinator resuming after failover may repeat either call.
		for range 2 {
			if err := d.Drain(ctx, "web/s2"); err != nil {
				t.Fatal(err)
			}
			if s := server(t, d, "web/s2"); s.Admin != AdminMaint {
				t.Fatalf("s2 = %+v, want maint", s)
			}
		}
		for range 2 {
			if err := d.Enable(ctx, "web/s2"); err != nil {
				t.Fatal(err)
			}
		}
		if s := server(t, d, "web/s2"); !s.InRotation() {
			t.Fatalf("s2 = %+v", s)
		}
	})
}
