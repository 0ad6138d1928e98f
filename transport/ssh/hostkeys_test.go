//go:build unix

package ssh

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestUnknownHostRefusedInStrictMode(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	writeKnownHosts(t, f.knownHosts, "# nothing yet")

	_, err := f.dialer(t).Dial(t.Context(), f.srv.addr)
	if !errors.Is(err, ErrHostKeyUnknown) {
		t.Fatalf("err = %v, want ErrHostKeyUnknown", err)
	}
	_, port, _ := net.SplitHostPort(f.srv.addr)
	for _, want := range []string{
		ssh.FingerprintSHA256(f.hostKey.PublicKey()),
		fmt.Sprintf("ssh-keyscan -p %s -t ed25519 127.0.0.1 >> %s", port, f.knownHosts),
		"host_key_checking: accept-new",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if b, _ := os.ReadFile(f.knownHosts); string(b) != "# nothing yet\n" {
		t.Errorf("strict mode changed known_hosts: %q", b)
	}
	if n := f.srv.handshakes.Load(); n != 0 {
		t.Errorf("server completed %d handshakes, want 0", n)
	}
}

func TestMissingKnownHostsIsEmptyInStrictMode(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	missing := filepath.Join(f.dir, "nope", "known_hosts")
	_, err := f.dialer(t, func(c *Config) { c.KnownHosts = missing }).Dial(t.Context(), f.srv.addr)
	if !errors.Is(err, ErrHostKeyUnknown) {
		t.Fatalf("err = %v, want ErrHostKeyUnknown", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("strict mode created %s", missing)
	}
}

func TestChangedHostKeyRefusedEvenWithAcceptNew(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	other, _ := newEd25519(t)
	unrelated, _ := newEd25519(t)
	writeKnownHosts(t, f.knownHosts,
		knownhosts.Line([]string{"10.9.9.9:22"}, unrelated.PublicKey()),
		knownhosts.Line([]string{f.srv.addr}, other.PublicKey()))
	before, _ := os.ReadFile(f.knownHosts)

	for _, acceptNew := range []bool{false, true} {
		_, err := f.dialer(t, func(c *Config) { c.AcceptNew = acceptNew }).Dial(t.Context(), f.srv.addr)
		if !errors.Is(err, ErrHostKeyChanged) {
			t.Fatalf("accept-new=%v: err = %v, want ErrHostKeyChanged", acceptNew, err)
		}
		for _, want := range []string{
			f.knownHosts + ":2",
			ssh.FingerprintSHA256(f.hostKey.PublicKey()),
			ssh.FingerprintSHA256(other.PublicKey()),
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not mention %q:\n%v", want, err)
			}
		}
	}
	if after, _ := os.ReadFile(f.knownHosts); string(after) != string(before) {
		t.Errorf("known_hosts changed:\n%s", after)
	}
}

func TestRevokedHostKeyRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	writeKnownHosts(t, f.knownHosts, "@revoked * "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(f.hostKey.PublicKey()))))
	_, err := f.dialer(t, func(c *Config) { c.AcceptNew = true }).Dial(t.Context(), f.srv.addr)
	if !errors.Is(err, ErrHostKeyRevoked) {
		t.Fatalf("err = %v, want ErrHostKeyRevoked", err)
	}
}

func TestAcceptNewRecordsKeyThenStrictAccepts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	kh := filepath.Join(f.dir, "fresh", ".ssh", "known_hosts") // neither file nor folder exist
	acceptNew := func(c *Config) { c.KnownHosts = kh; c.AcceptNew = true }

	c, err := f.dialer(t, acceptNew).Dial(t.Context(), f.srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	st, err := os.Stat(kh)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode = %v, want 0600", st.Mode().Perm())
	}
	want := knownhosts.Line([]string{f.srv.addr}, f.hostKey.PublicKey()) + "\n"
	if b, _ := os.ReadFile(kh); string(b) != want {
		t.Errorf("known_hosts = %q, want %q", b, want)
	}

	strict := func(c *Config) { c.KnownHosts = kh }
	c, err = f.dialer(t, strict).Dial(t.Context(), f.srv.addr)
	if err != nil {
		t.Fatalf("strict dial after accept-new: %v", err)
	}
	_ = c.Close()
}

func TestAcceptNewAppendsOnceUnderParallelDials(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// No trailing newline: the appended line must still start on its own line.
	if err := os.WriteFile(f.knownHosts, []byte("# operator's file"), 0o600); err != nil {
		t.Fatal(err)
	}
	shared := f.dialer(t, func(c *Config) { c.AcceptNew = true })
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		d := shared
		if i%2 == 1 { // separate dialers: only the file lock serialises them
			d = f.dialer(t, func(c *Config) { c.AcceptNew = true })
		}
		wg.Go(func() {
			c, err := d.Dial(t.Context(), f.srv.addr)
			if err == nil {
				err = c.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	want := "# operator's file\n" + knownhosts.Line([]string{f.srv.addr}, f.hostKey.PublicKey()) + "\n"
	if b, _ := os.ReadFile(f.knownHosts); string(b) != want {
		t.Errorf("known_hosts =\n%s\nwant\n%s", b, want)
	}
}

// A host recorded with ed25519 that also has (and x/crypto by default
// prefers) an ECDSA key must not be reported as changed.
func TestHostKeyAlgorithmsFollowKnownHosts(t *testing.T) {
	t.Parallel()
	ed, _ := newEd25519(t)
	ec := newECDSA(t)
	f := newFixture(t, ed, ec)
	for name, recorded := range map[string]ssh.Signer{"ed25519": ed, "ecdsa": ec} {
		writeKnownHosts(t, f.knownHosts, knownhosts.Line([]string{f.srv.addr}, recorded.PublicKey()))
		c, err := f.dialer(t).Dial(t.Context(), f.srv.addr)
		if err != nil {
			t.Fatalf("recorded %s: %v", name, err)
		}
		_ = c.Close()
	}
}

func TestHostWithoutRecordedKeyTypeIsChanged(t *testing.T) {
	t.Parallel()
	f := newFixture(t, newECDSA(t))
	other, _ := newEd25519(t)
	writeKnownHosts(t, f.knownHosts, knownhosts.Line([]string{f.srv.addr}, other.PublicKey()))
	_, err := f.dialer(t, func(c *Config) { c.AcceptNew = true }).Dial(t.Context(), f.srv.addr)
	if !errors.Is(err, ErrHostKeyChanged) {
		t.Fatalf("err = %v, want ErrHostKeyChanged", err)
	}
}

func TestHostKeyAlgorithms(t *testing.T) {
	t.Parallel()
	ed, _ := newEd25519(t)
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := ssh.NewPublicKey(&rsaPriv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	got := hostKeyAlgorithms([]knownhosts.KnownKey{{Key: rsaKey}, {Key: ed.PublicKey()}})
	want := []string{ssh.KeyAlgoED25519, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := hostKeyAlgorithms(nil); got[0] != ssh.KeyAlgoED25519 || len(got) != len(hostKeyPreference) {
		t.Errorf("unknown host: got %v", got)
	}
}
