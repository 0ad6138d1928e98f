package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/oneline"
	"github.com/drover-dev/drover/lab"
	"github.com/drover-dev/drover/orchestrator"
)

// TestFleetBench is bench/fleet.sh's measurement, not a test: on one lab
// per fleet size and rc file setting, it rolls a release with drover, with
// a bash loop of ssh and runtime-API calls (bench/fleet-loop.sh) and with
// Ansible (bench/fleet-ansible.yml), each under HTTP load, and writes one
// tab-separated line per run to $DROVER_FLEET_REPORT. It runs only when
// that variable is set. DROVER_FLEET_SIZES ("8/2,50/10,200/40") and
// DROVER_FLEET_TOOLS ("drover,loop,ansible") narrow it.
func TestFleetBench(t *testing.T) {
	report := os.Getenv("DROVER_FLEET_REPORT")
	if report == "" {
		t.Skip("a benchmark: run bench/fleet.sh")
	}
	needLab(t)
	out, err := os.OpenFile(report, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	sizes := envOr("DROVER_FLEET_SIZES", "8/2,50/10,200/40")
	tools := envOr("DROVER_FLEET_TOOLS", "drover,loop,ansible")
	for _, size := range strings.Split(sizes, ",") {
		n, batch, ok := strings.Cut(size, "/")
		hosts, err1 := strconv.Atoi(n)
		if _, err2 := strconv.Atoi(batch); !ok || err1 != nil || err2 != nil {
			t.Fatalf("DROVER_FLEET_SIZES: %q is not HOSTS/BATCH", size)
		}
		for _, rc := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s rc=%v", size, rc), func(t *testing.T) {
				s := newSessionWith(t, lab.Options{Hosts: hosts, SlowRC: rc})
				fb := &fleetBench{s: s, batch: batch, shim: stockSocketShim(t, s.lab.HAProxySocket)}
				fb.deploy("v1") // the first install, not measured
				for i, tool := range strings.Split(tools, ",") {
					if tool == "ansible" && hosts > 50 {
						continue // the issue lets Ansible skip 200 hosts
					}
					r := fb.measure(tool, fmt.Sprintf("v%d", i+2))
					if r.err != nil {
						t.Errorf("%s: %v", tool, r.err)
						r.outside = "FAILED: " + oneline.First(r.err.Error(), 200)
					}
					fmt.Fprintf(out, "%d\t%s\t%v\t%s\t%.2f\t%d\t%d\t%.1f\t%.1f\t%.1f\t%s\t%s\n",
						hosts, batch, rc, tool, r.seconds, r.failed, r.maxOut, r.sessions, r.inSession, r.roundTrips, r.outside, r.rss)
					if r.err != nil {
						// The hosts are on no known version: later tools
						// would measure a repair, not a deploy.
						break
					}
				}
			})
		}
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

type fleetBench struct {
	s     *session
	batch string
	shim  string
}

type benchResult struct {
	seconds                         float64
	failed, maxOut                  int
	sessions, inSession, roundTrips float64 // per host
	outside, rss                    string  // drover only
	err                             error   // the tool failed
}

// plan is drover's plan: the stock runtime socket, no shim (the baselines
// use fb.shim).
func (fb *fleetBench) plan(version string) string {
	return fb.s.plan(version, false, fb.batch)
}

// deploy rolls version with drover and returns the run.
func (fb *fleetBench) deploy(version string) *drover {
	t := fb.s.t
	code, d := fb.s.run("deploy", fb.plan(version))
	if code != 0 {
		t.Fatalf("drover deploy %s: exit %d\n%s", version, code, d.stdout.text())
	}
	return d
}

func (fb *fleetBench) measure(tool, version string) benchResult {
	t := fb.s.t
	l := fb.s.lab
	planPath := fb.plan(version) // builds the artifact before the clock starts
	art := fb.s.arts[version+"-false"]
	before := auditCounts(t, l)
	ld, err := l.StartLoad(context.Background(), 4)
	if err != nil {
		t.Fatal(err)
	}
	smp := l.StartSampler(20 * time.Millisecond)
	var r benchResult
	start := time.Now()
	switch tool {
	case "drover":
		code, d := fb.s.run("deploy", planPath)
		r.seconds = time.Since(start).Seconds()
		if code != 0 {
			t.Fatalf("drover deploy %s: exit %d\n%s", version, code, d.stdout.text())
		}
		r.outside = outsideBatches(d, start, time.Now())
		t.Logf("drover %s stages (median, max over hosts): %s", version, stageTrace(d))
		if ru, ok := d.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			r.rss = fmt.Sprintf("%d MiB, CPU %.2f s", ru.Maxrss/1024, cpu.Seconds())
		}
	case "loop":
		r.err = fb.runLoop(art, version)
		r.seconds = time.Since(start).Seconds()
		if tr, err := os.ReadFile(fb.loopTrace()); err == nil {
			t.Logf("loop %s stages (median, max over hosts): %s", version, loopTrace(string(tr)))
		}
	case "ansible":
		r.err = fb.runAnsible(art, version)
		r.seconds = time.Since(start).Seconds()
	default:
		t.Fatalf("unknown tool %q", tool)
	}
	smp.Stop()
	var at time.Time
	var set []string
	if r.maxOut, at, set = smp.Max(); r.maxOut > 0 {
		t.Logf("%s %s: most out of rotation %d at +%s: %s", tool, version, r.maxOut, at.Sub(start).Round(time.Millisecond), strings.Join(set, " "))
	}
	res, err := ld.Stop()
	if err != nil {
		t.Fatal(err)
	}
	r.failed = res.Failures
	if r.err != nil {
		return r
	}
	fb.s.expectAllOn(version)
	after := auditCounts(t, l)
	n := float64(len(l.Hosts))
	for h, a := range after {
		b := before[h]
		r.sessions += float64(a.sessions-b.sessions) / n
		r.inSession += float64(a.inSession-b.inSession) / n
		r.roundTrips += float64(2*(a.sessions-b.sessions)+a.inSession-b.inSession+a.sftpOps-b.sftpOps) / n
	}
	t.Logf("%s %s: %.2fs, %d failed requests, max %d out of rotation, per host %.1f sessions %.1f in-session commands",
		tool, version, r.seconds, r.failed, r.maxOut, r.sessions, r.inSession)
	return r
}

// outsideBatches is what drover spent outside the batches: from the
// process start to the first batch (start and preflight), and from the
// last host done to the process exit (finish and prune).
func outsideBatches(d *drover, start, end time.Time) string {
	var started, firstBatch, lastDone, preflight, finished time.Time
	for _, ev := range d.stdout.all() {
		switch ev.Kind {
		case orchestrator.EventStarted:
			started = ev.Time
		case orchestrator.EventPreflight:
			preflight = ev.Time
		case orchestrator.EventBatch:
			if firstBatch.IsZero() {
				firstBatch = ev.Time
			}
		case orchestrator.EventHostDone, orchestrator.EventHostSkipped:
			lastDone = ev.Time
		case orchestrator.EventFinished:
			finished = ev.Time
		}
	}
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	return fmt.Sprintf("%d ms (run started +%d, preflight done +%d, 1st batch +%d; last host done to finished %d, to exit %d)",
		ms(firstBatch.Sub(start)+end.Sub(lastDone)), ms(started.Sub(start)), ms(preflight.Sub(start)), ms(firstBatch.Sub(start)),
		ms(finished.Sub(lastDone)), ms(end.Sub(lastDone)))
}

// stageTrace is how long each stage of drover's hosts took: the median and
// the longest over the hosts, from the stage events' Elapsed.
func stageTrace(d *drover) string {
	took := map[deploy.Stage][]time.Duration{}
	last := map[string]deploy.Stage{}
	for _, ev := range d.stdout.all() {
		switch ev.Kind {
		case orchestrator.EventStage, orchestrator.EventHostDone:
			if st, ok := last[ev.Host]; ok {
				took[st] = append(took[st], ev.Elapsed)
			}
			last[ev.Host] = ev.Stage
		}
	}
	var b strings.Builder
	for _, st := range []deploy.Stage{deploy.StageDrain, deploy.StageInstall, deploy.StageActivate, deploy.StageVerify, deploy.StageEnable} {
		fmt.Fprintf(&b, "%s %s; ", st, medianMax(took[st]))
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// loopTrace reads bench/fleet-loop.sh's trace ("MS HOST STEP" lines, each
// step's end) into how long each step took: median and longest over hosts.
func loopTrace(tr string) string {
	type mark struct {
		step string
		at   int64
	}
	byHost := map[string][]mark{}
	for _, line := range strings.Split(strings.TrimSpace(tr), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		ms, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		byHost[f[1]] = append(byHost[f[1]], mark{f[2], ms})
	}
	took := map[string][]time.Duration{}
	var order []string
	for _, ms := range byHost {
		for i := 1; i < len(ms); i++ {
			if _, ok := took[ms[i].step]; !ok {
				order = append(order, ms[i].step)
			}
			took[ms[i].step] = append(took[ms[i].step], time.Duration(ms[i].at-ms[i-1].at)*time.Millisecond)
		}
	}
	var b strings.Builder
	for _, st := range order {
		fmt.Fprintf(&b, "%s %s; ", st, medianMax(took[st]))
	}
	return strings.TrimSuffix(b.String(), "; ")
}

func medianMax(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	slices.Sort(ds)
	return fmt.Sprintf("%d/%d ms", ds[len(ds)/2].Milliseconds(), ds[len(ds)-1].Milliseconds())
}

type auditCount struct{ sessions, inSession, sftpOps int }

// auditCounts counts each host's SSH sessions, commands run inside drover's
// shell session, and SFTP operations, from the host audit.
func auditCounts(t *testing.T, l *lab.Lab) map[string]auditCount {
	t.Helper()
	out := map[string]auditCount{}
	for _, h := range l.HostNames() {
		es, err := l.HostAudit(h)
		if err != nil {
			t.Fatal(err)
		}
		var c auditCount
		for _, e := range es {
			switch {
			case strings.HasPrefix(e.Command, "in session: "):
				c.inSession++
			case strings.HasPrefix(e.Command, "sftp "):
				c.sftpOps++
			default:
				c.sessions++
			}
		}
		out[h] = c
	}
	return out
}

func (fb *fleetBench) hostsFile() string {
	l := fb.s.lab
	var b strings.Builder
	for _, h := range l.Hosts {
		fmt.Fprintf(&b, "%s %s %s\n", h.Name, h.Address, h.LBServer)
	}
	p := filepath.Join(l.Dir, "bench-hosts.txt")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		fb.s.t.Fatal(err)
	}
	return p
}

func repoFile(t *testing.T, rel string) string {
	t.Helper()
	root, err := lab.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, rel)
}

func (fb *fleetBench) runLoop(art, version string) error {
	t, l := fb.s.t, fb.s.lab
	args := append([]string{fb.hostsFile(), fb.batch, art, version, fb.shim, l.ReleasePath, strconv.Itoa(l.AppPort)}, l.SSHArgs()...)
	cmd := l.Command(context.Background(), repoFile(t, "bench/fleet-loop.sh"), args...)
	os.Remove(fb.loopTrace())
	cmd.Env = append(os.Environ(), "DROVER_LOOP_TRACE="+fb.loopTrace())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bench/fleet-loop.sh: %v\n%s", err, out)
	}
	return nil
}

// loopTrace is where bench/fleet-loop.sh writes when each host's steps end.
func (fb *fleetBench) loopTrace() string { return filepath.Join(fb.s.lab.Dir, "loop-trace.txt") }

func (fb *fleetBench) runAnsible(art, version string) error {
	t, l := fb.s.t, fb.s.lab
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		t.Skip("ansible-playbook not installed (apt-get install ansible)")
	}
	dir := filepath.Join(l.Dir, "ansible")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var inv strings.Builder
	inv.WriteString("[web]\n")
	for _, h := range l.Hosts {
		fmt.Fprintf(&inv, "%s ansible_host=%s\n", h.Name, h.Address)
	}
	sum, err := fileSHA256(art)
	if err != nil {
		t.Fatal(err)
	}
	vars, _ := json.Marshal(map[string]any{"batch": fb.batch, "artifact": art, "version": version, "sha256": sum,
		"socket": fb.shim, "release_path": l.ReleasePath, "app_port": l.AppPort})
	batch, _ := strconv.Atoi(fb.batch)
	cfg := fmt.Sprintf(`[defaults]
host_key_checking = True
forks = %d
interpreter_python = /usr/bin/python3
remote_user = root
private_key_file = %s
[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=%s -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes
`, max(batch, 5), l.IdentityFile, l.KnownHosts)
	for name, content := range map[string]string{"inventory": inv.String(), "vars.json": string(vars), "ansible.cfg": cfg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := l.Command(context.Background(), "ansible-playbook", "-i", filepath.Join(dir, "inventory"),
		repoFile(t, "bench/fleet-ansible.yml"), "-e", "@"+filepath.Join(dir, "vars.json"))
	cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+filepath.Join(dir, "ansible.cfg"), "ANSIBLE_LOCAL_TEMP="+filepath.Join(dir, "tmp"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ansible-playbook: %v\n%s", err, out)
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
