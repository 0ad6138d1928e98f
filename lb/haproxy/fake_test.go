package haproxy

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeServer is one server of the fake HAProxy.
type fakeServer struct {
	backend, name string
	op            string // status when the admin state is ready: "UP", "UP 1/3", "DOWN", "no check", ...
	admin         AdminState
	scur, qcur    int
}

// fakeHAProxy speaks enough of the runtime API, one command per connection
// like HAProxy in non-interactive mode, for the driver's unit tests.
type fakeHAProxy struct {
	t    *testing.T
	path string // unix socket path (empty for TCP)
	ln   net.Listener

	mu       sync.Mutex
	level    string // "admin", "operator" or "user"
	servers  []*fakeServer
	commands []string
	// before, if set, runs under mu before each command is answered, so a
	// test can make state evolve with the polls.
	before func(f *fakeHAProxy, cmd string)
	// hang makes the fake accept connections and never answer.
	hang bool
	// open and maxOpen count connections being answered, now and at most.
	open, maxOpen int
}

func newFake(t *testing.T, servers ...*fakeServer) *fakeHAProxy {
	t.Helper()
	// A short path: unix socket paths are limited to ~108 bytes.
	dir, err := os.MkdirTemp("", "hafake")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeHAProxy{t: t, path: filepath.Join(dir, "admin.sock"), level: "admin", servers: servers}
	if f.ln, err = net.Listen("unix", f.path); err != nil {
		t.Fatal(err)
	}
	f.serve()
	return f
}

func newFakeTCP(t *testing.T, servers ...*fakeServer) *fakeHAProxy {
	t.Helper()
	f := &fakeHAProxy{t: t, level: "admin", servers: servers}
	var err error
	if f.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	f.serve()
	return f
}

func (f *fakeHAProxy) serve() {
	f.mu.Lock()
	ln := f.ln
	f.mu.Unlock()
	var wg sync.WaitGroup
	done := make(chan struct{})
	f.t.Cleanup(func() {
		close(done)
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.open++
			f.maxOpen = max(f.maxOpen, f.open)
			f.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					f.mu.Lock()
					f.open--
					f.mu.Unlock()
					c.Close()
				}()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				f.mu.Lock()
				hang := f.hang
				f.mu.Unlock()
				if hang {
					<-done
					return
				}
				c.Write([]byte(f.answer(strings.TrimSpace(line))))
			}()
		}
	}()
}

// relisten serves again on the unix socket after f.ln was closed.
func (f *fakeHAProxy) relisten() {
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		f.t.Error(err)
		return
	}
	f.mu.Lock()
	f.ln = ln
	f.mu.Unlock()
	f.serve()
}

func (f *fakeHAProxy) driver(t *testing.T, cfg Config) *Driver {
	t.Helper()
	if f.path != "" {
		cfg.Socket = f.path
	} else {
		cfg.Address = f.ln.Addr().String()
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (f *fakeHAProxy) server(id string) *fakeServer {
	for _, s := range f.servers {
		if s.backend+"/"+s.name == id {
			return s
		}
	}
	return nil
}

// snapshot returns a copy of a server's state and the commands seen.
func (f *fakeHAProxy) snapshot(id string) (fakeServer, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.server(id)
	if s == nil {
		f.t.Fatalf("fake has no server %s", id)
	}
	return *s, append([]string(nil), f.commands...)
}

func (s *fakeServer) status() string {
	switch s.admin {
	case AdminMaint:
		return "MAINT"
	case AdminDrain:
		if strings.HasPrefix(s.op, "UP") || s.op == "no check" {
			return "DRAIN"
		}
	}
	return s.op
}

const (
	deniedReply  = "Permission denied\n\n"
	unknownReply = "Unknown command, but maybe one of the following ones is a better match:\n  help [<command>] : list matching or all commands\n\n"
)

func (f *fakeHAProxy) answer(cmd string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commands = append(f.commands, cmd)
	if f.before != nil {
		f.before(f, cmd)
	}
	args := strings.Fields(cmd)
	switch {
	case len(args) >= 3 && args[0] == "set" && args[1] == "server":
		if f.level != "admin" {
			return deniedReply
		}
		be, sv, ok := strings.Cut(args[2], "/")
		if !ok {
			return "Require 'backend/server'.\n\n"
		}
		if !f.hasBackend(be) {
			return "No such backend.\n\n"
		}
		s := f.server(be + "/" + sv)
		if s == nil {
			return "No such server.\n\n"
		}
		if len(args) < 4 || args[3] != "state" {
			return "usage: set server <backend>/<server> addr | agent | state | weight\n\n"
		}
		if len(args) < 5 {
			return "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n"
		}
		switch args[4] {
		case "ready", "drain", "maint":
			s.admin = AdminState(args[4])
			return "\n"
		}
		return "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n"

	case len(args) >= 2 && args[0] == "show" && args[1] == "stat":
		backend := "-1"
		if len(args) >= 3 {
			backend = args[2]
		}
		if backend != "-1" && !f.hasBackend(backend) {
			return "No such proxy.\n\n"
		}
		// Columns deliberately in another order than HAProxy's, and an
		// extra one: the driver must find them by name.
		var b strings.Builder
		b.WriteString("# pxname,svname,weight,status,check_status,qcur,scur,newcol,\n")
		for _, s := range f.servers {
			if backend != "-1" && s.backend != backend {
				continue
			}
			fmt.Fprintf(&b, "%s,%s,1,%s,L4OK,%d,%d,x,\n", s.backend, s.name, s.status(), s.qcur, s.scur)
		}
		if backend == "-1" && len(args) < 4 {
			b.WriteString("fe,FRONTEND,,OPEN,,,0,,\n")
		}
		b.WriteString("\n")
		return b.String()

	case len(args) >= 3 && args[0] == "show" && args[1] == "servers" && args[2] == "state":
		if len(args) >= 4 && !f.hasBackend(args[3]) {
			return "Can't find backend.\n\n"
		}
		var b strings.Builder
		b.WriteString("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight\n")
		for i, s := range f.servers {
			if len(args) >= 4 && s.backend != args[3] {
				continue
			}
			bits := 0
			switch s.admin {
			case AdminMaint:
				bits = admFMaint
			case AdminDrain:
				bits = admFDrain
			}
			fmt.Fprintf(&b, "3 %s %d %s 127.0.0.1 2 %d 1\n", s.backend, i+1, s.name, bits)
		}
		b.WriteString("\n")
		return b.String()
	}
	return unknownReply
}

func (f *fakeHAProxy) hasBackend(name string) bool {
	for _, s := range f.servers {
		if s.backend == name {
			return true
		}
	}
	return false
}
