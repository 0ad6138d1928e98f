//go:build unix

package ssh

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/plans"
	"golang.org/x/crypto/ssh/agent"
)

func TestConfigFromPlan(t *testing.T) {
	t.Parallel()
	got := ConfigFromPlan(plans.SSH{
		User: "deploy", IdentityFile: "/k", KnownHosts: "/kh",
		HostKeyChecking: plans.HostKeyAcceptNew, ConnectTimeout: 3 * time.Second, SessionPerCommand: true,
	})
	want := Config{User: "deploy", IdentityFile: "/k", KnownHosts: "/kh", AcceptNew: true,
		ConnectTimeout: 3 * time.Second, KeepAlive: DefaultKeepAlive, Agent: true, PerCommandSessions: true}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if ConfigFromPlan(plans.SSH{HostKeyChecking: plans.HostKeyStrict}).AcceptNew {
		t.Error("strict became accept-new")
	}
}

func TestNewDialerIdentityErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const passphrase = "correct horse battery staple"
	_, priv := newEd25519(t)
	encrypted := filepath.Join(dir, "id_encrypted")
	writePrivateKey(t, encrypted, priv, passphrase)
	garbage := filepath.Join(dir, "id_garbage")
	if err := os.WriteFile(garbage, []byte("SECRET-MATERIAL-NOT-A-KEY"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyBytes, _ := os.ReadFile(encrypted)

	for _, tc := range []struct {
		name, identity string
		want           []string
	}{
		{"missing", filepath.Join(dir, "nope"), []string{"cannot read identity file", "nope", "no such file"}},
		{"passphrase", encrypted, []string{"passphrase", "ssh-add " + encrypted, "SSH_AUTH_SOCK"}},
		{"garbage", garbage, []string{"not a private key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewDialer(Config{IdentityFile: tc.identity, KnownHosts: filepath.Join(dir, "kh")})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			for _, secret := range []string{passphrase, "SECRET-MATERIAL", "PRIVATE KEY", string(keyBytes[40:80])} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks %q: %v", secret, err)
				}
			}
		})
	}
}

func TestNewDialerWithoutAnyKey(t *testing.T) {
	t.Parallel()
	_, err := NewDialer(Config{KnownHosts: filepath.Join(t.TempDir(), "kh")})
	if !errors.Is(err, ErrNoAuth) {
		t.Fatalf("err = %v, want ErrNoAuth", err)
	}
}

// startAgent serves an in-memory ssh-agent holding keys on a unix socket.
func startAgent(t *testing.T, keys ...any) string {
	t.Helper()
	keyring := agent.NewKeyring()
	for _, k := range keys {
		if err := keyring.Add(agent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = agent.ServeAgent(keyring, c)
			}()
		}
	}()
	return sock
}

// Not parallel: sets SSH_AUTH_SOCK.
func TestAgentAuthWithPassphraseProtectedIdentity(t *testing.T) {
	f := newFixture(t)
	// The authorized key lives only in the agent; the identity file is
	// encrypted (the usual setup with ssh-add).
	agentKey, agentPriv := newEd25519(t)
	f.srv.authorize(agentKey.PublicKey())
	writePrivateKey(t, f.identity, agentPriv, "secret")
	t.Setenv("SSH_AUTH_SOCK", startAgent(t, agentPriv))

	c := f.client(t, func(c *Config) { c.Agent = true })
	if err := c.Run(t.Context(), "true", nil); err != nil {
		t.Fatal(err)
	}

	// Without the agent option the same files are an error.
	if _, err := NewDialer(Config{IdentityFile: f.identity, KnownHosts: f.knownHosts}); err == nil ||
		!strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("err = %v", err)
	}
}

func TestAuthenticationFailureIsExplained(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, other := newEd25519(t)
	writePrivateKey(t, f.identity, other, "")
	_, err := f.dialer(t).Dial(t.Context(), f.srv.addr)
	if err == nil || !strings.Contains(err.Error(), `authentication as "deploy" failed`) ||
		!strings.Contains(err.Error(), f.identity) {
		t.Fatalf("err = %v", err)
	}
}

// silentListener accepts TCP connections and never speaks SSH.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return ln.Addr().String()
}

func TestDialHonoursContextAndConnectTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	addr := silentListener(t)

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := f.dialer(t).Dial(ctx, addr)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ctx: err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Dial took %s", d)
	}

	_, err = f.dialer(t, func(c *Config) { c.ConnectTimeout = 200 * time.Millisecond }).Dial(t.Context(), addr)
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connect timeout") {
		t.Fatalf("connect timeout: err = %v", err)
	}
}

func TestWithDefaultPort(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"10.0.0.1": "10.0.0.1:22", "h:2222": "h:2222", "::1": "[::1]:22", "[::1]": "[::1]:22", "[::1]:23": "[::1]:23",
	} {
		if got := withDefaultPort(in); got != want {
			t.Errorf("withDefaultPort(%q) = %q, want %q", in, got, want)
		}
	}
}
