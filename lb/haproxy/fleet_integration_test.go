package haproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// stockHAProxy is a real HAProxy whose stats socket has HAProxy's stock
// limits (no `stats maxconn`: 10 connections at once), fronting `servers`
// servers web/s0..s<n-1>, all on one app.
type stockHAProxy struct {
	socket string
	stop   func() // kills the process; idempotent
}

func startStockHAProxy(t testing.TB, servers int, appPort string) *stockHAProxy {
	t.Helper()
	bin := haproxyBinary(t)
	dir, err := os.MkdirTemp("", "hstock") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var b strings.Builder
	fmt.Fprintf(&b, `global
    stats socket %s/admin.sock mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s

frontend fe
    bind 127.0.0.1:%s
    default_backend web

backend web
`, dir, freePort(t))
	for i := range servers {
		fmt.Fprintf(&b, "    server s%d 127.0.0.1:%s check inter 100ms\n", i, appPort)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", cfg, "-db")
	var out strings.Builder
	var outMu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) { outMu.Lock(); defer outMu.Unlock(); return out.Write(p) })
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	h := &stockHAProxy{socket: filepath.Join(dir, "admin.sock")}
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
	}
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			outMu.Lock()
			t.Logf("haproxy output:\n%s", out.String())
			outMu.Unlock()
		}
	})
	d, err := New(Config{Socket: h.socket})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		all, err := d.Servers(ctx)
		up := 0
		for _, s := range all {
			if s.InRotation() {
				up++
			}
		}
		if err == nil && up == servers {
			return h
		}
		select {
		case <-exited:
			t.Fatalf("haproxy exited:\n%s", out.String())
		case <-ctx.Done():
			t.Fatalf("haproxy not ready: %d of %d servers up, %v", up, servers, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// hog holds n idle connections to the stats socket, as monitoring tools
// and operators' shells do, leaving 10-n to the driver.
func hog(t *testing.T, socket string, n int) {
	t.Helper()
	for range n {
		c, err := net.Dial("unix", socket)
		if err != nil {
			t.Fatalf("hog connection: %v", err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

// TestRealHAProxyStockSocketFleet: 40 hosts checked, drained and enabled at
// once through two HAProxy instances whose stats sockets have the stock
// limit of 10 connections, 8 of them already held by other clients (so the driver's third connection meets EAGAIN too). Opening
// one connection per host (what the driver did before) is refused with
// EAGAIN; the driver's bounded, shared, retrying connections get through.
func TestRealHAProxyStockSocketFleet(t *testing.T) {
	const hosts = 40
	app := newApp(t, "app", nil)
	a := startStockHAProxy(t, hosts, app.port())
	b := startStockHAProxy(t, hosts, app.port())
	hog(t, a.socket, 8)
	hog(t, b.socket, 8)
	g, err := NewGroup(Config{Socket: a.socket, PollInterval: 5 * time.Millisecond}, Config{Socket: b.socket, PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	all := func(what string, call func(server string) error) {
		t.Helper()
		errs := make(chan error, hosts)
		for i := range hosts {
			go func() { errs <- call(fmt.Sprintf("web/s%d", i)) }()
		}
		for range hosts {
			if err := <-errs; err != nil {
				t.Errorf("%s: %v", what, err)
			}
		}
	}
	all("check", func(s string) error { return g.Check(ctx, s) })
	all("drain", func(s string) error { return g.Drain(ctx, s) })
	for i, d := range g.Drivers() {
		views, err := d.Servers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range views {
			if s.Admin != AdminMaint || s.Sessions != 0 {
				t.Errorf("instance %d: drained %s = %+v", i+1, s.ID(), s)
			}
		}
	}
	all("enable", func(s string) error { return g.Enable(ctx, s) })
	views, err := g.View(ctx, "web/s7")
	if err != nil {
		t.Fatal(err)
	}
	if len(views) != 2 || views[0].Instance != a.socket || views[1].Instance != b.socket {
		t.Fatalf("views = %+v", views)
	}
	for _, v := range views {
		if !v.InRotation() {
			t.Errorf("%s: enabled web/s7 = %+v", v.Instance, v.Server)
		}
	}
	backend, err := g.Backend(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(backend) != 2*hosts || backend[0].Instance != a.socket || backend[hosts].Instance != b.socket {
		t.Fatalf("Backend(web) = %d entries, want %d, instance a's then b's: %+v", len(backend), 2*hosts, backend)
	}
	for _, v := range backend {
		if !v.InRotation() {
			t.Errorf("%s: enabled %s = %+v", v.Instance, v.ID(), v.Server)
		}
	}

	t.Run("an instance that is down fails check and drain, named", func(t *testing.T) {
		b.stop()
		short, err := NewGroup(Config{Socket: a.socket}, Config{Socket: b.socket, RetryTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		err = short.Check(ctx, "web/s1")
		var ce *connError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "haproxy "+b.socket+": check web/s1: ") {
			t.Fatalf("check with instance 2 down = %v, want a connection error naming it", err)
		}
		if strings.Contains(err.Error(), a.socket+":") {
			t.Errorf("the error blames the instance that is up: %v", err)
		}
		// Mid-deploy: a drain fails (the host fails), naming the instance;
		// the instance that is up has drained the server all the same.
		err = short.Drain(ctx, "web/s1")
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "haproxy "+b.socket+": drain web/s1: ") {
			t.Fatalf("drain with instance 2 down = %v, want a connection error naming it", err)
		}
		if s, err := g.Drivers()[0].View(ctx, "web/s1"); err != nil || s.Admin != AdminMaint {
			t.Errorf("web/s1 on the instance that is up = %+v, %v; want maint", s, err)
		}
	})
}

// BenchmarkSharedRead200: one read of the shared poller (`show stat` of a
// 200-server backend, parsed) against a real HAProxy: what one poll
// interval costs, however many hosts wait on it.
func BenchmarkSharedRead200(b *testing.B) {
	app := newApp(b, "app", nil)
	h := startStockHAProxy(b, 200, app.port())
	d, err := New(Config{Socket: h.socket})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if s := d.poller.read(nil, "web"); s.err != nil || len(s.rows) != 200 {
			b.Fatalf("read: %d rows, %v", len(s.rows), s.err)
		}
	}
}
