package ssh

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Dialer opens SSH connections with one user, one set of keys and one
// known_hosts policy. It is safe for concurrent use.
type Dialer struct {
	cfg       Config       // defaults applied, paths expanded
	signers   []ssh.Signer // from the identity file
	agentSock string       // ssh-agent socket, "" when not used

	knownHostsMu sync.Mutex // serialises accept-new appends in this process
	counters
	// sessionGrace overrides sessionKillGrace (tests on a loaded machine).
	sessionGrace time.Duration
}

// counters are what a Dialer's connections cost in round trips.
type counters struct {
	handshakes atomic.Int64
	channels   atomic.Int64 // channel opens (sessions, SFTP)
	requests   atomic.Int64 // channel requests that wait for the host (exec, subsystem)
	commands   atomic.Int64 // commands run (Run), whatever carried them
}

// Stats counts what a Dialer's connections did, for benchmarks: each
// handshake, channel open and channel request is at least one round trip
// to the host; a command through a shell session is one more.
type Stats struct {
	Handshakes, Channels, Requests, Commands int
}

// Stats returns the counts so far.
func (d *Dialer) Stats() Stats {
	return Stats{
		Handshakes: int(d.handshakes.Load()),
		Channels:   int(d.channels.Load()),
		Requests:   int(d.requests.Load()),
		Commands:   int(d.commands.Load()),
	}
}

// NewDialer loads the identity file and checks that ssh-agent is reachable
// when SSH_AUTH_SOCK is set and cfg.Agent. It fails when no key is available.
func NewDialer(cfg Config) (*Dialer, error) {
	if cfg.User == "" {
		cfg.User = currentUser()
		if cfg.User == "" {
			return nil, errors.New("ssh: no user given and the current user is unknown")
		}
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	var err error
	if cfg.KnownHosts == "" {
		cfg.KnownHosts = "~/.ssh/known_hosts"
	}
	if cfg.KnownHosts, err = expandHome(cfg.KnownHosts); err != nil {
		return nil, fmt.Errorf("ssh: known_hosts: %w", err)
	}
	if cfg.IdentityFile != "" {
		if cfg.IdentityFile, err = expandHome(cfg.IdentityFile); err != nil {
			return nil, fmt.Errorf("ssh: identity file: %w", err)
		}
	}
	d := &Dialer{cfg: cfg}

	// The agent first: a passphrase-protected identity file is fine when the
	// agent can sign for us.
	var agentErr error
	agentKeys := 0
	if sock := os.Getenv("SSH_AUTH_SOCK"); cfg.Agent && sock != "" {
		agentKeys, agentErr = countAgentKeys(sock)
		if agentErr == nil {
			d.agentSock = sock
		}
	}

	if cfg.IdentityFile != "" {
		signer, err := loadIdentity(cfg.IdentityFile)
		var locked *passphraseError
		switch {
		case errors.As(err, &locked) && agentKeys > 0:
			// The agent presumably holds this key; it is tried instead.
		case err != nil:
			return nil, err
		default:
			d.signers = append(d.signers, signer)
		}
	}

	if len(d.signers) == 0 && agentKeys == 0 {
		msg := "set ssh.identity_file in the plan, or load a key into ssh-agent (ssh-add) and set SSH_AUTH_SOCK"
		switch {
		case agentErr != nil:
			return nil, fmt.Errorf("ssh: %w: no identity file, and ssh-agent at %s is unusable (%v); %s", ErrNoAuth, os.Getenv("SSH_AUTH_SOCK"), agentErr, msg)
		case d.agentSock != "":
			return nil, fmt.Errorf("ssh: %w: no identity file, and ssh-agent holds no keys; %s", ErrNoAuth, msg)
		default:
			return nil, fmt.Errorf("ssh: %w: %s", ErrNoAuth, msg)
		}
	}
	return d, nil
}

// Handshakes is the number of successful SSH handshakes made by this Dialer.
func (d *Dialer) Handshakes() int { return int(d.handshakes.Load()) }

// Dial connects to addr (host:port; port 22 when missing) and authenticates.
// ctx bounds the whole call; Config.ConnectTimeout bounds connect+handshake.
func (d *Dialer) Dial(ctx context.Context, addr string) (*Client, error) {
	addr = withDefaultPort(addr)
	cn, err := d.connect(ctx, addr)
	if err != nil {
		return nil, err
	}
	c := &Client{d: d, addr: addr, cur: cn}
	c.handshakes.Add(1)
	return c, nil
}

// connect makes one TCP connection and SSH handshake to addr.
func (d *Dialer) connect(ctx context.Context, addr string) (*conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ssh: connect %s: %w", addr, err)
	}
	known, err := d.knownKeys(addr)
	if err != nil {
		return nil, err
	}
	algos := hostKeyAlgorithms(known)

	// The host key callback records its own error so that it can be
	// returned without the library's "handshake failed" wrapping.
	var hostKeyErr lockedErr
	auth, closeAgent := d.auth()
	defer closeAgent()
	cfg := &ssh.ClientConfig{
		User: d.cfg.User,
		Auth: []ssh.AuthMethod{auth},
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			err := d.verifyHostKey(hostname, remote, key)
			hostKeyErr.set(err)
			return err
		},
		HostKeyAlgorithms: algos,
	}

	dctx, cancel := context.WithTimeout(ctx, d.cfg.ConnectTimeout)
	defer cancel()
	var nd net.Dialer
	nc, err := nd.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, d.connectError(ctx, dctx, addr, "connect", err)
	}
	if dl, ok := dctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(dctx, func() { _ = nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if !stop() && err == nil {
		// The deadline or ctx fired just as the handshake finished.
		_ = sc.Close()
		err = net.ErrClosed
	}
	if err != nil {
		_ = nc.Close()
		var neg *ssh.AlgorithmNegotiationError
		switch {
		case hostKeyErr.get() != nil:
			return nil, hostKeyErr.get()
		case errors.As(err, &neg) && neg.What == "host key" && len(known) > 0:
			return nil, fmt.Errorf("%w: %s offers no host key of the types recorded for it in %s (recorded: %s; offered: %s)",
				ErrHostKeyChanged, addr, d.cfg.KnownHosts, knownList(known), strings.Join(neg.RequestedAlgorithms, ", "))
		case ctx.Err() != nil || dctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
			return nil, d.connectError(ctx, dctx, addr, "handshake", err)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, fmt.Errorf("ssh: %s: authentication as %q failed (%s): %w", addr, d.cfg.User, d.authSummary(), authFailed{err})
		default:
			return nil, fmt.Errorf("ssh: %s: %w", addr, err)
		}
	}
	_ = nc.SetDeadline(time.Time{})
	d.handshakes.Add(1)
	cn := newConn(ssh.NewClient(sc, chans, reqs), d.cfg.KeepAlive, d.cfg.PerCommandSessions, &d.counters)
	cn.shellGrace = cmp.Or(d.sessionGrace, sessionKillGrace)
	return cn, nil
}

// lockedErr is an error set by the handshake goroutine and read by Dial.
type lockedErr struct {
	mu  sync.Mutex
	err error
}

func (l *lockedErr) set(err error) { l.mu.Lock(); l.err = err; l.mu.Unlock() }
func (l *lockedErr) get() error    { l.mu.Lock(); defer l.mu.Unlock(); return l.err }

// connectError reports a failed connect or handshake: the caller's ctx
// error is wrapped; the connect timeout is described but not wrapped as a
// context error, so that callers do not mistake it for their own deadline.
func (d *Dialer) connectError(ctx, dctx context.Context, addr, phase string, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The socket deadline is dctx's deadline: let the context catch up
		// so that it tells whose deadline it was.
		<-dctx.Done()
	}
	if ctx.Err() != nil {
		return fmt.Errorf("ssh: %s %s: %w", phase, addr, ctx.Err())
	}
	if dctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("ssh: %s %s: no answer within the connect timeout (%s)", phase, addr, d.cfg.ConnectTimeout)
	}
	return fmt.Errorf("ssh: %s %s: %w", phase, addr, err)
}

// auth returns the public key method: the identity file's key first, then
// the agent's keys. The agent is contacted per handshake (a fresh socket
// each time, so parallel dials do not share one), closed by the returned func.
func (d *Dialer) auth() (ssh.AuthMethod, func()) {
	var agentConn net.Conn
	var mu sync.Mutex
	method := ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		signers := append([]ssh.Signer(nil), d.signers...)
		if d.agentSock == "" {
			return signers, nil
		}
		mu.Lock()
		defer mu.Unlock()
		if agentConn == nil {
			c, err := net.Dial("unix", d.agentSock)
			if err != nil {
				return signers, nil // the identity file may still do
			}
			agentConn = c
		}
		agentSigners, err := agent.NewClient(agentConn).Signers()
		if err != nil {
			return signers, nil
		}
		for _, s := range agentSigners {
			if !containsKey(signers, s.PublicKey()) {
				signers = append(signers, s)
			}
		}
		return signers, nil
	})
	return method, func() {
		mu.Lock()
		defer mu.Unlock()
		if agentConn != nil {
			_ = agentConn.Close()
		}
	}
}

// authSummary says which key sources were tried, without any key material.
func (d *Dialer) authSummary() string {
	var parts []string
	if len(d.signers) > 0 {
		parts = append(parts, "identity file "+d.cfg.IdentityFile)
	}
	if d.agentSock != "" {
		parts = append(parts, "ssh-agent keys")
	}
	return "tried " + strings.Join(parts, " and ") + "; check the remote authorized_keys"
}

func containsKey(signers []ssh.Signer, k ssh.PublicKey) bool {
	for _, s := range signers {
		if bytes.Equal(s.PublicKey().Marshal(), k.Marshal()) {
			return true
		}
	}
	return false
}

// passphraseError: the identity file is encrypted and there is no way to
// prompt for its passphrase.
type passphraseError struct{ path string }

func (e *passphraseError) Error() string {
	return fmt.Sprintf("ssh: identity file %s is protected by a passphrase, which drover cannot prompt for: "+
		"load it into ssh-agent (ssh-add %s) and make sure SSH_AUTH_SOCK is set, or use a deploy key without a passphrase",
		e.path, e.path)
}

// loadIdentity reads and parses a private key file. Errors name the file but
// never include its contents.
func loadIdentity(path string) (ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is named below, once
		}
		return nil, fmt.Errorf("ssh: cannot read identity file %s: %w", path, err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	clear(pem)
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, &passphraseError{path: path}
	case err != nil:
		// The parser's messages are fixed strings ("ssh: no key found", ...);
		// still, do not pass them through: they are not needed.
		return nil, fmt.Errorf("ssh: identity file %s is not a private key drover can use (OpenSSH, PKCS#1, PKCS#8 or SEC1 PEM expected)", path)
	}
	return signer, nil
}

func countAgentKeys(sock string) (int, error) {
	c, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	keys, err := agent.NewClient(c).List()
	if err != nil {
		return 0, err
	}
	return len(keys), nil
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}

func expandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
}

// withDefaultPort appends :22 to an address without a port.
func withDefaultPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), "22")
}
