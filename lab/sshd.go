package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func sshdPath() (string, error) {
	if p, err := exec.LookPath("sshd"); err == nil {
		return p, nil
	}
	const p = "/usr/sbin/sshd"
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

func (l *Lab) hostDir(name string) string { return filepath.Join(l.Dir, "hosts", name) }

// RCDelay is what the SlowRC ~/.bashrc costs each SSH session: about what a
// version manager's init (pyenv, nvm) costs on a real host.
const RCDelay = 50 * time.Millisecond

// slowBashrc is root's ~/.bashrc on SlowRC hosts. bash sources it for every
// command sshd runs (Debian's bash detects sshd), before the usual
// "not interactive: stop" check, which is where such inits end up. The cost
// is a sleep rather than CPU so that it is the same on a busy machine.
var slowBashrc = fmt.Sprintf(`# drover lab: an rc file that costs %s per SSH session
sleep %.3f
case $- in *i*) ;; *) return ;; esac
`, RCDelay, RCDelay.Seconds())

// homeDir is root's home on SlowRC hosts (shared: it holds only .bashrc).
func (l *Lab) homeDir() string { return filepath.Join(l.Dir, "home") }

// writeHome writes the SlowRC home, when asked for.
func (l *Lab) writeHome() error {
	if !l.SlowRC {
		return nil
	}
	if err := os.MkdirAll(l.homeDir(), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(l.homeDir(), ".bashrc"), []byte(slowBashrc), 0o644)
}

// keygen writes a new ed25519 key pair at path and path.pub.
func keygen(ctx context.Context, path, comment string) error {
	// ssh-keygen asks before overwriting (a reused Dir): start clean.
	os.Remove(path)
	os.Remove(path + ".pub")
	_, err := run(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path)
	return err
}

// startSSHDs makes the client key, every host's key, authorized_keys,
// known_hosts and sshd_config, then starts one sshd per web host.
func (l *Lab) startSSHDs(ctx context.Context) error {
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // sshd's privilege separation dir
		return err
	}
	if err := os.MkdirAll("/srv", 0o755); err != nil { // the bind mount target
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(l.Hosts)+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs[0] = keygen(ctx, l.IdentityFile, "drover-lab-"+l.ID)
	}()
	for i, h := range l.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := os.MkdirAll(h.SrvDir, 0o755); err != nil {
				errs[i+1] = err
				return
			}
			errs[i+1] = keygen(ctx, filepath.Join(l.hostDir(h.Name), "ssh_host_ed25519_key"), h.Name)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	sftpServer, err := sftpServerPath()
	if err != nil {
		return err
	}
	l.sftpServer = sftpServer
	if err := l.writeAuditFiles(); err != nil {
		return err
	}
	if err := l.writeHome(); err != nil {
		return err
	}
	pub, err := os.ReadFile(l.IdentityFile + ".pub")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(l.Dir, "authorized_keys"), pub, 0o600); err != nil {
		return err
	}
	var kh strings.Builder
	for _, h := range l.Hosts {
		b, err := os.ReadFile(filepath.Join(l.hostDir(h.Name), "ssh_host_ed25519_key.pub"))
		if err != nil {
			return err
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			return fmt.Errorf("%s: bad host key", h.Name)
		}
		fmt.Fprintf(&kh, "%s %s %s\n", h.Address, f[0], f[1])
	}
	if err := os.WriteFile(l.KnownHosts, []byte(kh.String()), 0o644); err != nil {
		return err
	}

	penalties, err := l.sshdSupportsPenalties(ctx)
	if err != nil {
		return err
	}
	for _, h := range l.Hosts {
		if err := os.WriteFile(l.sshdConfigPath(h.Name), []byte(l.sshdConfig(h, penalties)), 0o644); err != nil {
			return err
		}
	}
	errs = make([]error, len(l.Hosts))
	for i, h := range l.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.startSSHD(ctx, h)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (l *Lab) sshdConfigPath(host string) string {
	return filepath.Join(l.hostDir(host), "sshd_config")
}

func (l *Lab) sshdPidfile(host string) string { return filepath.Join(l.hostDir(host), "sshd.pid") }

func (l *Lab) sshdConfig(h Host, penalties bool) string {
	d := l.hostDir(h.Name)
	var b strings.Builder
	fmt.Fprintf(&b, "# drover lab %s: sshd of %s\n", l.ID, h.Name)
	fmt.Fprintf(&b, "ListenAddress %s\n", h.SSHAddress)
	fmt.Fprintf(&b, "HostKey %s\n", filepath.Join(d, "ssh_host_ed25519_key"))
	fmt.Fprintf(&b, "PidFile %s\n", l.sshdPidfile(h.Name))
	fmt.Fprintf(&b, "AuthorizedKeysFile %s\n", filepath.Join(l.Dir, "authorized_keys"))
	b.WriteString(`PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The lab dir may live under /tmp, which StrictModes refuses.
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
# drover opens many connections at once; keep sshd from dropping them.
MaxStartups 200:30:400
MaxSessions 100
LoginGraceTime 10s
`)
	// The host audit (audit.sh): every session, SFTP included, goes through
	// the ForceCommand, which logs it and then runs what the client asked.
	fmt.Fprintf(&b, "Subsystem sftp %s\n", l.sftpServer)
	fmt.Fprintf(&b, "ForceCommand audit_log=%s sftp_server=%s; . %s\n", l.hostAuditPath(h.Name), l.sftpServer, l.auditScriptPath())
	if penalties {
		// OpenSSH >= 9.8 penalizes sources that fail auth or crash sessions;
		// the lab's one client address (ctl) must never be locked out.
		b.WriteString("PerSourcePenalties no\n")
	}
	return b.String()
}

// sshdSupportsPenalties reports whether this sshd knows PerSourcePenalties
// (OpenSSH 9.8+), by testing a minimal config with it.
func (l *Lab) sshdSupportsPenalties(ctx context.Context) (bool, error) {
	sshd, err := sshdPath()
	if err != nil {
		return false, err
	}
	cfg := filepath.Join(l.Dir, "sshd_probe_config")
	defer os.Remove(cfg)
	h := l.Hosts[0]
	if err := os.WriteFile(cfg, []byte(l.sshdConfig(h, true)), 0o644); err != nil {
		return false, err
	}
	out, err := run(ctx, sshd, "-t", "-f", cfg)
	if err == nil {
		return true, nil
	}
	if strings.Contains(out, "PerSourcePenalties") {
		return false, nil
	}
	return false, fmt.Errorf("sshd rejects the lab config: %w", err)
}

// startSSHD starts a host's sshd inside a fresh private mount and UTS
// namespace (its own /srv and host name) in the host's network namespace,
// and waits until it listens (sshd writes its PidFile after binding).
func (l *Lab) startSSHD(ctx context.Context, h Host) error {
	sshd, err := sshdPath()
	if err != nil {
		return err
	}
	pidfile := l.sshdPidfile(h.Name)
	os.Remove(pidfile)
	// Each host sees root's login shell as /bin/sh, as on a minimal server:
	// the lab machine's own dotfiles (a slow ~/.bashrc, say) must not run
	// before every remote command. With SlowRC, it is bash with the lab's
	// own home and a ~/.bashrc of a known cost instead. Only this host's
	// mount namespace sees it.
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return err
	}
	var pw strings.Builder
	for _, line := range strings.Split(strings.TrimRight(string(passwd), "\n"), "\n") {
		if f := strings.Split(line, ":"); len(f) == 7 && f[0] == "root" {
			f[6] = "/bin/sh"
			if l.SlowRC {
				f[5], f[6] = l.homeDir(), "/bin/bash"
			}
			line = strings.Join(f, ":")
		}
		pw.WriteString(line + "\n")
	}
	hostPasswd := filepath.Join(l.hostDir(h.Name), "passwd")
	if err := os.WriteFile(hostPasswd, []byte(pw.String()), 0o644); err != nil {
		return err
	}
	const script = `mount --bind "$1" /srv && mount --bind "$6" /etc/passwd && hostname "$2" && exec "$3" -D -f "$4" -E "$5"`
	cmd := exec.Command("ip", "netns", "exec", h.NS,
		"unshare", "--mount", "--uts", "--propagation", "private",
		"sh", "-c", script, "sh",
		h.SrvDir, h.Name, sshd, l.sshdConfigPath(h.Name), filepath.Join(l.hostDir(h.Name), "sshd.log"), hostPasswd)
	d, err := startDaemon("sshd/"+h.Name, filepath.Join(l.hostDir(h.Name), "sshd.out"), cmd)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.daemons[d.name+"/"+strconv.Itoa(d.pid())] = d
	l.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(pidfile); err == nil && strings.TrimSpace(string(b)) != "" {
			return nil
		}
		if d.exited() {
			return fmt.Errorf("%s: sshd %w: %s", h.Name, errDaemonExited, l.tail(h.Name))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: sshd did not start within 10s: %s", h.Name, l.tail(h.Name))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// tail returns the end of a host's sshd logs, for error messages.
func (l *Lab) tail(host string) string {
	var s string
	for _, f := range []string{"sshd.out", "sshd.log"} {
		b, _ := os.ReadFile(filepath.Join(l.hostDir(host), f))
		s += string(b)
	}
	if len(s) > 600 {
		s = s[len(s)-600:]
	}
	return strings.TrimSpace(s)
}

// sshdPids lists the sshd processes in a host's namespace: the listener and
// the per-connection children ("sshd" or, on OpenSSH 9.8+, "sshd-session").
func (l *Lab) sshdPids(ctx context.Context, h Host) ([]int, error) {
	pids, err := nsPids(ctx, h.NS)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, p := range pids {
		if strings.HasPrefix(procComm(p), "sshd") {
			out = append(out, p)
		}
	}
	return out, nil
}

// KillSSHD kills a host's sshd and the sshd processes serving its open
// sessions (SIGKILL), so that the host is unreachable over SSH; its app and
// any command a session started keep running. StartSSHD brings sshd back.
func (l *Lab) KillSSHD(host string) error {
	h, err := l.Host(host)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 10 {
		pids, err := l.sshdPids(ctx, h)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if left := waitExited(pids, 5*time.Second); len(left) > 0 {
			return fmt.Errorf("%s: sshd pids %v survived SIGKILL", host, left)
		}
	}
	return fmt.Errorf("%s: sshd keeps coming back", host)
}

// StartSSHD starts a host's sshd again after KillSSHD (same keys, same /srv).
func (l *Lab) StartSSHD(ctx context.Context, host string) error {
	h, err := l.Host(host)
	if err != nil {
		return err
	}
	pids, err := l.sshdPids(ctx, h)
	if err != nil {
		return err
	}
	if len(pids) > 0 {
		return fmt.Errorf("%s: sshd is running (pids %v)", host, pids)
	}
	return l.startSSHD(ctx, h)
}
