package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

func TestAuditEscaping(t *testing.T) {
	for _, s := range []string{"", "true", `a\b`, "a\nb", `\n`, "\\\n\\", "trailing\\", "tab\tand ; and \"q\"", "x\r\ny"} {
		e := escapeAudit(s)
		if strings.Contains(e, "\n") {
			t.Errorf("escape(%q) = %q holds a newline", s, e)
		}
		if got := unescapeAudit(e); got != s {
			t.Errorf("unescape(escape(%q)) = %q", s, got)
		}
	}
	log := []byte("1700000000123456789 10.200.0.1 echo a\\nb\n" +
		"1700000000223456789 10.200.0.5 \n" +
		"1700000000323456789 10.200.0.1 partial")
	got, err := parseAuditLog(log)
	if err != nil {
		t.Fatal(err)
	}
	want := []AuditEntry{
		{Time: time.Unix(0, 1700000000123456789), From: "10.200.0.1", Command: "echo a\nb"},
		{Time: time.Unix(0, 1700000000223456789), From: "10.200.0.5", Command: ""},
	}
	if !slices.Equal(got, want) {
		t.Errorf("parse = %v, want %v", got, want)
	}
	for _, bad := range []string{"x 10.0.0.1 cmd\n", "17 \n", "17\n"} {
		if _, err := parseAuditLog([]byte(bad)); err == nil {
			t.Errorf("parse(%q): no error", bad)
		}
	}
}

func TestSplitCommands(t *testing.T) {
	for line, want := range map[string][]string{
		"show stat":                             {"show stat"},
		"set server a/b state drain; show stat": {"set server a/b state drain", "show stat"},
		` a ;; b ; `:                            {"a", "b"},
		`set map x k v\;w; show info`:           {`set map x k v\;w`, "show info"},
		"":                                      nil,
		" ; ":                                   nil,
	} {
		if got := splitCommands(line); !slices.Equal(got, want) {
			t.Errorf("splitCommands(%q) = %q, want %q", line, got, want)
		}
	}
}

// runAudit runs audit.sh the way sshd's ForceCommand does, with cmd as the
// client's command.
func runAudit(t *testing.T, script, logPath, sftp, cmd string, stdin []byte) (stdout, stderr string, code int) {
	t.Helper()
	c := exec.Command("/bin/sh", "-c", "audit_log="+logPath+" sftp_server="+sftp+"; . "+script)
	c.Env = append(os.Environ(), "SSH_CONNECTION=10.200.0.5 40000 10.200.0.11 22", "SSH_ORIGINAL_COMMAND="+cmd)
	c.Stdin = bytes.NewReader(stdin)
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	err := c.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// TestAuditScript runs lab/audit.sh without sshd: it logs the command and
// then behaves exactly like `sh -c command`.
func TestAuditScript(t *testing.T) {
	if _, err := exec.LookPath("date"); err != nil {
		t.Skip("no date(1)")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "audit.sh")
	if err := os.WriteFile(script, auditScript, 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "web1.log")
	sftp := filepath.Join(dir, "fake-sftp-server")
	// Stands in for sftp-server -e -l INFO: logs to stderr with "\r\n",
	// speaks the protocol (here: echoes) on stdin and stdout.
	fake := "#!/bin/sh\n[ \"$1 $2 $3\" = '-e -l INFO' ] || exit 9\nprintf 'open \"/srv/x\" flags WRITE\\r\\n' >&2\ncat\nprintf 'close \"/srv/x\" bytes read 0 written 3\\r\\n' >&2\n"
	if err := os.WriteFile(sftp, []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	stdin := []byte("bin\x00ary\nno newline at the end")
	out, errOut, code := runAudit(t, script, logPath, sftp, "printf out; printf err >&2; cat; exit 7", stdin)
	if out != "out"+string(stdin) || errOut != "err" || code != 7 {
		t.Errorf("command: stdout %q, stderr %q, exit %d", out, errOut, code)
	}
	tricky := []string{
		"echo 'a\\b' \"c\\\\d\"\nprintf '%s\\n' x\n# a comment; and * ? [x] $HOME `id`",
		"trailing backslash \\",
		"", // an empty command (not a login shell: SSH_ORIGINAL_COMMAND is set)
		"exec 3<&0 </dev/null\n(while read -r l <&3; do :; done) &\nexit 0\n",
	}
	for _, cmd := range tricky {
		runAudit(t, script, logPath, sftp, cmd, nil)
	}
	// Concurrent sessions: one whole line each.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runAudit(t, script, logPath, sftp, fmt.Sprintf("echo %d %s", i, strings.Repeat("x", 5000)), nil)
		}()
	}
	wg.Wait()
	out, _, code = runAudit(t, script, logPath, sftp, sftp, []byte("sftp protocol bytes"))
	if out != "sftp protocol bytes" || code != 0 {
		t.Errorf("sftp: stdout %q, exit %d", out, code)
	}
	end := time.Now()

	entries, err := readAuditLog(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, e := range entries {
		if e.From != "10.200.0.5" || e.Time.Before(start) || e.Time.After(end) {
			t.Errorf("entry %v: want from 10.200.0.5 between %v and %v", e, start, end)
		}
		cmds = append(cmds, e.Command)
	}
	want := append([]string{"printf out; printf err >&2; cat; exit 7"}, tricky...)
	if len(cmds) != len(want)+20+3 || !slices.Equal(cmds[:len(want)], want) {
		t.Fatalf("logged %q", cmds)
	}
	concurrent := slices.Clone(cmds[len(want) : len(want)+20])
	slices.Sort(concurrent)
	for i := range 20 {
		if !slices.Contains(concurrent, fmt.Sprintf("echo %d %s", i, strings.Repeat("x", 5000))) {
			t.Errorf("concurrent session %d not logged whole", i)
		}
	}
	if got := cmds[len(cmds)-3:]; !slices.Equal(got, []string{"sftp", `sftp open "/srv/x" flags WRITE`, `sftp close "/srv/x" bytes read 0 written 3`}) {
		t.Errorf("sftp logged %q", got)
	}
}

// TestAuditShellSession: drover's shell session is logged once, then each
// command it is handed through drover_session_hook.
func TestAuditShellSession(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "audit.sh")
	if err := os.WriteFile(script, auditScript, 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "web1.log")
	session := "# drover shell session\nfor c in 'echo one\n' 'DROVER_TERM=3; two\n'; do drover_session_hook \"$c\"; done; echo ran"
	out, _, code := runAudit(t, script, logPath, "/none", session, nil)
	if out != "ran\n" || code != 0 {
		t.Errorf("session: stdout %q, exit %d", out, code)
	}
	entries, err := readAuditLog(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, e := range entries {
		cmds = append(cmds, e.Command)
	}
	if want := []string{"drover shell session", "in session: echo one", "in session: DROVER_TERM=3; two"}; !slices.Equal(cmds, want) {
		t.Errorf("logged %q, want %q", cmds, want)
	}
}

func TestPlanHAProxyTCP(t *testing.T) {
	l := planLab()
	if _, err := l.Plan(PlanParams{Version: "v1", Artifact: "/a.tgz", HAProxyTCP: true}); err == nil {
		t.Error("HAProxyTCP without an address: no error")
	}
	l.HAProxyAddress = "10.200.0.2:9999"
	b, err := l.Plan(PlanParams{Version: "v1", Artifact: "/a.tgz", HAProxyTCP: true})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		LB struct {
			HAProxy map[string]string `yaml:"haproxy"`
		} `yaml:"load_balancer"`
	}
	if err := yaml.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got.LB.HAProxy, map[string]string{"address": "10.200.0.2:9999"}) {
		t.Errorf("haproxy = %v\n%s", got.LB.HAProxy, b)
	}
	b, _ = l.Plan(PlanParams{Version: "v1", Artifact: "/a.tgz"})
	got.LB.HAProxy = nil
	if err := yaml.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got.LB.HAProxy, map[string]string{"socket": "/lab/haproxy.sock"}) {
		t.Errorf("haproxy = %v\n%s", got.LB.HAProxy, b)
	}
}

// fakeRuntimeAPI serves a unix socket like HAProxy's: each line is answered
// with "did: <line>\n"; without "prompt" the connection closes after the
// first line.
func fakeRuntimeAPI(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				prompt := false
				for {
					line, err := r.ReadString('\n')
					if line == "" && err != nil {
						return
					}
					line = strings.TrimSuffix(line, "\n")
					switch {
					case line == "prompt":
						prompt = true
						io.WriteString(c, "\n> ")
					case line == "quit":
						return
					default:
						io.WriteString(c, "did: "+line+"\n\n")
						if prompt {
							io.WriteString(c, "> ")
						}
					}
					if !prompt {
						return
					}
				}
			}()
		}
	}()
}

func TestRelay(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "h.sock")
	fakeRuntimeAPI(t, sock)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "admin.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- serveRelay(ctx, ln, sock, logf, io.Discard) }()

	// send writes data (closing the write side if closeWrite), reads to EOF.
	send := func(data string, closeWrite bool) string {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, data); err != nil {
			t.Fatal(err)
		}
		if closeWrite {
			c.(*net.TCPConn).CloseWrite()
		}
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		return string(b)
	}
	start := time.Now()
	// drover's driver: one line, write side left open, read to EOF.
	if got := send("set server web/web1 state maint\n", false); got != "did: set server web/web1 state maint\n\n" {
		t.Errorf("one command: %q", got)
	}
	if got := send("show stat; show info\r\n", false); got != "did: show stat; show info\r\n\n" {
		t.Errorf("two commands: %q", got)
	}
	if got := send("show backend", true); got != "did: show backend\n\n" {
		t.Errorf("no newline: %q", got)
	}
	if got := send("prompt\nshow stat\nset weight web/web2 0\nquit\n", false); got != "\n> did: show stat\n\n> did: set weight web/web2 0\n\n> " {
		t.Errorf("prompt mode: %q", got)
	}
	end := time.Now()
	cancel()
	if err := <-served; err != nil {
		t.Errorf("serveRelay: %v", err)
	}
	entries, err := readAuditLog(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, e := range entries {
		if e.From != "127.0.0.1" || e.Time.Before(start) || e.Time.After(end) {
			t.Errorf("entry %v", e)
		}
		cmds = append(cmds, e.Command)
	}
	want := []string{"set server web/web1 state maint", "show stat", "show info", "show backend",
		"prompt", "show stat", "set weight web/web2 0", "quit"}
	if !slices.Equal(cmds, want) {
		t.Errorf("logged %q\nwant %q", cmds, want)
	}
}
