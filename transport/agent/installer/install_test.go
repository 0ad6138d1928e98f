package installer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/drover-dev/drover/plans"
)

const testCA = "-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n"

// fakeConn is a Conn made of functions.
type fakeConn struct {
	run   func(ctx context.Context, cmd string, out io.Writer) error
	put   func(ctx context.Context, path string, r io.Reader, mode fs.FileMode) error
	close func() error
}

func (f *fakeConn) Run(ctx context.Context, cmd string, out io.Writer) error {
	return f.run(ctx, cmd, out)
}
func (f *fakeConn) Put(ctx context.Context, path string, r io.Reader, mode fs.FileMode) error {
	return f.put(ctx, path, r, mode)
}
func (f *fakeConn) Close() error {
	if f.close == nil {
		return nil
	}
	return f.close()
}

// simHost is a simulated host behind a fakeConn: files, systemd or not,
// whether the agent runs. It answers the scripts by their step marker, so
// it tests Install's decisions, not the shell (the local and lab tests do).
type simHost struct {
	mu      sync.Mutex
	l       layout
	machine string
	systemd bool
	files   map[string]simFile
	running bool // systemd: unit active; else: supervisor alive
	enabled bool

	steps   []string // steps run, in order
	puts    []string // paths written, in order
	failPut string   // a Put of this path fails
	starts  int      // agent (re)starts of any kind
}

type simFile struct {
	data []byte
	mode fs.FileMode
}

func newSim(dir string, systemd bool) *simHost {
	return &simHost{l: newLayout(dir), machine: "x86_64", systemd: systemd, files: map[string]simFile{}}
}

// enroll does what the agent does once it joined.
func (s *simHost) enroll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[s.l.Cert] = simFile{data: []byte("cert"), mode: 0o600}
}

func (s *simHost) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps, s.puts, s.starts = nil, nil, 0
}

func (s *simHost) file(p string) (simFile, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[p]
	return f, ok
}

func (s *simHost) conn() Conn {
	return &fakeConn{
		run: func(ctx context.Context, cmd string, out io.Writer) error {
			first, _, _ := strings.Cut(cmd, "\n")
			step, ok := strings.CutPrefix(first, markerPrefix)
			if !ok {
				return fmt.Errorf("sim: a script without a step marker: %q", first)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			s.steps = append(s.steps, step)
			return s.step(step, out)
		},
		put: func(ctx context.Context, p string, r io.Reader, mode fs.FileMode) error {
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if p == s.failPut {
				return errors.New("no space left on device")
			}
			s.puts = append(s.puts, p)
			s.files[p] = simFile{data: b, mode: mode}
			return nil
		},
	}
}

func (s *simHost) step(step string, out io.Writer) error {
	l := s.l
	switch step {
	case stepProbe:
		fmt.Fprintf(out, "os Linux\narch %s\n", s.machine)
		if s.systemd {
			fmt.Fprintln(out, "systemd")
		}
		if s.running {
			fmt.Fprintln(out, "running")
		}
		if s.systemd && s.enabled {
			fmt.Fprintln(out, "enabled")
		}
		if _, ok := s.files[l.Cert]; ok {
			fmt.Fprintln(out, "enrolled")
		}
		for _, p := range []string{l.Bin, l.Config, l.CA, l.Script, l.Unit} {
			if f, ok := s.files[p]; ok {
				fmt.Fprintf(out, "sha %s %s\n", sum(f.data), p)
			}
		}
	case stepPrepare:
	case stepStartSystemd:
		if !s.systemd {
			return errors.New("systemctl: not found")
		}
		if _, ok := s.files[l.Unit]; !ok {
			return errors.New("Unit drover-agent.service not found.")
		}
		s.running, s.enabled = true, true
		s.starts++
	case stepStartSupervisor:
		if _, ok := s.files[l.Script]; !ok {
			return errors.New("sh: supervise.sh: not found")
		}
		s.running = true
		s.starts++
	case stepRestartAgent:
		if !s.running {
			return errors.New("no supervisor")
		}
		s.starts++
	case stepUninstall:
		var found []string
		if _, ok := s.files[l.Unit]; ok {
			found = append(found, "systemd")
			delete(s.files, l.Unit)
		} else if s.running {
			found = append(found, "supervisor")
		}
		s.running, s.enabled = false, false
		files := false
		for p := range s.files {
			if strings.HasPrefix(p, l.Dir+"/") {
				delete(s.files, p)
				files = true
			}
		}
		if files {
			found = append(found, "files")
		}
		fmt.Fprintf(out, "found %s\n", strings.Join(found, " "))
	default:
		return fmt.Errorf("sim: unknown step %q", step)
	}
	return nil
}

// fixture is a set of simulated hosts and the Options that reach them.
type fixture struct {
	t      *testing.T
	hosts  map[string]*simHost
	out    *bytes.Buffer
	tokens atomic.Int32
	bin    string
	opts   Options
}

func newFixture(t *testing.T, systemd bool, names ...string) *fixture {
	f := &fixture{t: t, hosts: map[string]*simHost{}, out: &bytes.Buffer{}}
	for _, n := range names {
		f.hosts[n] = newSim(DefaultDir, systemd)
	}
	f.bin = filepath.Join(t.TempDir(), "drover")
	f.setBinary("v1")
	var outMu sync.Mutex
	f.opts = Options{
		Binary: func(goarch string) (string, error) {
			if goarch != "amd64" {
				return "", fmt.Errorf("no drover binary for linux/%s: build one with GOARCH=%s", goarch, goarch)
			}
			return f.bin, nil
		},
		CA:           []byte(testCA),
		Coordinators: []string{"10.200.0.5:7443", "10.200.0.6:7443"},
		Token: func(ctx context.Context, host string) (string, error) {
			f.tokens.Add(1)
			return "SECRET-TOKEN-" + host, nil
		},
		Dial: func(ctx context.Context, t Target) (Conn, error) {
			h, ok := f.hosts[t.Name]
			if !ok {
				return nil, fmt.Errorf("dial %s: connection refused", t.Host.Address)
			}
			return h.conn(), nil
		},
		Out: lockedWriter{&outMu, f.out},
	}
	return f
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

func (f *fixture) setBinary(version string) {
	f.t.Helper()
	if err := os.WriteFile(f.bin, []byte("drover binary "+version), 0o755); err != nil {
		f.t.Fatal(err)
	}
}

func targets(names ...string) []Target {
	var ts []Target
	for _, n := range names {
		ts = append(ts, Target{Name: n, Host: plans.Host{Name: n, Address: n + ":22"}})
	}
	return ts
}

func (f *fixture) install(names ...string) []Result {
	f.t.Helper()
	for _, h := range f.hosts {
		h.reset()
	}
	res, err := Install(context.Background(), targets(names...), f.opts)
	if err != nil {
		f.t.Fatalf("Install: %v\n%s", err, f.out)
	}
	return res
}

func one(t *testing.T, res []Result, want Result) {
	t.Helper()
	if len(res) != 1 || res[0] != want {
		t.Fatalf("results = %+v, want [%+v]", res, want)
	}
}

func TestInstallFirstRunSupervisor(t *testing.T) {
	f := newFixture(t, false, "web1")
	h := f.hosts["web1"]
	res := f.install("web1")
	one(t, res, Result{Host: "web1", Action: ActionInstalled, Supervisor: SupervisorDrover})

	l := h.l
	bin, _ := h.file(l.Bin)
	if string(bin.data) != "drover binary v1" || bin.mode != 0o755 {
		t.Errorf("bin/drover = %q %v", bin.data, bin.mode)
	}
	cfg, _ := h.file(l.Config)
	wantCfg := `name: "web1"
coordinators: ["10.200.0.5:7443", "10.200.0.6:7443"]
ca: "/opt/drover-agent/ca.crt"
state_dir: "/opt/drover-agent/state"
token_file: "/opt/drover-agent/join.token"
`
	if !strings.HasSuffix(string(cfg.data), wantCfg) {
		t.Errorf("agent.yaml =\n%s\nwant (after the comment)\n%s", cfg.data, wantCfg)
	}
	if ca, _ := h.file(l.CA); string(ca.data) != testCA {
		t.Errorf("ca.crt = %q", ca.data)
	}
	tok, ok := h.file(l.Token)
	if !ok || string(tok.data) != "SECRET-TOKEN-web1" || tok.mode != 0o600 {
		t.Errorf("join.token = %q %v (present %v), want the token, 0600", tok.data, tok.mode, ok)
	}
	if sc, ok := h.file(l.Script); !ok || sc.mode != 0o755 || !strings.Contains(string(sc.data), `"$D/bin/drover" agent run --config "$D/agent.yaml"`) {
		t.Errorf("supervise.sh = %q %v", sc.data, sc.mode)
	}
	if _, ok := h.file(l.Unit); ok {
		t.Error("a systemd unit was written on a host without systemd")
	}
	if want := []string{stepProbe, stepPrepare, stepStartSupervisor}; !slices.Equal(h.steps, want) {
		t.Errorf("steps = %v, want %v", h.steps, want)
	}
	if f.tokens.Load() != 1 {
		t.Errorf("Token called %d times, want 1", f.tokens.Load())
	}
	out := f.out.String()
	if !strings.Contains(out, "no systemd on web1: running under drover's supervisor, /opt/drover-agent/run/supervise.sh") {
		t.Errorf("Out does not say which supervisor runs the agent:\n%s", out)
	}
	if strings.Contains(out, "SECRET") {
		t.Errorf("Out shows the token:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.Contains(line, "web1") {
			t.Errorf("progress line %q does not name its host", line)
		}
	}
}

func TestInstallSecondRunUnchanged(t *testing.T) {
	for _, systemd := range []bool{false, true} {
		t.Run(fmt.Sprintf("systemd=%v", systemd), func(t *testing.T) {
			f := newFixture(t, systemd, "web1")
			h := f.hosts["web1"]
			f.install("web1")
			h.enroll()
			res := f.install("web1")
			sup := SupervisorDrover
			if systemd {
				sup = SupervisorSystemd
			}
			one(t, res, Result{Host: "web1", Action: ActionUnchanged, Supervisor: sup})
			if !slices.Equal(h.steps, []string{stepProbe}) || len(h.puts) != 0 || h.starts != 0 {
				t.Errorf("an unchanged run did steps %v, wrote %v, started %d times", h.steps, h.puts, h.starts)
			}
			if f.tokens.Load() != 1 {
				t.Errorf("Token called %d times, want 1 (the host is enrolled)", f.tokens.Load())
			}
		})
	}
}

func TestInstallUpgradeWhenBinaryChanges(t *testing.T) {
	t.Run("supervisor", func(t *testing.T) {
		f := newFixture(t, false, "web1")
		h := f.hosts["web1"]
		f.install("web1")
		h.enroll()
		f.setBinary("v2")
		one(t, f.install("web1"), Result{Host: "web1", Action: ActionUpgraded, Supervisor: SupervisorDrover})
		if !slices.Equal(h.puts, []string{h.l.Bin}) {
			t.Errorf("wrote %v, want only the binary", h.puts)
		}
		// The supervisor stays; it starts the new agent.
		if want := []string{stepProbe, stepPrepare, stepRestartAgent}; !slices.Equal(h.steps, want) {
			t.Errorf("steps = %v, want %v", h.steps, want)
		}
		if b, _ := h.file(h.l.Bin); string(b.data) != "drover binary v2" {
			t.Errorf("bin/drover = %q", b.data)
		}
	})
	t.Run("systemd", func(t *testing.T) {
		f := newFixture(t, true, "web1")
		h := f.hosts["web1"]
		f.install("web1")
		h.enroll()
		f.setBinary("v2")
		one(t, f.install("web1"), Result{Host: "web1", Action: ActionUpgraded, Supervisor: SupervisorSystemd})
		if want := []string{stepProbe, stepPrepare, stepStartSystemd}; !slices.Equal(h.steps, want) {
			t.Errorf("steps = %v, want %v", h.steps, want)
		}
	})
	t.Run("config", func(t *testing.T) {
		f := newFixture(t, false, "web1")
		h := f.hosts["web1"]
		f.install("web1")
		h.enroll()
		f.opts.Coordinators = []string{"10.200.0.7:7443"}
		one(t, f.install("web1"), Result{Host: "web1", Action: ActionUpgraded, Supervisor: SupervisorDrover})
		if !slices.Equal(h.puts, []string{h.l.Config}) || h.starts != 1 {
			t.Errorf("wrote %v, started %d times; want agent.yaml, one restart", h.puts, h.starts)
		}
	})
}

func TestInstallTokenOnlyWhenNotEnrolled(t *testing.T) {
	f := newFixture(t, false, "web1", "web2")
	f.hosts["web1"].enroll() // enrolled before (an earlier install)
	f.install("web1", "web2")
	if n := f.tokens.Load(); n != 1 {
		t.Errorf("Token called %d times, want 1 (web2 only)", n)
	}
	if _, ok := f.hosts["web1"].file(f.hosts["web1"].l.Token); ok {
		t.Error("a join token was written on an enrolled host")
	}
	if _, ok := f.hosts["web2"].file(f.hosts["web2"].l.Token); !ok {
		t.Error("no join token on the host that is not enrolled")
	}

	// Still not enrolled on the next run (say, the coordinators were
	// unreachable): a fresh token, and the agent restarted to use it.
	h := f.hosts["web2"]
	one(t, f.install("web2"), Result{Host: "web2", Action: ActionUpgraded, Supervisor: SupervisorDrover})
	if n := f.tokens.Load(); n != 2 {
		t.Errorf("Token called %d times in all, want 2", n)
	}
	if !slices.Equal(h.puts, []string{h.l.Token}) || h.starts != 1 {
		t.Errorf("wrote %v, started %d times; want join.token, one restart", h.puts, h.starts)
	}

	// No token source and nothing enrolled: an error naming the host.
	f.opts.Token = nil
	_, err := Install(context.Background(), targets("web2"), f.opts)
	if err == nil || !strings.HasPrefix(err.Error(), "web2: join token: ") {
		t.Errorf("err = %v, want web2: join token: ...", err)
	}
}

func TestInstallSystemd(t *testing.T) {
	f := newFixture(t, true, "web1")
	h := f.hosts["web1"]
	one(t, f.install("web1"), Result{Host: "web1", Action: ActionInstalled, Supervisor: SupervisorSystemd})
	u, ok := h.file(UnitPath)
	if !ok || u.mode != 0o644 {
		t.Fatalf("unit = %v %v", ok, u.mode)
	}
	for _, want := range []string{
		"ExecStart=/opt/drover-agent/bin/drover agent run --config /opt/drover-agent/agent.yaml\n",
		"Restart=always\n", "RestartSec=1\n", "WantedBy=multi-user.target\n",
	} {
		if !strings.Contains(string(u.data), want) {
			t.Errorf("unit lacks %q:\n%s", want, u.data)
		}
	}
	if _, ok := h.file(h.l.Script); ok {
		t.Error("supervise.sh written on a systemd host")
	}
	if want := []string{stepProbe, stepPrepare, stepStartSystemd}; !slices.Equal(h.steps, want) {
		t.Errorf("steps = %v, want %v", h.steps, want)
	}
	if strings.Contains(f.out.String(), "supervisor") {
		t.Errorf("Out mentions the supervisor on a systemd host:\n%s", f.out)
	}

	// Stopped (by hand): started again, nothing written.
	h.enroll()
	h.running = false
	one(t, f.install("web1"), Result{Host: "web1", Action: ActionUpgraded, Supervisor: SupervisorSystemd})
	if len(h.puts) != 0 || !slices.Equal(h.steps, []string{stepProbe, stepStartSystemd}) {
		t.Errorf("wrote %v, steps %v", h.puts, h.steps)
	}
}

func TestInstallSupervisorNotRunning(t *testing.T) {
	f := newFixture(t, false, "web1")
	h := f.hosts["web1"]
	f.install("web1")
	h.enroll()
	h.running = false // the host rebooted: nothing starts the supervisor
	one(t, f.install("web1"), Result{Host: "web1", Action: ActionUpgraded, Supervisor: SupervisorDrover})
	if len(h.puts) != 0 || !slices.Equal(h.steps, []string{stepProbe, stepStartSupervisor}) {
		t.Errorf("wrote %v, steps %v", h.puts, h.steps)
	}
}

func TestUninstall(t *testing.T) {
	for _, systemd := range []bool{false, true} {
		t.Run(fmt.Sprintf("systemd=%v", systemd), func(t *testing.T) {
			f := newFixture(t, systemd, "web1")
			h := f.hosts["web1"]
			f.install("web1")
			sup := SupervisorDrover
			if systemd {
				sup = SupervisorSystemd
			}
			res, err := Uninstall(context.Background(), targets("web1"), Options{Dial: f.opts.Dial, Out: f.out})
			if err != nil {
				t.Fatal(err)
			}
			one(t, res, Result{Host: "web1", Action: ActionUninstalled, Supervisor: sup})
			if len(h.files) != 0 || h.running {
				t.Errorf("left files %v, running %v", h.files, h.running)
			}
			res, err = Uninstall(context.Background(), targets("web1"), Options{Dial: f.opts.Dial})
			if err != nil {
				t.Fatal(err)
			}
			one(t, res, Result{Host: "web1", Action: ActionAbsent})
		})
	}
}

func TestErrorsNameTheirHost(t *testing.T) {
	f := newFixture(t, false, "web1", "web2", "web3")
	f.hosts["web2"].failPut = f.hosts["web2"].l.Bin
	f.hosts["web3"].machine = "mips"
	res, err := Install(context.Background(), targets("web1", "web2", "web3", "web4"), f.opts)
	one(t, res, Result{Host: "web1", Action: ActionInstalled, Supervisor: SupervisorDrover})
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		"web2: upload drover: no space left on device",
		`web3: detect architecture: unsupported machine type "mips"`,
		"web4: connect: dial web4:22: connection refused",
	}
	if len(lines) != len(want) {
		t.Fatalf("errors:\n%v\nwant %d", err, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("error %d = %q, want it to start with %q", i, lines[i], w)
		}
	}
	if f.hosts["web2"].starts != 0 {
		t.Error("web2 started an agent after a failed upload")
	}

	// An arch without a local binary: the Binary func's advice comes through.
	f.hosts["web1"].machine = "aarch64"
	_, err = Install(context.Background(), targets("web1"), f.opts)
	if err == nil || !strings.Contains(err.Error(), "web1: drover binary for linux/arm64: no drover binary for linux/arm64: build one with GOARCH=arm64") {
		t.Errorf("err = %v", err)
	}
}

func TestInstallParallelBound(t *testing.T) {
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("web%d", i+1))
	}
	f := newFixture(t, false, names...)
	var cur, peak atomic.Int32
	dial := f.opts.Dial
	f.opts.Parallel = 3
	f.opts.Dial = func(ctx context.Context, t Target) (Conn, error) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		c, err := dial(ctx, t)
		if err != nil {
			cur.Add(-1)
			return nil, err
		}
		return &fakeConn{run: c.Run, put: c.Put, close: func() error { cur.Add(-1); return nil }}, nil
	}
	if res := f.install(names...); len(res) != 20 {
		t.Fatalf("%d results", len(res))
	}
	if p := peak.Load(); p > 3 || p < 1 {
		t.Errorf("peak concurrency %d, want 1..3", p)
	}
}

func TestOptionsChecked(t *testing.T) {
	f := newFixture(t, false, "web1")
	for name, mod := range map[string]func(*Options){
		"relative dir": func(o *Options) { o.Dir = "opt/agent" },
		"root dir":     func(o *Options) { o.Dir = "/" },
		"dir blank":    func(o *Options) { o.Dir = "/opt/my agent" },
		"dir unclean":  func(o *Options) { o.Dir = "/opt/../etc" },
		"dir percent":  func(o *Options) { o.Dir = "/opt/a%i" },
		"no binary":    func(o *Options) { o.Binary = nil },
		"no CA":        func(o *Options) { o.CA = nil },
		"no coords":    func(o *Options) { o.Coordinators = nil },
	} {
		o := f.opts
		mod(&o)
		if _, err := Install(context.Background(), targets("web1"), o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Install(context.Background(), targets("web1", "web1"), f.opts); err == nil {
		t.Error("a host listed twice: no error")
	}
	if len(f.hosts["web1"].steps) != 0 {
		t.Error("bad options reached a host")
	}
}

func TestGoarch(t *testing.T) {
	for m, want := range map[string]string{"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"} {
		if got, err := goarch(m); got != want || err != nil {
			t.Errorf("goarch(%q) = %q, %v", m, got, err)
		}
	}
	for _, m := range []string{"i686", "riscv64", ""} {
		if _, err := goarch(m); err == nil {
			t.Errorf("goarch(%q): no error", m)
		}
	}
}

// TestScriptsAreValidShell checks every generated script with sh -n (and
// dash and bash --posix where installed), and the quoting helper.
func TestScriptsAreValidShell(t *testing.T) {
	l := newLayout("/opt/drover-agent")
	scripts := map[string]string{
		"probe":      probeScript(l),
		"prepare":    prepareScript(l),
		"systemd":    startSystemdScript(l),
		"supervisor": startSupervisorScript(l),
		"restart":    restartAgentScript(l),
		"uninstall":  uninstallScript(l),
		"supervise":  supervisorScript(l),
	}
	shells := [][]string{{"sh", "-n"}}
	if _, err := exec.LookPath("dash"); err == nil {
		shells = append(shells, []string{"dash", "-n"})
	}
	if _, err := exec.LookPath("bash"); err == nil {
		shells = append(shells, []string{"bash", "--posix", "-n"})
	}
	for name, s := range scripts {
		for _, sh := range shells {
			cmd := exec.Command(sh[0], sh[1:]...)
			cmd.Stdin = strings.NewReader(s)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s: %s: %v\n%s", name, sh[0], err, out)
			}
		}
	}
}
