package installer

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/drover-dev/drover/lab"
	"github.com/drover-dev/drover/plans"
	"github.com/drover-dev/drover/transport/ssh"
)

// TestLabInstall installs the dummy agent on a lab host over real SSH
// (verified host key, SFTP uploads, a supervisor that must outlive the SSH
// session) and uninstalls it. The host has no systemd.
func TestLabInstall(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: the lab test must run, and it needs root (network namespaces)")
		}
		t.Skip("agent install lab test: needs root for the lab's network namespaces (run as root, e.g. sudo go test ./transport/agent/installer/)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := lab.Up(ctx, lab.Options{Hosts: 1, Log: testLog{t}})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	t.Logf("lab up in %v", time.Since(start))
	h := l.Hosts[0]

	// The hosts are reachable from the lab's control namespace only: a
	// forwarder on 127.0.0.1 here dials them from there, and known_hosts
	// gets the host's key under the forwarder's address.
	addr := forwardFromNS(t, l.CtlNS, h.SSHAddress)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	b, err := os.ReadFile(l.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == h.Address {
			lines = append(lines, "[127.0.0.1]:"+addr[strings.LastIndexByte(addr, ':')+1:]+" "+f[1]+" "+f[2])
		}
	}
	if len(lines) == 0 {
		t.Fatalf("no key for %s in %s", h.Address, l.KnownHosts)
	}
	if err := os.WriteFile(kh, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	opts := Options{
		// /srv is private to each lab host (the rest of the file system is
		// this machine's): <lab>/hosts/web1/srv here.
		Dir: "/srv/drover-agent",
		SSH: ssh.Config{User: l.User, IdentityFile: l.IdentityFile, KnownHosts: kh},
		Out: testLog{t},
	}
	target := Target{Name: h.Name, Host: plans.Host{Name: h.Name, Address: addr, Transport: plans.TransportSSH}}
	exercise(t, opts, target, func(p string) string {
		return filepath.Join(h.SrvDir, strings.TrimPrefix(p, "/srv/"))
	})

	// The commands went through the host's sshd (its audit log).
	audit, err := l.HostAudit(h.Name)
	if err != nil {
		t.Fatal(err)
	}
	probes := 0
	for _, e := range audit {
		if strings.Contains(e.String(), markerPrefix+stepProbe) {
			probes++
		}
	}
	if probes != 3 {
		t.Errorf("the host's audit log shows %d probes, want 3 (one per Install)", probes)
	}
}

// forwardFromNS listens on 127.0.0.1 and forwards each connection to
// target, dialled from network namespace ns: one goroutine, locked to an OS
// thread that joined ns, makes the outgoing sockets (a socket stays in the
// namespace it was made in, whichever thread uses it later).
func forwardFromNS(t *testing.T, ns, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nsFile, err := os.Open("/run/netns/" + ns)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	type dialed struct {
		c   net.Conn
		err error
	}
	reqs := make(chan chan dialed)
	done := make(chan struct{})
	ready := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, now in ns, ends with this goroutine.
		runtime.LockOSThread()
		err := unix.Setns(int(nsFile.Fd()), unix.CLONE_NEWNET)
		nsFile.Close()
		ready <- err
		if err != nil {
			return
		}
		for {
			select {
			case r := <-reqs:
				c, err := net.DialTimeout("tcp", target, 5*time.Second)
				r <- dialed{c, err}
			case <-done:
				return
			}
		}
	}()
	if err := <-ready; err != nil {
		ln.Close()
		t.Fatalf("setns %s: %v", ns, err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r := make(chan dialed, 1)
			select {
			case reqs <- r:
			case <-done:
				c.Close()
				return
			}
			go func() {
				d := <-r
				if d.err != nil {
					c.Close()
					return
				}
				go func() { _, _ = io.Copy(d.c, c); d.c.Close() }()
				_, _ = io.Copy(c, d.c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		close(done)
		ln.Close()
	})
	return ln.Addr().String()
}
