package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/health"
	"github.com/drover-dev/drover/internal/oneline"
	"github.com/drover-dev/drover/internal/tail"
	"github.com/drover-dev/drover/plans"
)

// pipeline is the order every host goes through, in both phases.
var pipeline = []deploy.Stage{
	deploy.StageDrain, deploy.StageInstall, deploy.StageActivate,
	deploy.StageVerify, deploy.StageEnable,
}

// StageError is a host's failure in one stage, with the bounded output of
// the command that failed, if any.
type StageError struct {
	Host   string
	Stage  deploy.Stage
	Output string
	Err    error
}

func (e *StageError) Error() string { return fmt.Sprintf("%s: %s: %v", e.Host, e.Stage, e.Err) }
func (e *StageError) Unwrap() error { return e.Err }

// record writes a host's stage to the store. A refusal stops the engine:
// nothing may be done that the store does not know about.
func (r *run) record(ctx context.Context, host string, st deploy.Stage, ph deploy.Phase, target, msg string) error {
	err := r.e.d.Store.Apply(ctx, &deploy.SetHostStage{
		ID: r.id, Host: host, Stage: st, Phase: ph, Target: target, Error: msg, At: r.e.d.Now().UTC(),
	})
	if err != nil {
		return &fatalError{fmt.Errorf("record %s %s: %w", host, st, err)}
	}
	return nil
}

// drive runs the pipeline for one host from stage `from` on. Each stage is
// recorded before it starts; each is idempotent, so a stage recorded but
// interrupted is simply run again on resume.
func (r *run) drive(ctx context.Context, name string, ph deploy.Phase, target string, from deploy.Stage, stages []deploy.Stage) error {
	i := 0
	for j, st := range stages {
		if st == from {
			i = j
		}
	}
	for ; i < len(stages); i++ {
		st := stages[i]
		if st == deploy.StageDrain {
			// Before the drain is recorded: a host refused here stays
			// untouched.
			if err := r.admit(ctx, r.hosts[name]); err != nil {
				if isFatal(ctx, err) {
					return err
				}
				return &StageError{Host: name, Stage: st, Err: err}
			}
		}
		// verify only reads (health probes): it needs no record of its own,
		// which saves an fsynced Raft round trip per host. A host that dies
		// in verify is resumed from activate, which is safe to repeat.
		if st != deploy.StageVerify {
			if err := r.record(ctx, name, st, ph, target, ""); err != nil {
				return err
			}
		}
		r.mark(name, Event{Kind: EventStage, Host: name, Stage: st, Phase: ph, Version: target})
		if err := r.stage(ctx, name, st, ph, target); err != nil {
			if isFatal(ctx, err) {
				return err
			}
			var se *StageError
			if !errors.As(err, &se) {
				err = &StageError{Host: name, Stage: st, Err: err}
			}
			return err
		}
	}
	if err := r.record(ctx, name, deploy.StageDone, ph, target, ""); err != nil {
		return err
	}
	r.mark(name, Event{Kind: EventHostDone, Host: name, Phase: ph, Version: target})
	return nil
}

// mark emits ev with the time spent since the host's previous mark.
func (r *run) mark(name string, ev Event) {
	now := time.Now()
	r.mu.Lock()
	if t, ok := r.began[name]; ok {
		ev.Elapsed = now.Sub(t)
	}
	r.began[name] = now
	r.mu.Unlock()
	r.emit(ev)
}

func (r *run) stage(ctx context.Context, name string, st deploy.Stage, ph deploy.Phase, target string) error {
	h := r.hosts[name]
	// The restart, health checks and hooks that go with target.
	p := r.checks(ctx, name, ph, target)
	switch st {
	case deploy.StageDrain:
		return r.drain(ctx, h, ph, target)
	case deploy.StageInstall:
		return r.install(ctx, h, ph, target)
	case deploy.StageActivate:
		return r.activate(ctx, p, h, ph, target)
	case deploy.StageVerify:
		return r.verify(ctx, p, h, target)
	case deploy.StageEnable:
		return r.enable(ctx, p, h, ph, target)
	}
	return fmt.Errorf("unknown stage %q", st)
}

// conn returns the host's connection, dialling it once per deployment run
// (or again after the run let go of it), once a prune of the host has
// finished with it.
func (r *run) conn(ctx context.Context, h plans.Host) (Host, error) {
	if err := r.waitPrune(ctx, h.Name); err != nil {
		return nil, err
	}
	return r.openConn(ctx, h)
}

// exec runs cmd on h with the plan's command timeout, capturing output.
func (r *run) exec(ctx context.Context, h plans.Host, st deploy.Stage, ph deploy.Phase, what, cmd string) (string, error) {
	c, err := r.conn(ctx, h)
	if err != nil {
		return "", &StageError{Host: h.Name, Stage: st, Err: err}
	}
	return r.execOn(ctx, c, h, st, ph, what, cmd)
}

// execOn is exec on connection c. The command's output is recorded in the
// run's logbook, stdout and stderr apart; a failure carries its last lines
// with their clock times, and is recorded after them.
func (r *run) execOn(ctx context.Context, c Host, h plans.Host, st deploy.Stage, ph deploy.Phase, what, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.plan.SSH.CommandTimeout)
	defer cancel()
	// drover's own probes are recorded only when they fail.
	quiet := st == deploy.StagePending || what == whatLookForRelease
	out := r.capture(h.Name, st, ph, what, quiet)
	err := c.Run(ctx, cmd, out)
	out.end(err != nil)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			err = fmt.Errorf("timed out after %s: %w", r.plan.SSH.CommandTimeout, err)
		}
		// Even when the command ran out of time: its output says why.
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), logFlushTimeout)
		r.book.flush(fctx)
		fcancel()
		return out.stdout(), &StageError{Host: h.Name, Stage: st, Output: recordedOutput(out.lastLines(), nil),
			Err: fmt.Errorf("%s: %w", r.redact(what), err)}
	}
	return out.stdout(), nil
}

// runCaptured runs cmd on c within timeout and returns its output (the
// last maxOutput bytes).
func runCaptured(ctx context.Context, c Host, timeout time.Duration, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := tail.New(maxOutput)
	err := c.Run(ctx, cmd, out)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	return out.String(), err
}

// whatLookForRelease describes install's probe for a release on the host.
const whatLookForRelease = "look for the release"

// releaseDir is where a version lives on a host.
func (r *run) releaseDir(version string) string {
	return path.Join(r.plan.Release.Path, "releases", version)
}

// hooks runs the plan's hooks for a stage, from the release being moved to
// (or the release path when that release is not on the host yet).
func (r *run) hooks(ctx context.Context, h plans.Host, st deploy.Stage, ph deploy.Phase, target string, cmds []string) error {
	for _, cmd := range cmds {
		script := hookScript(r.releaseDir(target), r.plan.Release.Path, h.Name, target, string(ph), cmd)
		if _, err := r.exec(ctx, h, st, ph, "hook "+oneline.First(cmd, 120), script); err != nil {
			return err
		}
	}
	return nil
}

// drain takes the host out of rotation. Idempotent: draining a drained
// server returns at once.
func (r *run) drain(ctx context.Context, h plans.Host, ph deploy.Phase, target string) error {
	if ph == deploy.PhaseRollout {
		if err := r.hooks(ctx, h, deploy.StageDrain, ph, target, r.plan.Hooks.BeforeDrain); err != nil {
			return err
		}
	}
	if r.lb == nil || h.LBServer == "" {
		return nil
	}
	if err := r.lb.Drain(ctx, h.LBServer); err != nil {
		return err // the driver names the server
	}
	return nil
}

// install puts the release in <path>/releases/<version>. Idempotent: a
// release that is already complete (marker file) is not uploaded again;
// a half-unpacked one is replaced.
func (r *run) install(ctx context.Context, h plans.Host, ph deploy.Phase, target string) error {
	dir := r.releaseDir(target)
	marker := path.Join(dir, ".drover-release")
	out, err := r.exec(ctx, h, deploy.StageInstall, ph, whatLookForRelease, releasePresentScript(marker))
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) == "present" {
		return r.hooks(ctx, h, deploy.StageInstall, ph, target, r.afterInstall(ph))
	}
	if ph == deploy.PhaseRollback || r.art == nil {
		return fmt.Errorf("release %s is not on the host any more (pruned or removed by hand): nothing to go back to", target)
	}
	staging := r.plan.UploadPath()
	f, err := os.Open(r.art.Path)
	if err != nil {
		return fmt.Errorf("open artifact: %w", err)
	}
	defer f.Close()
	c, err := r.conn(ctx, h)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, r.plan.SSH.CommandTimeout)
	err = c.Put(pctx, staging, f, 0o600)
	cancel()
	if err != nil {
		return fmt.Errorf("upload %s: %w", path.Base(r.art.Path), err)
	}
	tmp := path.Join(r.plan.Release.Path, "releases", "."+target+".tmp")
	script := unpackScript(r.art.SHA256, staging, tmp, dir, r.plan.Release.StripComponents)
	if _, err := r.exec(ctx, h, deploy.StageInstall, ph, "verify and unpack the release", script); err != nil {
		return err
	}
	return r.hooks(ctx, h, deploy.StageInstall, ph, target, r.afterInstall(ph))
}

func (r *run) afterInstall(ph deploy.Phase) []string {
	if ph == deploy.PhaseRollback || r.kind != deploy.KindDeploy {
		return nil // the old release's install already ran them
	}
	return r.plan.Hooks.AfterInstall
}

// activate points `current` at the release with an atomic rename, then
// restarts. Idempotent: the link is re-pointed and the restart re-run.
func (r *run) activate(ctx context.Context, p *plans.Plan, h plans.Host, ph deploy.Phase, target string) error {
	base := r.plan.Release.Path
	link := r.plan.CurrentLink()
	tmp := path.Join(base, ".current.drover-tmp")
	// One session for both steps: each session costs a round trip and a
	// remote shell start.
	script := activateScript(target, tmp, link, p.Release.Restart)
	what := "switch current and restart: " + oneline.First(p.Release.Restart, 120)
	if _, err := r.exec(ctx, h, deploy.StageActivate, ph, what, script); err != nil {
		return err
	}
	return r.hooks(ctx, h, deploy.StageActivate, ph, target, p.Hooks.AfterActivate)
}

// verify waits for the plan's health check to pass on the host.
func (r *run) verify(ctx context.Context, p *plans.Plan, h plans.Host, target string) error {
	// The connection is only dialled if the check runs a command: an HTTP
	// or TCP check must work even when the host's SSH does not.
	chk, pol, err := r.e.d.Health(p, h, target, &lazyHost{r: r, h: h})
	if err != nil {
		return err
	}
	// Each probe's result is an event: the live view shows the last one
	// while a host is in verify. It is recorded (with the verify's ctx, not
	// the probe's own) when it changes.
	probe := health.CheckerFunc(func(pctx context.Context) error {
		err := chk.Check(pctx)
		ev := Event{Kind: EventProbe, Host: h.Name, Stage: deploy.StageVerify, Version: target, Message: "ok"}
		if err != nil && pctx.Err() == nil {
			ev.Message, ev.Error = "", err.Error()
		}
		if err == nil || pctx.Err() == nil {
			r.report(ctx, ev)
		}
		return err
	})
	if err := health.WaitHealthy(ctx, probe, pol); err != nil && ctx.Err() == nil {
		// A wrong URL or port fails every host alike: say where the
		// check is written.
		return fmt.Errorf("%s: %w", p.Where(healthKey(p.Health)), err)
	} else if err != nil {
		return err
	}
	return nil
}

// enable puts the host back and waits until the balancer reports it UP.
func (r *run) enable(ctx context.Context, p *plans.Plan, h plans.Host, ph deploy.Phase, target string) error {
	if r.lb != nil && h.LBServer != "" {
		if err := r.lb.Enable(ctx, h.LBServer); err != nil {
			return err // the driver names the server
		}
		r.release(h) // back in rotation: hosts waiting on min_in_service may go
	}
	return r.hooks(ctx, h, deploy.StageEnable, ph, target, p.Hooks.AfterEnable)
}

// preflight checks every host before anything is touched: reachable with a
// verified host key, known to the balancer, tools present, disk enough.
func (r *run) preflight(ctx context.Context, d deploy.Deployment) error {
	names := d.HostNames()
	errs := eachLimit(names, r.plan.HostConcurrency(), func(name string) error { return r.preflightHost(ctx, r.hosts[name]) })
	pe := newPreflightError(r.plan, r.hosts, names, errs)
	if pe.first == nil && r.kind == deploy.KindRollback {
		if err := r.keptCheck(d); err != nil {
			pe.first = err
			pe.add("", err)
		}
	}
	if pe.first == nil {
		return nil
	}
	return pe
}

// keptCheck: a rollback goes only to releases that every one of its hosts
// still keeps (release.keep of them, see prune), so that it is refused
// before any host is drained rather than failing in install. The refusal
// lists what is there to go back to.
func (r *run) keptCheck(d deploy.Deployment) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var missing, named []string
	targets := map[string]bool{}
	var common []string
	for i, name := range d.HostNames() {
		kept, target := r.kept[name], d.Hosts[name].Target
		if !slices.Contains(kept, target) {
			missing = append(missing, name)
			named = append(named, name+" ("+target+")")
			targets[target] = true
		}
		if i == 0 {
			common = slices.Clone(kept)
		} else {
			common = slices.DeleteFunc(common, func(v string) bool { return !slices.Contains(kept, v) })
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(common)
	avail := "none"
	if len(common) > 0 {
		avail = strings.Join(common, ", ")
	}
	what := "rollback: " + strings.Join(named, ", ")
	if len(targets) == 1 {
		what = "rollback to " + d.Hosts[missing[0]].Target + ": " + strings.Join(missing, ", ")
	}
	return fmt.Errorf("%s: %w; releases kept on every host: %s", what, ErrReleaseNotKept, avail)
}

// ErrReleaseNotKept means a rollback's release is gone from a host
// (pruned by release.keep, or removed by hand).
var ErrReleaseNotKept = errors.New("release not kept on the host (pruned by release.keep, or removed)")

func (r *run) preflightHost(ctx context.Context, h plans.Host) error {
	// What the warm-up (StartWarm) read is not read again, but a preflight
	// script that failed there runs again here.
	if r.lb != nil && h.LBServer != "" {
		warm, err := r.warm.checked(ctx, h)
		if !warm {
			err = r.lb.Check(ctx, h.LBServer)
		}
		if err != nil {
			return fmt.Errorf("%s: load balancer: %w", h.Name, err)
		}
	}
	if _, err := r.conn(ctx, h); err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	out, ok := r.warm.preflighted(h)
	if !ok {
		var err error
		out, err = r.exec(ctx, h, deploy.StagePending, "", "check tools and disk", preflightScript(r.plan.Release.Path))
		if err != nil {
			return fmt.Errorf("%s: %w (output: %s)", h.Name, err, out)
		}
	}
	var freeText string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "current="); ok {
			r.mu.Lock()
			r.observed[h.Name] = path.Base(v)
			r.mu.Unlock()
		}
		if v, ok := strings.CutPrefix(line, "free="); ok {
			freeText = v
		}
		if v, ok := strings.CutPrefix(line, "release="); ok {
			r.mu.Lock()
			r.kept[h.Name] = append(r.kept[h.Name], v)
			r.mu.Unlock()
		}
	}
	if r.art == nil {
		return nil
	}
	freeKB, err := strconv.ParseInt(strings.TrimSpace(freeText), 10, 64)
	if err != nil {
		return fmt.Errorf("%s: could not read free disk space from %q", h.Name, out)
	}
	need := r.art.Size + r.art.Unpacked
	if freeKB*1024 < need {
		return fmt.Errorf("%s: not enough disk under %s: %d KiB free, the release needs %d KiB",
			h.Name, r.plan.Release.Path, freeKB, need/1024)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// lazyHost dials the host on first use.
type lazyHost struct {
	r *run
	h plans.Host
}

func (l *lazyHost) Run(ctx context.Context, cmd string, out io.Writer) error {
	c, err := l.r.conn(ctx, l.h)
	if err != nil {
		return err
	}
	return c.Run(ctx, cmd, out)
}

func (l *lazyHost) Put(ctx context.Context, p string, rd io.Reader, mode fs.FileMode) error {
	c, err := l.r.conn(ctx, l.h)
	if err != nil {
		return err
	}
	return c.Put(ctx, p, rd, mode)
}

// Close is a no-op: the run owns the connection.
func (l *lazyHost) Close() error { return nil }
