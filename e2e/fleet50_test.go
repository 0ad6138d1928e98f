package e2e

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/lab"
	"github.com/drover-dev/drover/orchestrator"
)

// TestFleet50 is a fleet shaped like production: 50 hosts whose login shell
// is bash with an rc file costing lab.RCDelay, batch 10, behind an HAProxy
// pair with stock runtime-API settings, under load through both. No request
// fails, never more than one batch is out of rotation on either, and each
// host's shell starts once per deploy (the commands share one shell session).
func TestFleet50(t *testing.T) {
	s := newSessionWith(t, lab.Options{Hosts: 50, SlowRC: true, HAProxies: 2})
	plan := func(v string) string { return s.plan(v, false, "10") }
	if code, d := s.run("deploy", plan("v1")); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stdout.text())
	}
	s.expectAllOn("v1")

	before := sessionStarts(t, s.lab)
	var d *drover
	s.underLoad(10, func() {
		var code int
		if code, d = s.run("deploy", plan("v2")); code != 0 {
			t.Fatalf("deploy v2: exit %d\n%s", code, d.stdout.text())
		}
	})
	s.expectAllOn("v2")
	// Each host's sshd ran one login shell for the whole deploy: the
	// host audit logs one line per SSH session (the shell session, with
	// the commands it ran logged after it).
	after := sessionStarts(t, s.lab)
	for _, h := range s.lab.HostNames() {
		if n := after[h] - before[h]; n != 1 {
			t.Errorf("%s: %d SSH sessions during the deploy, want 1", h, n)
		}
	}
	var first, last time.Time
	for _, ev := range d.stdout.all() {
		if ev.Kind == orchestrator.EventStage && first.IsZero() {
			first = ev.Time
		}
		if ev.Kind == orchestrator.EventHostDone {
			last = ev.Time
		}
	}
	t.Logf("deploy v2: first stage at %s, last host done at %s", first.Format("15:04:05.000"), last.Format("15:04:05.000"))
}

// sessionStarts counts, per host, the SSH sessions its sshd started (each
// one a login shell), from the host audit: commands run inside drover's
// shell session and SFTP operations are logged too, but are not sessions.
func sessionStarts(t *testing.T, l *lab.Lab) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, h := range l.HostNames() {
		es, err := l.HostAudit(h)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if !strings.HasPrefix(e.Command, "in session: ") && !strings.HasPrefix(e.Command, "sftp ") {
				out[h]++
			}
		}
	}
	return out
}

// stockSocketShim stands between the benchmark's baselines (the bash loop
// and Ansible, which open a runtime-API connection per call and per host)
// and HAProxy's stock runtime socket (`stats maxconn 10`): it accepts any
// number of connections and retries the dial to HAProxy while the socket's
// backlog is full, as an operator of those tools would have to raise
// maxconn. It returns the shim's socket path. drover needs none.
func stockSocketShim(t *testing.T, target string) string {
	t.Helper()
	path := target + ".shim"
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var u net.Conn
				for i := 0; ; i++ {
					if u, err = net.Dial("unix", target); err == nil || i == 500 {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				if err != nil {
					return
				}
				defer u.Close()
				go func() { io.Copy(u, c); u.(*net.UnixConn).CloseWrite() }()
				io.Copy(c, u)
			}()
		}
	}()
	return path
}
