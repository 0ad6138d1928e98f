package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestHTTP(t *testing.T) {
	big := strings.Repeat("x", maxBody) + "ok"
	for _, tc := range []struct {
		name     string
		handler  http.HandlerFunc
		status   int
		contains string
		wantErr  string // "" means healthy
	}{
		{"ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }, 200, "ok", ""},
		{"default status", func(w http.ResponseWriter, r *http.Request) {}, 0, "", ""},
		{"other wanted status", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }, 204, "", ""},
		{"wrong status", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "db down", 500) }, 200, "",
			`status 500, want 200 (body: "db down")`},
		{"body missing", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "starting") }, 200, "ok",
			`body does not contain "ok" (body: "starting")`},
		{"only 64KiB read", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, big) }, 200, "ok",
			`body does not contain "ok"`},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, 200, "", "status 302, want 200"},
		{"timeout", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, 200, "", "timeout after 30ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			url := srv.URL + "/health"
			timeout := 5 * time.Second
			if tc.name == "timeout" {
				timeout = 30 * time.Millisecond
			}
			err := HTTP(url, tc.status, tc.contains, timeout).Check(context.Background())
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), "GET "+url+": ") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want GET %s: ...%s", err, url, tc.wantErr)
			}
		})
	}
}

func TestHTTPConnectionRefused(t *testing.T) {
	url := "http://" + closedAddr(t) + "/health"
	err := HTTP(url, 200, "", time.Second).Check(context.Background())
	if err == nil || err.Error() != "GET "+url+": dial tcp "+strings.TrimPrefix(strings.TrimSuffix(url, "/health"), "http://")+": connect: connection refused" {
		t.Fatalf("err = %v", err)
	}
}

func TestHTTPFreshConnectionEachProbe(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := HTTP(srv.URL, 200, "ok", time.Second)
	for range 3 {
		if err := c.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("3 probes used %d connections, want 3", n)
	}
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if err := TCP(ln.Addr().String(), time.Second).Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	addr := closedAddr(t)
	err = TCP(addr, time.Second).Check(context.Background())
	if err == nil || err.Error() != "tcp "+addr+": connect: connection refused" {
		t.Fatalf("err = %v", err)
	}
}

var errExit = errors.New("exit status 1")

func TestCommand(t *testing.T) {
	var got string
	ok := Command(func(ctx context.Context, cmd string, out io.Writer) error {
		got = cmd
		fmt.Fprintln(out, "fine")
		return nil
	}, "test -f READY", time.Second)
	if err := ok.Check(context.Background()); err != nil || got != "test -f READY" {
		t.Fatalf("err = %v, ran %q", err, got)
	}

	fail := Command(func(ctx context.Context, cmd string, out io.Writer) error {
		fmt.Fprint(out, strings.Repeat("noise\n", 2000))
		fmt.Fprint(out, "READY missing\n")
		return errExit
	}, "test -f READY", time.Second)
	err := fail.Check(context.Background())
	if !errors.Is(err, errExit) {
		t.Fatalf("err = %v, want it to wrap the run error", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, `command "test -f READY": exit status 1: ...`) || !strings.HasSuffix(msg, "READY missing") {
		t.Fatalf("message = %.120q...", msg)
	}
	if len(msg) > maxOutput+100 {
		t.Fatalf("message is %d bytes: output not bounded", len(msg))
	}

	hang := Command(func(ctx context.Context, cmd string, out io.Writer) error {
		<-ctx.Done()
		return ctx.Err()
	}, "sleep 100", 20*time.Millisecond)
	if err := hang.Check(context.Background()); err == nil || err.Error() != `command "sleep 100": timeout after 20ms` {
		t.Fatalf("err = %v", err)
	}
}

// scripted is an app whose /health answers follow a script: step i answers
// script[i], and the last step repeats (or the whole script cycles).
type scripted struct {
	srv    *httptest.Server
	mu     sync.Mutex
	script []int // status per request; 0 means hang until the client gives up
	cycle  bool
	n      int
}

func newScripted(t *testing.T, cycle bool, script ...int) *scripted {
	s := &scripted{script: script, cycle: cycle}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		i := s.n
		s.n++
		s.mu.Unlock()
		if s.cycle {
			i %= len(s.script)
		} else {
			i = min(i, len(s.script)-1)
		}
		code := s.script[i]
		if code == 0 {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(code)
		if code == 200 {
			fmt.Fprint(w, "ok")
		} else {
			fmt.Fprint(w, "not ready")
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *scripted) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func TestWaitHealthy(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name   string
		cycle  bool
		script []int
		pol    Policy
		want   error  // nil, ErrDeadline or ErrUnstable
		msg    string // in the error
		reqs   int    // exact request count when > 0
	}{
		{name: "healthy at once", script: []int{200},
			pol: Policy{Interval: ms, Deadline: time.Second, Threshold: 3}, reqs: 3},
		{name: "threshold below one means one", script: []int{200},
			pol: Policy{Interval: ms, Deadline: time.Second}, reqs: 1},
		{name: "comes up", script: []int{503, 503, 200},
			pol: Policy{Interval: ms, Deadline: time.Second, Threshold: 2}, reqs: 4},
		{name: "flap resets the count", script: []int{200, 200, 500, 200, 200, 200},
			pol: Policy{Interval: ms, Deadline: time.Second, Threshold: 3}, reqs: 6},
		{name: "flapping never reaches threshold", cycle: true, script: []int{200, 200, 500},
			pol:  Policy{Interval: ms, Deadline: 60 * ms, Threshold: 3},
			want: ErrDeadline, msg: "not healthy within 60ms: last: GET %s: status 500, want 200"},
		{name: "slow probes time out then pass", script: []int{0, 0, 200},
			pol: Policy{Interval: ms, Timeout: 100 * ms, Deadline: 5 * time.Second, Threshold: 1}, reqs: 3},
		{name: "timeouts until deadline", script: []int{0},
			pol:  Policy{Interval: ms, Timeout: 20 * ms, Deadline: 70 * ms, Threshold: 1},
			want: ErrDeadline, msg: "last: GET %s: timeout after 20ms"},
		{name: "hung probe cut at the deadline", script: []int{0},
			pol:  Policy{Interval: ms, Deadline: 40 * ms, Threshold: 1},
			want: ErrDeadline, msg: "not healthy within 40ms: last: probe still running at the deadline", reqs: 1},
		{name: "fails during min healthy time", script: []int{200, 200, 200, 500},
			pol:  Policy{Interval: ms, Deadline: time.Second, Threshold: 2, MinHealthyTime: time.Second},
			want: ErrUnstable, msg: "(min_healthy_time 1s): GET %s: status 500, want 200", reqs: 4},
		{name: "stays healthy through min healthy time", script: []int{200},
			pol: Policy{Interval: 5 * ms, Deadline: time.Second, Threshold: 2, MinHealthyTime: 40 * ms}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := newScripted(t, tc.cycle, tc.script...)
			url := app.srv.URL + "/health"
			c := HTTP(url, 200, "ok", tc.pol.Timeout)
			start := time.Now()
			err := WaitHealthy(context.Background(), c, tc.pol)
			elapsed := time.Since(start)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if msg := strings.ReplaceAll(tc.msg, "%s", url); !strings.Contains(err.Error(), msg) {
					t.Fatalf("err = %q, want it to contain %q", err, msg)
				}
			}
			if tc.reqs > 0 && app.requests() != tc.reqs {
				t.Fatalf("%d requests, want %d", app.requests(), tc.reqs)
			}
			if tc.want == ErrDeadline && (elapsed < tc.pol.Deadline || elapsed > tc.pol.Deadline+500*ms) {
				t.Fatalf("gave up after %s, deadline %s", elapsed, tc.pol.Deadline)
			}
			if tc.want == nil && tc.pol.MinHealthyTime > 0 {
				if elapsed < tc.pol.MinHealthyTime {
					t.Fatalf("returned after %s, before min healthy time %s", elapsed, tc.pol.MinHealthyTime)
				}
				if n := app.requests(); n < tc.pol.Threshold+1 {
					t.Fatalf("only %d requests: min healthy time not watched", n)
				}
			}
		})
	}
}

// A check run on another clock (an agent's) is handed the window's deadline
// and gives up a moment before it ends here. Giving up because the window
// closed is not a failure of the host; a check's own shorter timeout is.
func TestWaitHealthyRemoteClockEndsWindow(t *testing.T) {
	const early = 5 * time.Millisecond
	for _, tc := range []struct {
		name string
		pol  Policy
		want error
	}{
		{name: "window closes during min healthy time",
			pol: Policy{Interval: time.Millisecond, Deadline: time.Second, Threshold: 2, MinHealthyTime: 60 * time.Millisecond}},
		{name: "own timeout inside the window still fails",
			pol:  Policy{Interval: time.Millisecond, Timeout: 20 * time.Millisecond, Deadline: time.Second, Threshold: 2, MinHealthyTime: 200 * time.Millisecond},
			want: ErrUnstable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var probes atomic.Int64
			c := CheckerFunc(func(ctx context.Context) error {
				if probes.Add(1) <= 2 {
					return nil
				}
				dl, ok := ctx.Deadline()
				if !ok {
					t.Error("probe without a deadline")
					return errors.New("no deadline")
				}
				select {
				case <-time.After(time.Until(dl) - early):
				case <-ctx.Done():
				}
				return fmt.Errorf("remote: timeout: %w", context.DeadlineExceeded)
			})
			err := WaitHealthy(context.Background(), c, tc.pol)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestWaitHealthyDeadlineConnectionRefused(t *testing.T) {
	url := "http://" + closedAddr(t) + "/health"
	err := WaitHealthy(context.Background(), HTTP(url, 200, "", time.Second),
		Policy{Interval: time.Millisecond, Deadline: 30 * time.Millisecond, Threshold: 1})
	if !errors.Is(err, ErrDeadline) || !strings.HasPrefix(err.Error(), "not healthy within 30ms: last: GET "+url+": ") ||
		!strings.HasSuffix(err.Error(), "connection refused") {
		t.Fatalf("err = %v", err)
	}
}

func TestWaitHealthyContextCancel(t *testing.T) {
	app := newScripted(t, false, 500)
	ctx, cancel := context.WithCancel(context.Background())
	var probes atomic.Int64
	c := CheckerFunc(func(pctx context.Context) error {
		if probes.Add(1) == 3 {
			cancel()
		}
		return HTTP(app.srv.URL, 200, "", time.Second).Check(pctx)
	})
	err := WaitHealthy(ctx, c, Policy{Interval: time.Millisecond, Deadline: time.Minute, Threshold: 1})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrDeadline) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "status 500") {
		t.Fatalf("err = %v, want the last failure", err)
	}
	if n := probes.Load(); n != 3 {
		t.Fatalf("%d probes after cancel at the third", n)
	}

	// Cancelled during the stability watch, with a cause.
	ctx, cancelCause := context.WithCancelCause(context.Background())
	errDeposed := errors.New("leadership lost")
	probes.Store(0)
	c = CheckerFunc(func(context.Context) error {
		if probes.Add(1) == 4 {
			cancelCause(errDeposed)
		}
		return nil
	})
	err = WaitHealthy(ctx, c, Policy{Interval: time.Millisecond, Deadline: time.Minute, Threshold: 2, MinHealthyTime: time.Minute})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errDeposed) || errors.Is(err, ErrUnstable) {
		t.Fatalf("err = %v, want context.Canceled caused by errDeposed", err)
	}
}

func TestWaitHealthyFailedProbeAtWatchEndIsIgnored(t *testing.T) {
	// A probe still running when min_healthy_time ends does not count.
	var probes atomic.Int64
	c := CheckerFunc(func(ctx context.Context) error {
		if probes.Add(1) == 1 {
			return nil
		}
		<-ctx.Done()
		return ctx.Err()
	})
	err := WaitHealthy(context.Background(), c, Policy{Interval: time.Millisecond, Deadline: time.Second, Threshold: 1, MinHealthyTime: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
}
