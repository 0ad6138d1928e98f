package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/orchestrator"
	"github.com/drover-dev/drover/plans"
	"github.com/drover-dev/drover/raftstore"
)

// The API's collaborators (api.Node, api.Cluster, api.Deployments,
// api.Auth), implemented on the store and the engine.

// Status reports this node's view.
func (c *Coordinator) Status() api.NodeStatus {
	st := c.store.Stats()
	leader, _ := c.store.Leader()
	lc := int64(-1)
	if st.LastContact >= 0 {
		lc = st.LastContact.Milliseconds()
	}
	return api.NodeStatus{
		ID: c.cfg.NodeID, RaftAddr: c.cfg.RaftAddr, HTTPAddr: c.cfg.HTTPAddr,
		State: st.State, Leader: leader, LeaderHTTP: c.LeaderHTTP(),
		Term: st.Term, AppliedIndex: st.AppliedIndex, CommitIndex: st.CommitIndex,
		LastContactMS: lc, Version: c.cfg.Version,
	}
}

// IsLeader reports whether this node leads and has caught up with the
// log (its barrier, in lead): a leader elected a moment ago, not yet
// caught up, is not one the API serves reads or checks tokens on.
func (c *Coordinator) IsLeader() bool { return c.store.Serving() }

// LeaderChanged returns a channel closed at the next change of leader.
func (c *Coordinator) LeaderChanged() <-chan struct{} { return c.store.LeaderChanged() }

// LeaderHTTP is the leader's registered API address.
func (c *Coordinator) LeaderHTTP() string {
	id, _ := c.store.Leader()
	if id == "" {
		return ""
	}
	if id == c.cfg.NodeID {
		return c.cfg.HTTPAddr
	}
	return c.store.Nodes()[id].HTTPAddr
}

// Members lists the voters with their API addresses.
func (c *Coordinator) Members(ctx context.Context) ([]api.Member, error) {
	ms, err := c.store.Members()
	if err != nil {
		return nil, err
	}
	nodes := c.store.Nodes()
	out := make([]api.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, api.Member{ID: m.ID, RaftAddr: m.Address, HTTPAddr: nodes[m.ID].HTTPAddr, Voter: m.Voter, Leader: m.Leader})
	}
	return out, nil
}

// Join adds (or re-adds, or replaces) a coordinator. Leader only.
func (c *Coordinator) Join(ctx context.Context, req api.JoinRequest) error {
	if req.ID == "" || req.RaftAddr == "" || req.HTTPAddr == "" {
		return fmt.Errorf("join needs an id, a raft address and an API address: %w", api.ErrBadRequest)
	}
	if err := c.store.AddVoter(ctx, req.ID, req.RaftAddr); err != nil {
		return fmt.Errorf("add %s (%s): %w", req.ID, req.RaftAddr, err)
	}
	n := raftstore.Node{ID: req.ID, RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr}
	if err := c.store.Apply(ctx, &raftstore.RegisterNode{Node: n}); err != nil {
		return fmt.Errorf("register %s: %w", req.ID, err)
	}
	c.log.Info("member joined", "node", req.ID, "raft", req.RaftAddr, "api", req.HTTPAddr)
	return nil
}

// Remove takes a coordinator out of the cluster. Leader only.
func (c *Coordinator) Remove(ctx context.Context, id string) error {
	if err := c.store.RemoveServer(ctx, id); err != nil {
		if errors.Is(err, raftstore.ErrUnknownMember) {
			return fmt.Errorf("%s: %w: %w", id, err, api.ErrNotFound)
		}
		return fmt.Errorf("remove %s: %w", id, err)
	}
	if err := c.store.Apply(ctx, &raftstore.ForgetNode{ID: id}); err != nil {
		return fmt.Errorf("forget %s: %w", id, err)
	}
	c.log.Info("member removed", "node", id)
	return nil
}

// Submit validates the plan on this (leader) node, with the artifact
// found by its digest, and records the deployment; the engine picks it up.
func (c *Coordinator) Submit(ctx context.Context, req api.SubmitRequest) (string, error) {
	if !c.store.IsLeader() {
		return "", raftstore.ErrNotLeader
	}
	if id, ok := c.repeated(ctx); ok {
		return id, nil
	}
	name := req.PlanName
	if name == "" {
		name = "plan.yaml"
	}
	opts := requestOptions(req.Vars, req.Set)
	// The leader sends the webhooks: their keys must be in its environment
	// (plans accepts only DROVER_WEBHOOK_* names, so nothing else is probed).
	opts.SenderEnv, opts.Sender = os.LookupEnv, "coordinator "+c.cfg.NodeID+", the leader: set it on every coordinator"
	draft := plans.Decode(name, []byte(req.Plan), opts)
	// The archive is this cluster's copy, found by its digest, not the
	// file the plan names; a problem is reported at release.artifact.
	artifact, err := "", errors.New("upload the artifact first (its SHA-256 is missing from the request)")
	if req.ArtifactSHA256 != "" {
		artifact, err = c.arts.Path(ctx, req.ArtifactSHA256)
	}
	if err != nil {
		draft.Reject("release.artifact", err)
	}
	p, err := draft.Resolve(plans.Files{Artifact: plans.ArtifactUnchecked, Allowed: &plans.AllowedFiles{Paths: c.cfg.PlanFiles}})
	if err != nil {
		return "", badRequest{err}
	}
	p.Release.Artifact = artifact
	id, err := c.engine.Submit(ctx, p, orchestrator.SubmitOptions{Force: req.Force, By: req.By, Message: req.Message})
	if errors.Is(err, orchestrator.ErrBadArtifact) || errors.Is(err, orchestrator.ErrUnsafeArtifact) {
		return "", badRequest{err}
	}
	return id, err
}

// requestOptions resolves a sent plan's variables from the request only
// (vars and set): the coordinator's environment holds its own secrets, and
// a plan is written by an API client.
func requestOptions(vars, set map[string]string) plans.Options {
	return plans.Options{
		Env: func(name string) (string, bool) {
			v, ok := vars[name]
			return v, ok
		},
		Set: set,
	}
}

// List returns every deployment, oldest first.
func (c *Coordinator) List() []deploy.Deployment { return c.store.Deployments() }

// Get returns one deployment.
func (c *Coordinator) Get(id string) (deploy.Deployment, error) { return c.store.Deployment(id) }

// Act records an operator's lifecycle action, as deploy.Decide rules for a
// deployment that this cluster's leader supervises.
func (c *Coordinator) Act(ctx context.Context, id string, a api.Action) error {
	d, err := c.store.Deployment(id)
	if err != nil {
		return err
	}
	if _, ok := c.repeated(ctx); ok {
		return nil
	}
	cmd, err := deploy.Decide(&d, a, deploy.Supervised, time.Now().UTC())
	if errors.Is(err, deploy.ErrUnknownAction) {
		return fmt.Errorf("unknown action %q: %w", a, api.ErrBadRequest)
	}
	if err != nil {
		return err
	}
	return c.apply(ctx, cmd)
}

// Rollback records an operator's rollback of a finished deployment.
func (c *Coordinator) Rollback(ctx context.Context, id, to string) (string, error) {
	if rid, ok := c.repeated(ctx); ok {
		return rid, nil
	}
	rid, err := c.engine.SubmitRollback(ctx, id, to)
	if errors.Is(err, orchestrator.ErrNothingToRollBack) || errors.Is(err, orchestrator.ErrNotResumable) {
		return "", fmt.Errorf("%w: %w", err, api.ErrConflict)
	}
	return rid, err
}

// Logs answers a query for recorded command output, from this node's copy
// of the replicated state.
func (c *Coordinator) Logs(q deploy.LogQuery) (deploy.LogPage, error) { return c.store.Logs(q) }

// Repair records a repair of the plan in req (its text, or deployment
// Of's plan), the same as `drover repair` with the embedded coordinator.
func (c *Coordinator) Repair(ctx context.Context, req api.RepairRequest) (api.RepairResponse, error) {
	if !c.store.IsLeader() {
		return api.RepairResponse{}, raftstore.ErrNotLeader
	}
	if id, ok := c.repeated(ctx); ok {
		return api.RepairResponse{ID: id}, nil
	}
	var p *plans.Plan
	if req.Plan != "" {
		name := req.PlanName
		if name == "" {
			name = "plan.yaml"
		}
		var err error
		// A repair installs nothing: the release's archive is not needed.
		p, err = plans.ParseWith(name, []byte(req.Plan), requestOptions(req.Vars, nil),
			plans.Files{Artifact: plans.ArtifactUnchecked, Allowed: &plans.AllowedFiles{Paths: c.cfg.PlanFiles}})
		if err != nil {
			return api.RepairResponse{}, badRequest{err}
		}
	} else {
		d, err := c.store.Deployment(req.Of)
		if err != nil {
			return api.RepairResponse{}, err
		}
		p = new(plans.Plan)
		if err := json.Unmarshal(d.Plan, p); err != nil {
			return api.RepairResponse{}, fmt.Errorf("plan of %s: %w", d.ID, err)
		}
	}
	id, skipped, err := c.engine.SubmitRepair(ctx, p)
	if errors.Is(err, orchestrator.ErrNothingToRepair) {
		return api.RepairResponse{Skipped: skipped}, badRequest{err}
	}
	if err != nil {
		return api.RepairResponse{}, err
	}
	return api.RepairResponse{ID: id, Skipped: skipped}, nil
}

// repeated returns the result of the request ctx carries when it was
// applied already: its first answer was lost and the client sent it again.
// Checking before the work matters where the work's own checks would
// refuse a repeat (a rollback already under way has nothing left to roll
// back); the state machine refuses a repeat that gets past this check
// anyway (both sent at once), with raftstore.ErrAlreadyApplied.
func (c *Coordinator) repeated(ctx context.Context) (string, bool) {
	return c.store.RequestResult(raftstore.RequestKey(ctx))
}

// apply records a command; a repeat of a request already applied is done.
func (c *Coordinator) apply(ctx context.Context, cmd deploy.Command) error {
	err := c.store.Apply(ctx, cmd)
	if _, ok := raftstore.Applied(err); ok {
		return nil
	}
	return err
}

// Events returns the replicated events of a deployment after seq.
func (c *Coordinator) Events(id string, after uint64) ([]deploy.Event, uint64) {
	return c.store.Events(id, after)
}

// Changed is closed at the next applied command.
func (c *Coordinator) Changed() <-chan struct{} { return c.store.Changed() }

// Authenticate maps a bearer token to its role. Expiry is checked against
// this node's clock here (reads may use clocks; Apply may not).
func (c *Coordinator) Authenticate(token string) (raftstore.TokenRole, bool) {
	if token == "" {
		return "", false
	}
	t, ok := c.store.TokenByHash(pki.HashToken(token))
	if !ok || t.Used || (!t.Expires.IsZero() && !time.Now().Before(t.Expires)) {
		return "", false
	}
	return t.Role, true
}

// CreateToken makes a token and stores its hash; the clear text is
// returned once.
func (c *Coordinator) CreateToken(ctx context.Context, req api.TokenRequest) (string, error) {
	switch req.Role {
	case raftstore.RoleManage, raftstore.RoleRead, raftstore.RoleAgentJoin:
	default:
		return "", fmt.Errorf("token role %q: want manage or read: %w", req.Role, api.ErrBadRequest)
	}
	if req.Name == "" {
		return "", fmt.Errorf("a token needs a name: %w", api.ErrBadRequest)
	}
	if req.Agent != "" && !plans.IsSafeName(req.Agent) {
		return "", fmt.Errorf("agent name %q: use letters, digits, '.', '-' and '_': %w", req.Agent, api.ErrBadRequest)
	}
	tok, err := pki.NewToken()
	if err != nil {
		return "", err
	}
	now := time.Now().UTC()
	t := raftstore.Token{Name: req.Name, Role: req.Role, Hash: pki.HashToken(tok), Created: now, Agent: req.Agent, Replace: req.Replace}
	if req.TTL > 0 {
		t.Expires = now.Add(time.Duration(req.TTL))
	}
	if _, ok := c.repeated(ctx); ok {
		return "", errTokenRepeat(req.Name)
	}
	if err := c.store.Apply(ctx, &raftstore.PutToken{Token: t}); err != nil {
		if _, ok := raftstore.Applied(err); ok {
			return "", errTokenRepeat(req.Name)
		}
		return "", err
	}
	return tok, nil
}

// errTokenRepeat answers a repeated token creation: the token exists, but
// its clear text went to the first attempt's answer, which the caller lost,
// and it is kept nowhere else.
func errTokenRepeat(name string) error {
	return fmt.Errorf("token %s was created by an earlier attempt of this request, whose answer (the token's only clear copy) was lost: delete it and create it again: %w",
		name, api.ErrConflict)
}

// Tokens lists the tokens (hashes are not shown by the API).
func (c *Coordinator) Tokens() []raftstore.Token { return c.store.Tokens() }

// DeleteToken revokes a token.
func (c *Coordinator) DeleteToken(ctx context.Context, name string) error {
	return c.apply(ctx, &raftstore.DeleteToken{Name: name})
}

// badRequest marks a caller's mistake (an invalid plan, a bad archive)
// for the API without changing its message: plan problems travel as
// their FILE:LINE:COL lines, exactly.
type badRequest struct{ error }

func (b badRequest) Is(target error) bool { return target == api.ErrBadRequest }
func (b badRequest) Unwrap() error        { return b.error }

// Backup writes the replicated state.
func (c *Coordinator) Backup(w io.Writer) error { return c.store.Backup(w) }

// Restore replaces the replicated state with a backup.
func (c *Coordinator) Restore(ctx context.Context, r io.Reader) error {
	// The backup comes from another cluster, or from this one in the past:
	// its coordinator addresses are not ours. Keep this cluster's.
	before := c.store.Nodes()
	if err := c.store.Restore(ctx, r); err != nil {
		return err
	}
	members, err := c.store.Members()
	if err != nil {
		return err
	}
	for _, m := range members {
		if n, ok := before[m.ID]; ok {
			if err := c.store.Apply(ctx, &raftstore.RegisterNode{Node: n}); err != nil {
				return fmt.Errorf("re-register %s after the restore: %w", m.ID, err)
			}
		}
	}
	c.log.Info("state restored from a backup")
	return nil
}
