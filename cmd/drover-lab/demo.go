package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/drover-dev/drover/lab"
)

// deployStep is one `drover deploy` of the demo.
type deployStep struct {
	title    string
	plan     string
	wantExit int

	ran      bool
	exit     int
	duration time.Duration
	err      error // could not run, or killed
}

func (d *deployStep) ok() bool { return d.ran && d.err == nil && d.exit == d.wantExit }

// finished records how a run that began at start ended: err is what
// running drover returned, dctx the context that bounded it.
func (d *deployStep) finished(dctx context.Context, start time.Time, err error) {
	d.duration, d.ran = time.Since(start), true
	var ee *exec.ExitError
	switch {
	case dctx.Err() != nil:
		d.exit, d.err = -1, fmt.Errorf("stopped: %w", dctx.Err())
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		d.exit = ee.ExitCode()
	case err != nil:
		d.exit, d.err = -1, err
	}
}

// cmdDemo: up a lab, install v1, then under load roll out v2 (batch 2) and a
// broken v3 that must roll back; print a summary and fail on any surprise.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	droverBin := fs.String("drover", "./bin/drover", "the drover binary")
	hosts := fs.Int("hosts", 6, "web hosts")
	concurrency := fs.Int("concurrency", 8, "load generator clients")
	batch := fs.Int("batch", 2, "batch size of the v2 and v3 rollouts")
	withCluster := fs.Bool("cluster", true, "then roll v4 out through a 3-node coordinator cluster and kill its leader mid-rollout")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	drover, err := filepath.Abs(*droverBin)
	if err != nil {
		return err
	}
	if st, err := os.Stat(drover); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("drover binary %s not found or not executable (build it first, or pass --drover PATH)", drover)
	}

	start := time.Now()
	coords := 0
	if *withCluster {
		coords = 3
	}
	l, err := lab.Up(ctx, lab.Options{Hosts: *hosts, Coordinators: coords, Log: stderr})
	if err != nil {
		return err
	}
	defer func() {
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("teardown: %w", derr))
		}
	}()
	fmt.Fprintf(stdout, "== lab %s: %d web hosts behind HAProxy %s (up in %v)\n", l.ID, len(l.Hosts), l.FrontendURL, time.Since(start).Round(time.Millisecond))

	artDir := filepath.Join(l.Dir, "artifacts")
	type art struct {
		version string
		broken  bool
	}
	paths := map[string]string{}
	for _, a := range []art{{"v1", false}, {"v2", false}, {"v3", true}, {"v4", false}} {
		p, err := lab.BuildArtifact(ctx, artDir, a.version, a.broken)
		if err != nil {
			return err
		}
		paths[a.version] = p
	}
	fmt.Fprintf(stdout, "== artifacts v1, v2, v3 (broken: /health answers 500) in %s\n", artDir)

	b := fmt.Sprint(*batch)
	steps := []*deployStep{
		{title: "v1 first install (batch 100%)", wantExit: 0},
		{title: fmt.Sprintf("v2 rolling, batch %s, under load", b), wantExit: 0},
		{title: fmt.Sprintf("v3 broken, batch %s, under load", b), wantExit: 3},
	}
	params := []lab.PlanParams{
		{Version: "v1", Artifact: paths["v1"], Batch: "100%", AllowFullOutage: true}, // nothing serves yet
		{Version: "v2", Artifact: paths["v2"], Batch: b},
		{Version: "v3", Artifact: paths["v3"], Batch: b},
	}
	final := "v2"
	if *withCluster {
		steps = append(steps, &deployStep{title: "v4 via 3-node cluster, leader killed", wantExit: 0})
		params = append(params, lab.PlanParams{Version: "v4", Artifact: paths["v4"], Batch: b, HAProxyTCP: true, MinHealthyTime: 300 * time.Millisecond})
		final = "v4"
	}
	for i, p := range params {
		steps[i].plan = filepath.Join(l.Dir, "plans", p.Version+".yaml")
		if err := l.WritePlan(steps[i].plan, p); err != nil {
			return err
		}
	}
	dataDir := filepath.Join(l.Dir, "state")

	var problems []string
	sum := &summary{lab: l, steps: steps, batch: *batch, final: final}
	defer func() { sum.print(stdout, problems) }()
	fail := func(msg string) error {
		problems = append(problems, msg)
		return errors.New("demo failed")
	}

	// 1. First install onto empty hosts, no load yet.
	runDeploy(ctx, l, drover, dataDir, steps[0], stdout)
	if !steps[0].ok() {
		return fail(fmt.Sprintf("the v1 install did not succeed (exit %d %s); stopping", steps[0].exit, errOrEmpty(steps[0].err)))
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = l.WaitInRotation(wctx)
	cancel()
	if err != nil {
		return fail("after v1: " + err.Error())
	}

	// 2. and 3. under load, watched by the sampler.
	sampler := l.StartSampler(10 * time.Millisecond)
	load, err := l.StartLoad(ctx, *concurrency)
	if err != nil {
		sampler.Stop()
		return fail("load generator: " + err.Error())
	}
	fmt.Fprintf(stdout, "== load: %d clients on %s\n", *concurrency, l.FrontendURL)
	pause(ctx, time.Second) // steady traffic before the rollout
	runDeploy(ctx, l, drover, dataDir, steps[1], stdout)
	if steps[1].ok() {
		pause(ctx, 500*time.Millisecond)
		runDeploy(ctx, l, drover, dataDir, steps[2], stdout)
	}
	if *withCluster && steps[2].ok() {
		pause(ctx, 500*time.Millisecond)
		if err := runClusterDeploy(ctx, l, drover, steps[3], stdout); err != nil {
			steps[3].err = err
		}
	}
	pause(ctx, 500*time.Millisecond) // traffic after the last rollout
	sum.load, sum.loadErr = load.Stop()
	sum.maxOut, sum.samples = sampler.Stop()
	_, sum.maxAt, sum.maxSet = sampler.Max()
	sum.sampleErrs = sampler.Errors()

	// Every host back in rotation, and on which version.
	sum.finalOut, sum.finalSet, sum.finalErr = l.OutOfRotation(ctx)
	sum.served = map[string]string{}
	for _, h := range l.Hosts {
		v, err := l.ServedVersion(ctx, h.Name)
		if err != nil {
			v = "error: " + err.Error()
		}
		sum.served[h.Name] = v
	}
	problems = sum.check(ctx.Err())
	if len(problems) > 0 {
		return errors.New("demo failed")
	}
	return nil
}

// pause waits d or until ctx ends: a deliberate stretch of traffic.
func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// runDeploy runs `drover deploy PLAN --data-dir DIR` in the control
// namespace, streaming its output.
func runDeploy(ctx context.Context, l *lab.Lab, drover, dataDir string, s *deployStep, stdout io.Writer) {
	if ctx.Err() != nil {
		return
	}
	fmt.Fprintf(stdout, "== drover deploy %s  (%s; want exit %d)\n", filepath.Base(s.plan), s.title, s.wantExit)
	dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := l.Command(dctx, drover, "deploy", s.plan, "--data-dir", dataDir)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	pw := &prefixWriter{w: stdout, prefix: "   | "}
	cmd.Stdout = pw
	cmd.Stderr = pw
	start := time.Now()
	s.finished(dctx, start, cmd.Run())
	pw.flush()
	fmt.Fprintf(stdout, "== exit %d after %v\n", s.exit, s.duration.Round(time.Millisecond))
}

type summary struct {
	lab   *lab.Lab
	steps []*deployStep
	batch int
	final string // the version every host must serve at the end

	load            lab.Result
	loadErr         error
	maxOut, samples int
	maxAt           time.Time
	maxSet          []string
	sampleErrs      int
	served          map[string]string
	finalOut        int
	finalSet        []string
	finalErr        error
}

// check returns what went wrong.
func (s *summary) check(interrupted error) []string {
	var p []string
	if interrupted != nil {
		p = append(p, "interrupted: "+interrupted.Error())
	}
	for _, st := range s.steps {
		switch {
		case !st.ran:
			p = append(p, fmt.Sprintf("%s: not run", st.title))
		case !st.ok():
			p = append(p, fmt.Sprintf("%s: exit %d, want %d %v", st.title, st.exit, st.wantExit, errOrEmpty(st.err)))
		}
	}
	if s.loadErr != nil {
		p = append(p, "load generator: "+s.loadErr.Error())
	} else {
		if s.load.Failures > 0 {
			p = append(p, fmt.Sprintf("%d of %d requests failed", s.load.Failures, s.load.Requests))
		}
		if s.load.Requests == 0 {
			p = append(p, "the load generator made no request")
		}
	}
	if s.samples == 0 {
		p = append(p, "the sampler could not read HAProxy")
	} else if s.maxOut > s.batch {
		p = append(p, fmt.Sprintf("%d servers were out of rotation at once (%v), the batch allows %d", s.maxOut, s.maxSet, s.batch))
	}
	if s.finalErr != nil {
		p = append(p, "reading HAProxy at the end: "+s.finalErr.Error())
	} else if s.finalOut != 0 {
		p = append(p, fmt.Sprintf("%v out of rotation at the end", s.finalSet))
	}
	for _, h := range s.lab.Hosts {
		if v := s.served[h.Name]; v != s.final {
			p = append(p, fmt.Sprintf("%s serves %q, want %s", h.Name, v, s.final))
		}
	}
	return p
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return "(" + err.Error() + ")"
}

func (s *summary) print(w io.Writer, problems []string) {
	fmt.Fprintf(w, "\n================ drover demo summary (lab %s, %d hosts) ================\n", s.lab.ID, len(s.lab.Hosts))
	for _, st := range s.steps {
		mark := "ok"
		if !st.ok() {
			mark = "FAIL"
		}
		if !st.ran {
			fmt.Fprintf(w, "  %-36s not run                            %s\n", st.title, mark)
			continue
		}
		fmt.Fprintf(w, "  %-36s exit %d (want %d)  %8v   %s\n", st.title, st.exit, st.wantExit, st.duration.Round(time.Millisecond), mark)
	}
	if s.loadErr == nil && s.load.Requests > 0 {
		fmt.Fprintf(w, "  requests through HAProxy: %d in %v, failed: %d\n", s.load.Requests, s.load.Elapsed.Round(time.Millisecond), s.load.Failures)
		fmt.Fprintf(w, "    answered by version: %v\n", s.load.ByVersion)
		for _, e := range s.load.FirstErrors {
			fmt.Fprintf(w, "    error: %s\n", e)
		}
	}
	if s.samples > 0 {
		fmt.Fprintf(w, "  max servers out of rotation: %d %v (allowed %d; %d samples)\n", s.maxOut, s.maxSet, s.batch, s.samples)
	}
	if len(s.served) > 0 {
		var parts []string
		for _, h := range s.lab.Hosts {
			parts = append(parts, h.Name+"="+s.served[h.Name])
		}
		fmt.Fprintf(w, "  hosts now serve: %s\n", strings.Join(parts, " "))
	}
	if len(problems) == 0 {
		fmt.Fprintln(w, "  RESULT: PASS")
		return
	}
	fmt.Fprintln(w, "  RESULT: FAIL")
	for _, p := range problems {
		fmt.Fprintln(w, "    - "+p)
	}
}

// prefixWriter prefixes every line; safe for stdout and stderr at once.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    bytes.Buffer
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf.Write(b)
	for {
		i := bytes.IndexByte(p.buf.Bytes(), '\n')
		if i < 0 {
			break
		}
		line := p.buf.Next(i + 1)
		fmt.Fprintf(p.w, "%s%s", p.prefix, line)
	}
	return len(b), nil
}

func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.buf.Len() > 0 {
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf.String())
		p.buf.Reset()
	}
}
