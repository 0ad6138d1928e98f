//go:build unix

package ssh

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// testServer is a small in-process SSH server: public key auth, exec through
// sh -c (in its own process group, so "signal" kills the whole command),
// and the sftp subsystem served by pkg/sftp.
type testServer struct {
	t    *testing.T
	ln   net.Listener
	addr string
	cfg  *ssh.ServerConfig

	handshakes      atomic.Int64
	ignoreKeepalive atomic.Bool
	ignoreSignals   atomic.Bool  // as OpenSSH does for root logins
	execs           atomic.Int64 // exec requests: remote shell starts
	emptyPath       atomic.Bool  // commands run with an empty PATH (no setsid)

	mu         sync.Mutex
	conns      map[net.Conn]bool
	authorized []ssh.PublicKey
	wg         sync.WaitGroup
}

func newTestServer(t *testing.T, authorized []ssh.PublicKey, hostKeys ...ssh.Signer) *testServer {
	t.Helper()
	s := &testServer{t: t, conns: map[net.Conn]bool{}, authorized: authorized}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, k := range s.authorized {
				if string(k.Marshal()) == string(key.Marshal()) {
					return &ssh.Permissions{}, nil
				}
			}
			return nil, errors.New("unknown key")
		},
	}
	for _, k := range hostKeys {
		cfg.AddHostKey(k)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln, s.addr, s.cfg = ln, ln.Addr().String(), cfg
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.close)
	return s
}

func (s *testServer) serve() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[nc] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(nc)
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
		}()
	}
}

// authorize replaces the accepted client keys.
func (s *testServer) authorize(keys ...ssh.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authorized = keys
}

// dropAll closes every connection abruptly, as a restarted host or a NAT
// timeout would.
func (s *testServer) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for nc := range s.conns {
		_ = nc.Close()
	}
}

func (s *testServer) close() {
	_ = s.ln.Close()
	s.dropAll()
	s.wg.Wait()
}

func (s *testServer) handle(nc net.Conn) {
	defer nc.Close()
	sc, chans, reqs, err := ssh.NewServerConn(nc, s.cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	s.handshakes.Add(1)
	go func() {
		for r := range reqs {
			if r.Type == "keepalive@openssh.com" && s.ignoreKeepalive.Load() {
				continue // never answered: the client must give up on us
			}
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}()
	var wg sync.WaitGroup
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveSession(ch, creqs)
		}()
	}
	wg.Wait()
}

var signalsByName = map[string]syscall.Signal{
	"KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP,
}

func (s *testServer) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	var (
		mu   sync.Mutex
		proc *os.Process
		done = make(chan struct{})
	)
	defer func() {
		mu.Lock()
		if proc != nil {
			_ = syscall.Kill(-proc.Pid, syscall.SIGKILL)
		}
		mu.Unlock()
		_ = ch.Close()
	}()
	for {
		var r *ssh.Request
		select {
		case r = <-reqs:
		case <-done:
			return
		}
		if r == nil {
			return
		}
		switch r.Type {
		case "exec":
			var p struct{ Command string }
			if ssh.Unmarshal(r.Payload, &p) != nil {
				_ = r.Reply(false, nil)
				continue
			}
			// Like sshd: stdin is a pipe fed from the channel until the
			// client's EOF; the command leads its own process group.
			stdin, feed, err := os.Pipe()
			if err != nil {
				_ = r.Reply(false, nil)
				continue
			}
			s.execs.Add(1)
			cmd := exec.Command("sh", "-c", p.Command)
			if s.emptyPath.Load() {
				cmd.Env = []string{"PATH=" + s.t.TempDir()}
			}
			cmd.Stdin = stdin
			cmd.Stdout = ch
			cmd.Stderr = ch.Stderr()
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			err = cmd.Start()
			_ = stdin.Close()
			if err != nil {
				_ = feed.Close()
				_ = r.Reply(false, nil)
				continue
			}
			go func() {
				_, _ = io.Copy(feed, ch)
				_ = feed.Close()
			}()
			mu.Lock()
			proc = cmd.Process
			mu.Unlock()
			_ = r.Reply(true, nil)
			go func() {
				defer close(done)
				err := cmd.Wait()
				mu.Lock()
				proc = nil
				mu.Unlock()
				sendExit(ch, err)
			}()
		case "subsystem":
			var p struct{ Name string }
			if ssh.Unmarshal(r.Payload, &p) != nil || p.Name != "sftp" {
				_ = r.Reply(false, nil)
				continue
			}
			_ = r.Reply(true, nil)
			go func() {
				defer close(done)
				srv, err := sftp.NewServer(ch)
				if err != nil {
					return
				}
				_ = srv.Serve()
			}()
		case "signal":
			var p struct{ Signal string }
			if ssh.Unmarshal(r.Payload, &p) == nil && !s.ignoreSignals.Load() {
				mu.Lock()
				if sig, ok := signalsByName[p.Signal]; ok && proc != nil {
					_ = syscall.Kill(-proc.Pid, sig)
				}
				mu.Unlock()
			}
			if r.WantReply {
				_ = r.Reply(true, nil)
			}
		default:
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}
}

func sendExit(ch ssh.Channel, err error) {
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			name := "KILL"
			for n, s := range signalsByName {
				if s == ws.Signal() {
					name = n
				}
			}
			_, _ = ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}{Signal: name}))
			return
		}
		code = ee.ExitCode()
	} else if err != nil {
		code = 255
	}
	_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
}

// Keys and files.

func newEd25519(t testing.TB) (ssh.Signer, crypto.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, priv
}

func newECDSAPrivate(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func newECDSA(t testing.TB) ssh.Signer {
	t.Helper()
	s, err := ssh.NewSignerFromKey(newECDSAPrivate(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writePrivateKey writes priv in OpenSSH format (encrypted when passphrase
// is not empty) with mode 0600.
func writePrivateKey(t testing.TB, path string, priv crypto.PrivateKey, passphrase string) {
	t.Helper()
	var block *pem.Block
	var err error
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "drover-test")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "drover-test", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeKnownHosts(t testing.TB, path string, lines ...string) {
	t.Helper()
	var b []byte
	for _, l := range lines {
		b = append(b, l+"\n"...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// fixture: a server with an ed25519 host key, a client key it accepts, an
// identity file and a known_hosts that records the server.
type fixture struct {
	srv        *testServer
	dir        string
	hostKey    ssh.Signer
	clientKey  ssh.Signer
	identity   string
	knownHosts string
}

func newFixture(t *testing.T, hostKeys ...ssh.Signer) *fixture {
	t.Helper()
	dir := t.TempDir()
	client, priv := newEd25519(t)
	if len(hostKeys) == 0 {
		hk, _ := newEd25519(t)
		hostKeys = []ssh.Signer{hk}
	}
	f := &fixture{
		srv:        newTestServer(t, []ssh.PublicKey{client.PublicKey()}, hostKeys...),
		dir:        dir,
		hostKey:    hostKeys[0],
		clientKey:  client,
		identity:   filepath.Join(dir, "id_ed25519"),
		knownHosts: filepath.Join(dir, "known_hosts"),
	}
	writePrivateKey(t, f.identity, priv, "")
	writeKnownHosts(t, f.knownHosts, knownhosts.Line([]string{f.srv.addr}, f.hostKey.PublicKey()))
	return f
}

func (f *fixture) config() Config {
	return Config{
		User:         "deploy",
		IdentityFile: f.identity,
		KnownHosts:   f.knownHosts,
		KeepAlive:    -1,
	}
}

func (f *fixture) dialer(t *testing.T, mutate ...func(*Config)) *Dialer {
	t.Helper()
	cfg := f.config()
	for _, m := range mutate {
		m(&cfg)
	}
	d, err := NewDialer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A killed command's session is kept if it reports within the grace;
	// on a loaded machine that can take seconds, and tests that check the
	// session survives must not depend on how loaded it is.
	d.sessionGrace = time.Minute
	return d
}

func (f *fixture) client(t *testing.T, mutate ...func(*Config)) *Client {
	t.Helper()
	_, c := f.dialed(t, mutate...)
	return c
}

// dialed is client with its dialer (for its Stats); the client is closed
// when the test ends.
func (f *fixture) dialed(t *testing.T, mutate ...func(*Config)) (*Dialer, *Client) {
	t.Helper()
	d := f.dialer(t, mutate...)
	c, err := d.Dial(t.Context(), f.srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return d, c
}
