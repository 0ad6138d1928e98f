package lab

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// auditScript is sourced by every web host's sshd ForceCommand; Up writes it
// to <lab dir>/audit.sh.
//
//go:embed audit.sh
var auditScript []byte

// AuditEntry is one line of an audit log: a command a client sent to a web
// host over SSH (HostAudit) or to HAProxy's runtime API through the lab's TCP
// relay (LBAudit).
type AuditEntry struct {
	Time    time.Time // when the host (or relay) received it
	From    string    // the client's source IP
	Command string    // exactly as sent; see HostAudit for SFTP
}

func (e AuditEntry) String() string {
	return fmt.Sprintf("%s %s %q", e.Time.Format("15:04:05.000000"), e.From, e.Command)
}

// sftpServerPath finds OpenSSH's sftp-server: the audit needs a real program
// for the SFTP subsystem (internal-sftp cannot run under a ForceCommand).
func sftpServerPath() (string, error) {
	for _, p := range []string{
		"/usr/lib/openssh/sftp-server",     // Debian, Ubuntu
		"/usr/libexec/openssh/sftp-server", // Fedora, RHEL
		"/usr/libexec/sftp-server",         // Alpine, BSDs
		"/usr/lib/ssh/sftp-server",         // Arch
	} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("sftp-server"); err == nil {
		return p, nil
	}
	return "", errors.New("sftp-server not found")
}

func (l *Lab) auditDir() string                 { return filepath.Join(l.Dir, "audit") }
func (l *Lab) auditScriptPath() string          { return filepath.Join(l.Dir, "audit.sh") }
func (l *Lab) hostAuditPath(host string) string { return filepath.Join(l.auditDir(), host+".log") }
func (l *Lab) lbAuditPath() string              { return filepath.Join(l.Dir, "haproxy-admin.log") }

// writeAuditFiles writes the audit script and an empty log per host (and for
// the relay), so that "no line" and "no log" are told apart.
func (l *Lab) writeAuditFiles() error {
	if err := os.MkdirAll(l.auditDir(), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(l.auditScriptPath(), auditScript, 0o644); err != nil {
		return err
	}
	paths := []string{l.lbAuditPath()}
	for _, h := range l.Hosts {
		paths = append(paths, l.hostAuditPath(h.Name))
	}
	for _, p := range paths {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		f.Close()
	}
	return nil
}

// HostAudit returns every command SSH clients ran on a web host, oldest first,
// as the host itself recorded them (sshd's ForceCommand, before the command
// starts): the time, the client's source IP and the command line. An
// interactive login is an entry with an empty command. An SFTP session is one
// entry "sftp" when it opens, then one entry per operation sftp-server
// reports, such as
//
//	sftp open "/srv/app/x.tmp" flags WRITE,CREATE,TRUNC mode 0644
//	sftp close "/srv/app/x.tmp" bytes read 0 written 1234
//	sftp rename old "/srv/app/x.tmp" new "/srv/app/x"
//
// (timed when the host logged them, a millisecond or so after the fact).
// The list survives KillSSHD and StartSSHD.
func (l *Lab) HostAudit(host string) ([]AuditEntry, error) {
	if _, err := l.Host(host); err != nil {
		return nil, err
	}
	return readAuditLog(l.hostAuditPath(host))
}

// LBAudit returns every runtime API command sent through the relay at
// HAProxyAddress, oldest first: the time the relay read it (before passing it
// on), the client's source IP and the command (one entry per command of a
// ";"-separated line). Commands sent to the unix socket directly (HAProxy,
// ServerStates, a plan's socket) are not in it.
func (l *Lab) LBAudit() ([]AuditEntry, error) { return readAuditLog(l.lbAuditPath()) }

func readAuditLog(path string) ([]AuditEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseAuditLog(b)
}

// parseAuditLog parses "<unix ns> <ip> <escaped command>\n" lines. A last
// line without its newline is being written: it is left out.
func parseAuditLog(b []byte) ([]AuditEntry, error) {
	var out []AuditEntry
	for n := 1; len(b) > 0; n++ {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		line := string(b[:i])
		b = b[i+1:]
		ts, rest, ok1 := strings.Cut(line, " ")
		from, cmd, ok2 := strings.Cut(rest, " ")
		ns, err := strconv.ParseInt(ts, 10, 64)
		if !ok1 || !ok2 || err != nil || from == "" {
			return out, fmt.Errorf("audit log line %d: malformed: %q", n, line)
		}
		out = append(out, AuditEntry{Time: time.Unix(0, ns), From: from, Command: unescapeAudit(cmd)})
	}
	return out, nil
}

// escapeAudit writes "\" as `\\` and a newline as `\n`, like audit.sh.
func escapeAudit(s string) string {
	if !strings.ContainsAny(s, "\\\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func unescapeAudit(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case '\\':
				b.WriteByte('\\')
				i++
				continue
			case 'n':
				b.WriteByte('\n')
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// auditLine formats one log line.
func auditLine(t time.Time, from, cmd string) []byte {
	return []byte(strconv.FormatInt(t.UnixNano(), 10) + " " + from + " " + escapeAudit(cmd) + "\n")
}
