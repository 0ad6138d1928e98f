//go:build unix

package ssh

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/syncbuf"
	"github.com/drover-dev/drover/internal/testwait"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

const sshdPath = "/usr/sbin/sshd"

// requireSSHD skips when a real sshd cannot run here, except under CI=true,
// where the missing coverage is a failure.
func requireSSHD(t *testing.T) {
	t.Helper()
	var reason string
	switch {
	case os.Geteuid() != 0:
		reason = "the real-sshd test needs root (sshd switches users and needs /run/sshd)"
	default:
		if _, err := os.Stat(sshdPath); err != nil {
			reason = sshdPath + " not found (install openssh-server)"
		}
	}
	if reason == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true, so this test must not skip: %s", reason)
	}
	t.Skip(reason)
}

type realSSHD struct {
	addr                 string
	edHostKey, ecHostKey ssh.Signer
	identity             string
	user                 string
}

// startSSHD runs /usr/sbin/sshd -D on a free 127.0.0.1 port with host keys,
// authorized_keys and config in a temp dir, and waits until it accepts.
func startSSHD(t *testing.T) *realSSHD {
	t.Helper()
	requireSSHD(t)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	edHost, edPriv := newEd25519(t)
	ecPriv := newECDSAPrivate(t)
	ecHost, err := ssh.NewSignerFromKey(ecPriv)
	if err != nil {
		t.Fatal(err)
	}
	writePrivateKey(t, filepath.Join(dir, "host_ed25519"), edPriv, "")
	writePrivateKey(t, filepath.Join(dir, "host_ecdsa"), ecPriv, "")

	client, clientPriv := newEd25519(t)
	identity := filepath.Join(dir, "id_ed25519")
	writePrivateKey(t, identity, clientPriv, "")
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(client.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %[2]s/host_ed25519
HostKey %[2]s/host_ecdsa
PidFile %[2]s/sshd.pid
AuthorizedKeysFile %[2]s/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
LogLevel VERBOSE
`, port, dir)
	cfgPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}

	var logs syncbuf.Buffer
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", cfgPath)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("sshd log:\n%s", logs.String())
		}
	})

	addr := fmt.Sprintf("127.0.0.1:%d", port)
	testwait.Within(t, 10*time.Second, "sshd accepting on "+addr, func() bool {
		select {
		case <-exited:
			t.Fatalf("sshd exited at start:\n%s", logs.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, logs.String)
	return &realSSHD{addr: addr, edHostKey: edHost, ecHostKey: ecHost, identity: identity, user: u.Username}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *realSSHD) dialer(t *testing.T, knownHosts string, acceptNew bool) *Dialer {
	t.Helper()
	d, err := NewDialer(Config{User: s.user, IdentityFile: s.identity, KnownHosts: knownHosts, AcceptNew: acceptNew})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRealSSHD(t *testing.T) {
	s := startSSHD(t)
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")

	t.Run("unknown host refused", func(t *testing.T) {
		_, err := s.dialer(t, kh, false).Dial(t.Context(), s.addr)
		if !errors.Is(err, ErrHostKeyUnknown) {
			t.Fatalf("err = %v", err)
		}
		// ed25519 is offered first, so that is the key the operator is shown.
		if !strings.Contains(err.Error(), ssh.FingerprintSHA256(s.edHostKey.PublicKey())) {
			t.Errorf("error lacks the ed25519 fingerprint: %v", err)
		}
	})

	t.Run("changed key refused", func(t *testing.T) {
		other, _ := newEd25519(t)
		bad := filepath.Join(dir, "known_hosts_bad")
		writeKnownHosts(t, bad, knownhosts.Line([]string{s.addr}, other.PublicKey()))
		_, err := s.dialer(t, bad, true).Dial(t.Context(), s.addr)
		if !errors.Is(err, ErrHostKeyChanged) || !strings.Contains(err.Error(), bad+":1") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("accept-new then strict", func(t *testing.T) {
		c, err := s.dialer(t, kh, true).Dial(t.Context(), s.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
		want := knownhosts.Line([]string{s.addr}, s.edHostKey.PublicKey()) + "\n"
		if b, _ := os.ReadFile(kh); string(b) != want {
			t.Fatalf("known_hosts = %q, want %q", b, want)
		}
		// Only the ECDSA key recorded: the handshake must ask for that one.
		ecOnly := filepath.Join(dir, "known_hosts_ecdsa")
		writeKnownHosts(t, ecOnly, knownhosts.Line([]string{s.addr}, s.ecHostKey.PublicKey()))
		c, err = s.dialer(t, ecOnly, false).Dial(t.Context(), s.addr)
		if err != nil {
			t.Fatalf("ecdsa-only known_hosts: %v", err)
		}
		_ = c.Close()
	})

	d := s.dialer(t, kh, false)
	c, err := d.Dial(t.Context(), s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Run("run", func(t *testing.T) {
		var out bytes.Buffer
		if err := c.Run(t.Context(), "echo out; echo err >&2", &out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "out\n") || !strings.Contains(out.String(), "err\n") {
			t.Errorf("output = %q", out.String())
		}
		err := c.Run(t.Context(), "exit 7", io.Discard)
		var exit *ExitError
		if !errors.As(err, &exit) || exit.Code != 7 {
			t.Fatalf("err = %v, want exit 7", err)
		}
	})

	t.Run("put", func(t *testing.T) {
		target := filepath.Join(dir, "srv", "app", "releases", "2.0.1", "bin", "restart")
		if err := c.Put(t.Context(), target, strings.NewReader("#!/bin/sh\necho v1\n"), 0o750); err != nil {
			t.Fatal(err)
		}
		checkFile(t, target, "#!/bin/sh\necho v1\n", 0o750)
		big := strings.Repeat("x", 3<<20)
		if err := c.Put(t.Context(), target, strings.NewReader(big), 0o700); err != nil {
			t.Fatal(err)
		}
		checkFile(t, target, big, 0o700)
		if names := listDir(t, filepath.Dir(target)); len(names) != 1 {
			t.Errorf("directory holds %v, want only restart", names)
		}
	})

	t.Run("cancel kills the command", func(t *testing.T) {
		// Logged in as root, sshd ignores signal requests (no post-auth
		// privilege separation): the wrapper's watcher must do the job.
		cancelKills(t, c, dir)
		runPastDeadline(t, c, 300*time.Millisecond)
	})

	t.Run("one handshake for all of the above", func(t *testing.T) {
		if n := c.Handshakes(); n != 1 {
			t.Errorf("handshakes = %d, want 1", n)
		}
	})

	t.Run("connection killed mid-command is redialled", func(t *testing.T) {
		// The first attempt kills its own sshd session process, which drops
		// the connection; the retry finds the marker and succeeds.
		killParentOnce(t, c, filepath.Join(dir, "killed-once"), "5", 2)
	})
}
