package haproxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The engine's Balancer seam, restated here because this package must not
// import package orchestrator.
var _ interface {
	Drain(ctx context.Context, server string) error
	Enable(ctx context.Context, server string) error
	Check(ctx context.Context, server string) error
} = (*Driver)(nil)

// realStat is `show stat web 4 -1` as printed by HAProxy 2.6 (abridged).
const realStat = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,\n" +
	"web,s1,0,0,3,0,,0,0,0,,0,,0,0,0,0,UP 1/3,1,1,0,1,1,3,0,,1,3,1,,0,,2,0,,0,L4OK,,0,\n" +
	"web,s2,2,0,0,0,,0,0,0,,0,,0,0,0,0,no check,1,1,0,,,3,,,1,3,2,,0,,2,0,,0,,,,\n" +
	"web,BACKEND,0,0,3,0,999,0,0,0,0,0,,0,0,0,0,UP,2,2,0,,0,2,0,,1,3,0,,0,,1,0,,0,,,,\n\n"

func TestParseStat(t *testing.T) {
	rows, err := parseStat(realStat)
	if err != nil {
		t.Fatal(err)
	}
	want := []statRow{
		{backend: "web", server: "s1", status: "UP 1/3", checkStatus: "L4OK", scur: 3},
		{backend: "web", server: "s2", status: "no check", qcur: 2},
	}
	if !slices.Equal(rows, want) {
		t.Fatalf("rows = %+v, want %+v", rows, want)
	}
}

func TestParseStatErrors(t *testing.T) {
	for _, tc := range []struct {
		reply string
		want  error
	}{
		{"No such proxy.\n\n", errNoBackend},
		{"Permission denied\n\n", ErrPermission},
		{"", ErrUnexpectedReply},
		{"# pxname,svname,scur\nweb,s1,1\n", ErrUnexpectedReply},                     // no status column
		{"# pxname,svname,status,scur,qcur\nweb,s1,UP,many,0\n", ErrUnexpectedReply}, // bad counter
	} {
		if _, err := parseStat(tc.reply); !errors.Is(err, tc.want) {
			t.Errorf("parseStat(%q) = %v, want %v", tc.reply, err, tc.want)
		}
	}
}

func TestReplyError(t *testing.T) {
	for _, tc := range []struct {
		reply string
		want  error
	}{
		{"\n", nil},
		{"", nil},
		{"Permission denied\n\n", ErrPermission},
		{unknownReply, ErrUnknownCommand},
		{"No such server.\n\n", errNoServer},
		{"No such backend.\n\n", errNoBackend},
		{"Can't find backend.\n\n", errNoBackend},
		{"Require 'backend/server'.\n\n", ErrUnexpectedReply},
	} {
		if err := replyError(tc.reply); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("replyError(%q) = %v, want %v", tc.reply, err, tc.want)
		}
	}
}

func TestSplitServer(t *testing.T) {
	for _, s := range []string{"web", "web/", "/s1", "web/s1/x", "web/s1;shutdown sessions server web/s2", "web/s1\nset server", "web /s1"} {
		if _, _, err := splitServer(s); !errors.Is(err, ErrBadServerName) {
			t.Errorf("splitServer(%q) = %v, want ErrBadServerName", s, err)
		}
	}
	b, s, err := splitServer("be-1.a_b/srv:9")
	if err != nil || b != "be-1.a_b" || s != "srv:9" {
		t.Fatalf("splitServer = %q %q %v", b, s, err)
	}
}

func TestNew(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Socket: "/run/a.sock", Address: "127.0.0.1:9999"},
		{Address: "127.0.0.1"},
		{Socket: "/run/a.sock", DrainTimeout: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	d, err := New(Config{Socket: "/run/a.sock"})
	if err != nil {
		t.Fatal(err)
	}
	if d.cfg.DrainTimeout != DefaultDrainTimeout || d.cfg.EnableTimeout != DefaultEnableTimeout || d.cfg.PollInterval != DefaultPollInterval {
		t.Fatalf("defaults not applied: %+v", d.cfg)
	}
}

func countPrefix(cmds []string, prefix string) int {
	n := 0
	for _, c := range cmds {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func TestDrainWaitsForSessions(t *testing.T) {
	f := newFake(t,
		&fakeServer{backend: "web", name: "s1", op: "UP", admin: AdminReady, scur: 2, qcur: 1},
		&fakeServer{backend: "web", name: "s2", op: "UP", admin: AdminReady, scur: 5})
	// Each poll finishes one session, then the queued request.
	f.before = func(f *fakeHAProxy, cmd string) {
		if s := f.server("web/s1"); strings.HasPrefix(cmd, "show stat") && s.admin == AdminDrain {
			switch {
			case s.scur > 0:
				s.scur--
			case s.qcur > 0:
				s.qcur--
			}
		}
	}
	d := f.driver(t, Config{PollInterval: time.Millisecond, DrainTimeout: 5 * time.Second})
	if err := d.Drain(context.Background(), "web/s1"); err != nil {
		t.Fatal(err)
	}
	s1, cmds := f.snapshot("web/s1")
	if s1.admin != AdminMaint || s1.scur != 0 || s1.qcur != 0 {
		t.Fatalf("s1 = %+v, want maint with no sessions", s1)
	}
	var sets []string
	for _, c := range cmds {
		if strings.HasPrefix(c, "set server") {
			sets = append(sets, c)
		}
	}
	if !slices.Equal(sets, []string{"set server web/s1 state drain", "set server web/s1 state maint"}) {
		t.Fatalf("commands = %q", cmds)
	}
	if n := countPrefix(cmds, "show stat web 4 -1"); n < 3 {
		t.Fatalf("polled %d times, want at least 3: %q", n, cmds)
	}
	if s2, _ := f.snapshot("web/s2"); s2.admin != AdminReady {
		t.Fatalf("s2 touched: %+v", s2)
	}
}

func TestDrainTimeout(t *testing.T) {
	newStuck := func(t *testing.T) *fakeHAProxy {
		return newFake(t, &fakeServer{backend: "web", name: "s1", op: "UP", admin: AdminReady, scur: 1})
	}
	t.Run("fail leaves drain", func(t *testing.T) {
		f := newStuck(t)
		d := f.driver(t, Config{PollInterval: time.Millisecond, DrainTimeout: 30 * time.Millisecond})
		err := d.Drain(context.Background(), "web/s1")
		if !errors.Is(err, ErrDrainTimeout) {
			t.Fatalf("err = %v, want ErrDrainTimeout", err)
		}
		if !strings.Contains(err.Error(), "drain web/s1: ") || !strings.Contains(err.Error(), "1 sessions") {
			t.Errorf("message lacks context: %v", err)
		}
		s1, cmds := f.snapshot("web/s1")
		if s1.admin != AdminDrain || countPrefix(cmds, "set server web/s1 state maint") != 0 {
			t.Fatalf("s1 = %+v, commands %q: want left in drain", s1, cmds)
		}
	})
	t.Run("force sets maint", func(t *testing.T) {
		f := newStuck(t)
		var forced []string
		d := f.driver(t, Config{PollInterval: time.Millisecond, DrainTimeout: 30 * time.Millisecond, Force: true,
			OnDrainForced: func(server string, sessions int) {
				forced = append(forced, server, strings.Repeat("x", sessions))
			}})
		if err := d.Drain(context.Background(), "web/s1"); err != nil {
			t.Fatalf("forced drain: %v", err)
		}
		if s1, _ := f.snapshot("web/s1"); s1.admin != AdminMaint {
			t.Fatalf("s1 = %+v, want maint", s1)
		}
		if !slices.Equal(forced, []string{"web/s1", "x"}) {
			t.Fatalf("OnDrainForced calls = %q", forced)
		}
	})
}

func TestUnknownServer(t *testing.T) {
	f := newFake(t, &fakeServer{backend: "web", name: "s1", op: "UP", admin: AdminReady})
	d := f.driver(t, Config{PollInterval: time.Millisecond, DrainTimeout: time.Second, EnableTimeout: time.Second})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func(string) error
	}{
		{"drain", func(s string) error { return d.Drain(ctx, s) }},
		{"enable", func(s string) error { return d.Enable(ctx, s) }},
		{"check", func(s string) error { return d.Check(ctx, s) }},
	} {
		for _, srv := range []string{"web/nope", "api/s1"} {
			err := tc.call(srv)
			if !errors.Is(err, ErrUnknownServer) {
				t.Errorf("%s %s = %v, want ErrUnknownServer", tc.name, srv, err)
				continue
			}
			b, s, _ := strings.Cut(srv, "/")
			if msg := err.Error(); !strings.HasPrefix(msg, tc.name+" "+srv+": ") ||
				!strings.Contains(msg, `"`+b+`"`) || !strings.Contains(msg, `"`+s+`"`) {
				t.Errorf("%s %s: message %q should name the call, backend and server", tc.name, srv, msg)
			}
		}
		if err := tc.call("web"); !errors.Is(err, ErrBadServerName) {
			t.Errorf("%s web = %v, want ErrBadServerName", tc.name, err)
		}
	}
	if s1, _ := f.snapshot("web/s1"); s1.admin != AdminReady {
		t.Fatalf("s1 changed: %+v", s1)
	}
}

func TestPermission(t *testing.T) {
	for _, level := range []string{"user", "operator"} {
		f := newFake(t, &fakeServer{backend: "web", name: "s1", op: "UP", admin: AdminReady})
		f.level = level
		d := f.driver(t, Config{})
		ctx := context.Background()
		if err := d.Check(ctx, "web/s1"); !errors.Is(err, ErrPermission) {
			t.Errorf("%s: check = %v, want ErrPermission", level, err)
		}
		if err := d.Drain(ctx, "web/s1"); !errors.Is(err, ErrPermission) {
			t.Errorf("%s: drain = %v, want ErrPermission", level, err)
		}
		if err := d.Enable(ctx, "web/s1"); !errors.Is(err, ErrPermission) {
			t.Errorf("%s: enable = %v, want ErrPermission", level, err)
		}
		// Reading is allowed at every level.
		if _, err := d.Servers(ctx); err != nil {
			t.Errorf("%s: servers = %v", level, err)
		}
	}
}

func TestCheck(t *testing.T) {
	f := newFake(t, &fakeServer{backend: "web", name: "s1", op: "DOWN", admin: AdminMaint})
	d := f.driver(t, Config{})
	if err := d.Check(context.Background(), "web/s1"); err != nil {
		t.Fatal(err)
	}
	s1, cmds := f.snapshot("web/s1")
	if s1.admin != AdminMaint {
		t.Fatalf("check changed the server: %+v", s1)
	}
	for _, c := range cmds {
		if strings.HasSuffix(c, "ready") || strings.HasSuffix(c, "drain") || strings.HasSuffix(c, "maint") {
			t.Fatalf("check sent a state change: %q", cmds)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	f := newFake(t, &fakeServer{backend: "web", name: "s1", op: "UP", admin: AdminReady})
	d := f.driver(t, Config{})
	reply, err := d.command(context.Background(), "frobnicate")
	if err != nil {
		t.Fatal(err)
	}
	if err := replyError(reply); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("err = %v, want ErrUnknownCommand", err)
	}
}

func TestEnable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []string // op status after each poll
	}{
		{"comes up", []string{"DOWN", "DOWN 1/2", "UP"}},
		{"unconfirmed after maint", []string{"UP 1/3", "UP 1/3", "UP"}},
		{"no check", []string{"no check"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s1 := &fakeServer{backend: "web", name: "s1", op: tc.steps[0], admin: AdminMaint}
			f := newFake(t, s1)
			polls := 0
			f.before = func(f *fakeHAProxy, cmd string) {
				if strings.HasPrefix(cmd, "show stat") && s1.admin == AdminReady {
					s1.op = tc.steps[min(polls, len(tc.steps)-1)]
					polls++
				}
			}
			d := f.driver(t, Config{PollInterval: time.Millisecond, EnableTimeout: 5 * time.Second})
			if err := d.Enable(context.Background(), "web/s1"); err != nil {
				t.Fatal(err)
			}
			got, cmds := f.snapshot("web/s1")
			if got.admin != AdminReady || !isConfirmedUp(got.status()) {
				t.Fatalf("s1 = %+v", got)
			}
			if cmds[0] != "set server web/s1 state ready" {
				t.Fatalf("commands = %q", cmds)
			}
			// The shared poller may read once more while Enable returns.
			f.mu.Lock()
			defer f.mu.Unlock()
			if polls < len(tc.steps) {
				t.Fatalf("returned after %d polls, want at least %d", polls, len(tc.steps))
			}
		})
	}
}

func TestStatusUp(t *testing.T) {
	for _, tc := range []struct {
		status        string
		up, confirmed bool
	}{
		{"UP", true, true},
		{"UP 1/3", true, false},
		{"UP -1/3", true, false},
		{"UP (agent)", true, true},
		{"no check", true, true},
		{"DOWN", false, false},
		{"DOWN 1/2", false, false},
		{"DRAIN", false, false},
		{"DRAIN 1/3", false, false},
		{"NOLB", false, false},
		{"MAINT", false, false},
		{"MAINT (via web/s2)", false, false},
		{"", false, false},
	} {
		if got := isUp(tc.status); got != tc.up {
			t.Errorf("isUp(%q) = %v", tc.status, got)
		}
		if got := isConfirmedUp(tc.status); got != tc.confirmed {
			t.Errorf("isConfirmedUp(%q) = %v", tc.status, got)
		}
	}
}

func TestEnableFirstCheckFails(t *testing.T) {
	// Leaving MAINT, HAProxy shows "UP 1/3" before its first check; the
	// app is down, so the check takes it DOWN. Enable must not return.
	s1 := &fakeServer{backend: "web", name: "s1", op: "UP 1/3", admin: AdminMaint}
	f := newFake(t, s1)
	polls := 0
	f.before = func(f *fakeHAProxy, cmd string) {
		if strings.HasPrefix(cmd, "show stat") {
			if polls++; polls > 2 {
				s1.op = "DOWN"
			}
		}
	}
	d := f.driver(t, Config{PollInterval: time.Millisecond, EnableTimeout: 30 * time.Millisecond})
	err := d.Enable(context.Background(), "web/s1")
	if !errors.Is(err, ErrEnableTimeout) || !(strings.Contains(err.Error(), `status "DOWN"`) || strings.Contains(err.Error(), `status "UP 1/3"`)) {
		t.Fatalf("err = %v, want ErrEnableTimeout with the last status", err)
	}
}

func TestEnableTimeout(t *testing.T) {
	f := newFake(t, &fakeServer{backend: "web", name: "s1", op: "DOWN 1/2", admin: AdminMaint})
	d := f.driver(t, Config{PollInterval: time.Millisecond, EnableTimeout: 30 * time.Millisecond})
	err := d.Enable(context.Background(), "web/s1")
	if !errors.Is(err, ErrEnableTimeout) {
		t.Fatalf("err = %v, want ErrEnableTimeout", err)
	}
	if !strings.Contains(err.Error(), `status "DOWN 1/2"`) || !strings.HasPrefix(err.Error(), "enable web/s1: ") {
		t.Fatalf("message %q should give the last status", err)
	}
}

func TestServers(t *testing.T) {
	f := newFake(t,
		&fakeServer{backend: "web", name: "s1", op: "UP", admin: AdminReady, scur: 3, qcur: 1},
		&fakeServer{backend: "web", name: "s2", op: "UP", admin: AdminDrain, scur: 1},
		&fakeServer{backend: "web", name: "s3", op: "DOWN", admin: AdminMaint},
		&fakeServer{backend: "api", name: "a1", op: "no check", admin: AdminReady},
		&fakeServer{backend: "api", name: "a2", op: "DOWN", admin: AdminReady},
	)
	d := f.driver(t, Config{})
	got, err := d.Servers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Server{
		{Backend: "web", Name: "s1", Status: "UP", Admin: AdminReady, Sessions: 3, Queued: 1},
		{Backend: "web", Name: "s2", Status: "DRAIN", Admin: AdminDrain, Sessions: 1},
		{Backend: "web", Name: "s3", Status: "MAINT", Admin: AdminMaint},
		{Backend: "api", Name: "a1", Status: "no check", Admin: AdminReady},
		{Backend: "api", Name: "a2", Status: "DOWN", Admin: AdminReady},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("servers =\n%+v\nwant\n%+v", got, want)
	}
	var in []string
	for _, s := range got {
		if s.InRotation() {
			in = append(in, s.ID())
		}
	}
	if !slices.Equal(in, []string{"web/s1", "api/a1"}) {
		t.Fatalf("in rotation: %q", in)
	}
}

func TestParseServersState(t *testing.T) {
	// As printed by HAProxy 2.6, with config `disabled` (4) and forced drain (8).
	reply := "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight\n" +
		"3 web 1 s1 127.0.0.1 2 0 1 1\n3 web 2 s2 127.0.0.1 0 4 1 1\n3 web 3 s3 127.0.0.1 2 8 1 1\n3 web 4 s4 127.0.0.1 0 9 1 1\n\n"
	got, err := parseServersState(reply)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]AdminState{"web/s1": AdminReady, "web/s2": AdminMaint, "web/s3": AdminDrain, "web/s4": AdminMaint}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, err := parseServersState("Can't find backend.\n\n"); !errors.Is(err, errNoBackend) {
		t.Errorf("err = %v", err)
	}
}

func TestTCPAddress(t *testing.T) {
	f := newFakeTCP(t, &fakeServer{backend: "web", name: "s1", op: "UP", admin: AdminReady})
	d := f.driver(t, Config{PollInterval: time.Millisecond})
	if err := d.Drain(context.Background(), "web/s1"); err != nil {
		t.Fatal(err)
	}
	if s1, _ := f.snapshot("web/s1"); s1.admin != AdminMaint {
		t.Fatalf("s1 = %+v", s1)
	}
}

func TestContextEndsHungCommand(t *testing.T) {
	f := newFake(t, &fakeServer{backend: "web", name: "s1", op: "UP", admin: AdminReady})
	f.hang = true
	d := f.driver(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := d.Drain(ctx, "web/s1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %s", el)
	}
}

func TestContextCancelDuringDrain(t *testing.T) {
	f := newFake(t, &fakeServer{backend: "web", name: "s1", op: "UP", admin: AdminReady, scur: 1})
	d := f.driver(t, Config{PollInterval: time.Millisecond, DrainTimeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	f.before = func(f *fakeHAProxy, cmd string) {
		if strings.HasPrefix(cmd, "show stat") {
			cancel()
		}
	}
	err := d.Drain(ctx, "web/s1")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if s1, _ := f.snapshot("web/s1"); s1.admin != AdminDrain {
		t.Fatalf("s1 = %+v, want left in drain", s1)
	}
}

func TestUnreachableSocket(t *testing.T) {
	d, err := New(Config{Socket: t.TempDir() + "/missing.sock", RetryTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var ce *connError
	if err := d.Check(context.Background(), "web/s1"); !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "check web/s1: ") {
		t.Fatalf("err = %v, want a connection error", err)
	}
}

// TestCommandRetriesConnectionErrors: a runtime API that refuses
// connections for a while (HAProxy's socket full with EAGAIN, or gone while
// it reloads) delays the command instead of failing it.
func TestCommandRetriesConnectionErrors(t *testing.T) {
	f := newFake(t, &fakeServer{backend: "web", name: "s1", op: "UP", admin: AdminReady})
	d := f.driver(t, Config{PollInterval: time.Millisecond})
	// Take the socket away; bring it back after the driver failed a few times.
	f.ln.Close()
	var failures atomic.Int64
	d.dialer.Control = func(network, address string, c syscall.RawConn) error {
		if failures.Add(1) == 4 {
			f.relisten()
		}
		return nil
	}
	if err := d.Drain(context.Background(), "web/s1"); err != nil {
		t.Fatalf("drain across a socket that came back: %v", err)
	}
	if s1, _ := f.snapshot("web/s1"); s1.admin != AdminMaint {
		t.Fatalf("s1 = %+v, want maint", s1)
	}
	if failures.Load() < 4 {
		t.Fatalf("%d dials, want at least 4", failures.Load())
	}
}

// TestFleetSharesConnectionsAndReads: a batch of 40 hosts drained and
// enabled at once holds at most MaxConns connections to the runtime API
// (HAProxy's stats socket takes 10 by default), and their waits share
// `show stat` reads instead of polling once per host.
func TestFleetSharesConnectionsAndReads(t *testing.T) {
	const hosts = 40
	var servers []*fakeServer
	for i := range hosts {
		servers = append(servers, &fakeServer{backend: "web", name: fmt.Sprintf("s%d", i), op: "UP", admin: AdminReady, scur: 2})
	}
	f := newFake(t, servers...)
	// Each read finishes one session of every draining server.
	f.before = func(f *fakeHAProxy, cmd string) {
		if strings.HasPrefix(cmd, "show stat") {
			for _, s := range f.servers {
				if s.admin == AdminDrain && s.scur > 0 {
					s.scur--
				}
			}
		}
	}
	d := f.driver(t, Config{PollInterval: time.Millisecond, DrainTimeout: 10 * time.Second})
	ctx := context.Background()
	run := func(what string, call func(string) error) {
		t.Helper()
		errs := make(chan error, hosts)
		for _, s := range servers {
			go func() { errs <- call(s.backend + "/" + s.name) }()
		}
		for range hosts {
			if err := <-errs; err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	run("check", func(s string) error { return d.Check(ctx, s) })
	run("drain", func(s string) error { return d.Drain(ctx, s) })
	run("enable", func(s string) error { return d.Enable(ctx, s) })

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.maxOpen > DefaultMaxConns {
		t.Errorf("%d connections open at once, want <= %d", f.maxOpen, DefaultMaxConns)
	}
	// Every drain needs 3 reads of its own (2 sessions to finish, then 0);
	// polled per host that is 3*40 reads at least.
	reads := countPrefix(f.commands, "show stat")
	if reads >= hosts {
		t.Errorf("%d show stat reads for %d hosts' check, drain and enable, want them shared", reads, hosts)
	}
	if n := countPrefix(f.commands, "set server"); n != 1+2*hosts+hosts {
		t.Errorf("%d set server commands, want one admin probe, drain+maint and ready per host: %d", n, 1+3*hosts)
	}
	for _, s := range servers {
		if s.admin != AdminReady {
			t.Errorf("%s/%s = %+v", s.backend, s.name, s)
		}
	}
	t.Logf("%d hosts: %d commands, %d show stat reads, at most %d connections", hosts, len(f.commands), reads, f.maxOpen)
}
