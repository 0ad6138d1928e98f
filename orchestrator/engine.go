// Package orchestrator is the engine that rolls a release across a fleet:
// batches in order, hosts of a batch in parallel, each host through
// drain -> install -> activate -> verify -> enable, a failure budget, and an
// automatic rollback through the same pipeline. Every stage transition is
// recorded in the replicated store before the stage's first side effect, so
// a deployment can be resumed from the store alone. See DESIGN.md here.
package orchestrator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/drover-dev/drover/analysis"
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/health"
	"github.com/drover-dev/drover/plans"
	"github.com/drover-dev/drover/raftstore"
)

// Errors callers test with errors.Is.
var (
	// ErrPreflight means the deployment was refused before any host was touched.
	ErrPreflight = errors.New("preflight failed")
	// ErrNothingToRollBack means a rollback was asked of hosts that have no
	// earlier stable release to return to.
	ErrNothingToRollBack = errors.New("nothing to roll back")
	// ErrNotResumable means the deployment has ended.
	ErrNotResumable = errors.New("deployment cannot be resumed")
)

// Store is what the engine needs from the replicated state.
type Store interface {
	Apply(ctx context.Context, c deploy.Command) error
	Deployment(id string) (deploy.Deployment, error)
	// Deployments lists every deployment in creation order (rollback finds
	// the plan that deployed the release it returns to).
	Deployments() []deploy.Deployment
	HostRecord(name string) deploy.HostRecord
	// Changed fires on the next change of the state (an operator's pause
	// or abort request among them).
	Changed() <-chan struct{}
}

// Deps are the engine's collaborators, passed in so that tests can use fakes.
type Deps struct {
	Store Store
	// Connector opens hosts for a plan (its SSH settings, its agents).
	Connector func(p *plans.Plan) (Connector, error)
	// Balancer returns the plan's load balancer, or nil when it has none.
	Balancer func(p *plans.Plan) (Balancer, error)
	// Health builds the checker for one host at one release.
	Health func(p *plans.Plan, h plans.Host, version string, host Host) (health.Checker, health.Policy, error)
	// Gates builds a plan's analysis gates over the run's balancer, once
	// per run (default PlanGates).
	Gates func(p *plans.Plan, lb Balancer) ([]analysis.Gate, error)
	// Events receives progress; it must not block for long. Optional.
	Events func(Event)
	// Now is the clock; the engine stamps commands with it (Apply never reads clocks).
	Now func() time.Time
	// Fence, when set, is called before every side effect on a host or the
	// balancer and returns the Raft term the action is taken under; an
	// error stops the engine (a deposed leader must not act). See fence.go.
	Fence func(ctx context.Context) (term uint64, err error)
	// ArtifactPath, when set, finds the archive of a deployment by its
	// SHA-256 (a coordinator fetches it from its peers if it lacks it);
	// otherwise the plan's release.artifact path is used.
	ArtifactPath func(ctx context.Context, sha256 string) (string, error)
	// KeepFinished is how many finished deployments the state keeps; each
	// new deployment prunes older ones first (0: raftstore's default).
	KeepFinished int
}

// Engine runs deployments recorded in the store.
type Engine struct {
	d Deps

	mu        sync.Mutex
	artifacts map[artifactKey]Artifact // inspected archives, so Submit then Run reads each once
	warm      map[string]*Warm         // by deployment ID: set-up started before Submit, for its run
}

// artifactKey names one version of a file: a rewritten artifact has another
// size or modification time, and is inspected again.
type artifactKey struct {
	path  string
	strip int // the entries are judged where they land
	size  int64
	mtime time.Time
}

// artifact inspects the archive at path once per file version.
func (e *Engine) artifact(path string, strip int) (Artifact, error) {
	k, err := keyOf(path, strip)
	if err != nil {
		return Artifact{}, err
	}
	e.mu.Lock()
	a, ok := e.artifacts[k]
	e.mu.Unlock()
	if ok {
		return a, nil
	}
	if a, err = InspectArtifact(path, strip); err != nil {
		return Artifact{}, err
	}
	e.remember(k, a)
	return a, nil
}

func (e *Engine) remember(k artifactKey, a Artifact) {
	e.mu.Lock()
	e.artifacts[k] = a
	e.mu.Unlock()
}

// keyOf names the version of the file at path that is there now.
func keyOf(path string, strip int) (artifactKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return artifactKey{}, fmt.Errorf("artifact: %w", err)
	}
	return artifactKey{path, strip, st.Size(), st.ModTime()}, nil
}

// New returns an engine. Store, Connector and Health are required.
func New(d Deps) *Engine {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Events == nil {
		d.Events = func(Event) {}
	}
	if d.Gates == nil {
		d.Gates = PlanGates
	}
	if d.Balancer == nil {
		d.Balancer = func(*plans.Plan) (Balancer, error) { return nil, nil }
	}
	return &Engine{d: d, artifacts: map[artifactKey]Artifact{}, warm: map[string]*Warm{}}
}

// SubmitOptions tune a new deployment.
type SubmitOptions struct {
	// Force redeploys hosts that already run the plan's version.
	Force bool
	// Warm, if set, was started (StartWarm) for this same plan: Submit
	// takes its artifact inspection and the deployment's run its
	// connections. The caller still closes it.
	Warm *Warm
	// By and Message are recorded with the deployment (deploy.Deployment).
	By, Message string
}

// Submit records a new deployment of p and returns its ID. Nothing is done
// to any host until Run.
func (e *Engine) Submit(ctx context.Context, p *plans.Plan, opts SubmitOptions) (string, error) {
	if opts.Warm != nil && opts.Warm.plan != p {
		return "", errors.New("submit: the warm-up was started for another plan")
	}
	var art Artifact
	var err error
	if opts.Warm != nil {
		var ka keyedArtifact
		if ka, err = opts.Warm.artifact(); err == nil {
			art = ka.Artifact
			e.remember(ka.key, art)
		}
	} else {
		art, err = e.artifact(p.Release.Artifact, p.Release.StripComponents)
	}
	if err != nil {
		return "", err
	}
	planJSON, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encode plan: %w", err)
	}
	now := e.d.Now().UTC()
	d := deploy.Deployment{
		ID:             newID(p.Name, now),
		Name:           p.Name,
		Version:        p.Version,
		Kind:           deploy.KindDeploy,
		Plan:           planJSON,
		ArtifactSHA256: art.SHA256,
		Force:          opts.Force,
		Hosts:          map[string]*deploy.HostProgress{},
		By:             opts.By,
		Message:        opts.Message,
	}
	for _, b := range p.Batches() {
		var names []string
		for _, h := range b {
			names = append(names, h.Name)
		}
		d.Batches = append(d.Batches, names)
	}
	if err := e.prune(ctx, now); err != nil {
		return "", err
	}
	if err := e.d.Store.Apply(ctx, &deploy.CreateDeployment{Deployment: d, At: now}); err != nil {
		if id, ok := raftstore.Applied(err); ok {
			return id, nil // a repeat of a submit that was recorded
		}
		return "", fmt.Errorf("record deployment: %w", err)
	}
	if opts.Warm != nil {
		e.mu.Lock()
		e.warm[d.ID] = opts.Warm
		e.mu.Unlock()
	}
	return d.ID, nil
}

// SubmitRollback records a deployment that takes the hosts of deployment
// `of` back to the stable release each had before it. Hosts that no longer
// run what `of` installed are left alone.
//
// With to set, it takes every host of `of` that does not run release to
// onto it instead (drover rollback --to): any release still kept on the
// hosts; the run's preflight refuses it, touching nothing, when a host
// does not keep it (see keptCheck).
func (e *Engine) SubmitRollback(ctx context.Context, of, to string) (string, error) {
	src, err := e.d.Store.Deployment(of)
	if err != nil {
		return "", err
	}
	if !src.State.Terminal() {
		return "", fmt.Errorf("%s is %s: stop it first (drover abort or let it finish): %w", of, src.State, ErrNotResumable)
	}
	now := e.d.Now().UTC()
	d := deploy.Deployment{
		ID:      newID(src.Name, now),
		Name:    src.Name,
		Version: "rollback of " + of,
		Kind:    deploy.KindRollback,
		Of:      of,
		Plan:    src.Plan,
		Hosts:   map[string]*deploy.HostProgress{},
	}
	if to != "" {
		d.Version = to
	}
	var unknown []string
	for _, batch := range src.Batches {
		var names []string
		for _, h := range batch {
			hp := src.Hosts[h]
			rec := e.d.Store.HostRecord(h)
			target := to
			switch {
			case to != "":
				if rec.Current == to {
					continue // there already
				}
			case hp == nil || rec.Current != hp.Target || rec.Current == hp.FromCurrent:
				continue // not on what `of` installed: not ours to revert
			case hp.FromCurrent == "":
				unknown = append(unknown, h)
				continue
			default:
				target = hp.FromCurrent
			}
			names = append(names, h)
			d.Hosts[h] = &deploy.HostProgress{Name: h, Target: target, Phase: deploy.PhaseRollout}
		}
		if len(names) > 0 {
			d.Batches = append(d.Batches, names)
		}
	}
	if len(d.Batches) == 0 && to != "" {
		return "", fmt.Errorf("every host of %s runs %s already: %w", of, to, ErrNothingToRollBack)
	}
	if len(d.Batches) == 0 {
		msg := fmt.Sprintf("no host of %s runs the release it installed", of)
		if len(unknown) > 0 {
			msg = fmt.Sprintf("the previous release of %v is unknown (first deploy)", unknown)
		}
		return "", fmt.Errorf("%s: %w", msg, ErrNothingToRollBack)
	}
	if err := e.prune(ctx, now); err != nil {
		return "", err
	}
	if err := e.d.Store.Apply(ctx, &deploy.CreateDeployment{Deployment: d, At: now}); err != nil {
		if id, ok := raftstore.Applied(err); ok {
			return id, nil
		}
		return "", fmt.Errorf("record rollback: %w", err)
	}
	return d.ID, nil
}

// ErrNothingToRepair means no host of the plan has a recorded release to
// bring it back to.
var ErrNothingToRepair = errors.New("nothing to repair")

// SubmitRepair records a deployment that brings every host of p to the
// release the store records for it (HostRecord.Current), healthy and in
// rotation, batch by batch with p's strategy: hosts already so are left
// alone, hosts out of rotation are verified and enabled, unhealthy ones are
// restarted, and hosts on another release are switched back (see
// reconcile). Hosts without a recorded release are not guessed at: they
// are returned in skipped.
func (e *Engine) SubmitRepair(ctx context.Context, p *plans.Plan) (id string, skipped []string, err error) {
	planJSON, err := json.Marshal(p)
	if err != nil {
		return "", nil, fmt.Errorf("encode plan: %w", err)
	}
	now := e.d.Now().UTC()
	d := deploy.Deployment{
		ID:      newID(p.Name, now),
		Name:    p.Name,
		Version: "recorded releases",
		Kind:    deploy.KindRepair,
		Plan:    planJSON,
		Hosts:   map[string]*deploy.HostProgress{},
	}
	for _, b := range p.Batches() {
		var names []string
		for _, h := range b {
			rec := e.d.Store.HostRecord(h.Name)
			if rec.Current == "" {
				skipped = append(skipped, h.Name)
				continue
			}
			names = append(names, h.Name)
			d.Hosts[h.Name] = &deploy.HostProgress{Name: h.Name, Target: rec.Current, Phase: deploy.PhaseRollout}
		}
		if len(names) > 0 {
			d.Batches = append(d.Batches, names)
		}
	}
	if len(d.Batches) == 0 {
		return "", skipped, fmt.Errorf("no host of %s has a recorded release (deploy it first): %w", p.Name, ErrNothingToRepair)
	}
	if err := e.prune(ctx, now); err != nil {
		return "", skipped, err
	}
	if err := e.d.Store.Apply(ctx, &deploy.CreateDeployment{Deployment: d, At: now}); err != nil {
		if id, ok := raftstore.Applied(err); ok {
			return id, skipped, nil
		}
		return "", skipped, fmt.Errorf("record repair: %w", err)
	}
	return d.ID, skipped, nil
}

// prune bounds the history before a deployment is added to it.
func (e *Engine) prune(ctx context.Context, now time.Time) error {
	if err := e.d.Store.Apply(ctx, &deploy.Prune{KeepFinished: e.d.KeepFinished, At: now}); err != nil {
		return fmt.Errorf("prune the history: %w", err)
	}
	return nil
}

func newID(name string, now time.Time) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%s-%s", name, now.Format("20060102-150405"), hex.EncodeToString(b[:]))
}

// Run drives deployment id until it ends, pauses, or ctx is cancelled, and
// returns the state it left the deployment in. Closing stop asks for a
// pause: no new host is started, hosts in flight finish their pipeline (so
// every host is in rotation on some release), and the deployment is
// recorded as paused. Cancelling ctx stops at once; the stages in flight
// are re-run on resume.
func (e *Engine) Run(ctx context.Context, stop <-chan struct{}, id string) (deploy.DeploymentState, error) {
	d, err := e.d.Store.Deployment(id)
	if err != nil {
		return "", err
	}
	if d.State.Terminal() {
		return d.State, fmt.Errorf("%s is %s: %w", id, d.State, ErrNotResumable)
	}
	e.mu.Lock()
	warm := e.warm[id]
	delete(e.warm, id) // one run takes it; a resume dials afresh
	e.mu.Unlock()
	r, err := e.newRun(ctx, d, stop)
	if err != nil {
		return d.State, err
	}
	r.warm = warm
	defer r.close()
	lctx, stopLog := context.WithCancel(ctx)
	defer stopLog()
	go r.book.loop(lctx)
	return r.run(ctx)
}
