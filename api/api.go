// Package api is the coordinator's HTTPS API: JSON handlers over the
// replicated state, authentication (a client certificate from the cluster
// CA, then a bearer token), forwarding of writes to the leader, an event
// stream that resumes after a reconnect, and the Go client the CLI uses.
package api

import (
	"context"
	"io"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/duration"
	"github.com/drover-dev/drover/raftstore"
)

// NodeStatus is one coordinator's view of itself and of the cluster.
type NodeStatus struct {
	ID           string `json:"id"`
	RaftAddr     string `json:"raft_addr"`
	HTTPAddr     string `json:"http_addr"`
	State        string `json:"state"` // Leader, Follower, Candidate, Shutdown
	Leader       string `json:"leader,omitempty"`
	LeaderHTTP   string `json:"leader_http,omitempty"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	// LastContactMS is the time since this node last heard from the
	// leader; 0 on the leader, -1 when it never has.
	LastContactMS int64  `json:"last_contact_ms"`
	Version       string `json:"version,omitempty"`
}

// Member is one voter of the cluster, joined with what it says of itself
// when it answers (Reachable false and Error set when it does not).
type Member struct {
	ID            string `json:"id"`
	RaftAddr      string `json:"raft_addr"`
	HTTPAddr      string `json:"http_addr,omitempty"`
	Voter         bool   `json:"voter"`
	Leader        bool   `json:"leader"`
	Reachable     bool   `json:"reachable"`
	State         string `json:"state,omitempty"`
	LastContactMS int64  `json:"last_contact_ms"`
	AppliedIndex  uint64 `json:"applied_index"`
	Error         string `json:"error,omitempty"`
}

// JoinRequest is what a new or restarted coordinator sends to join.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// SubmitRequest asks for a new deployment. The plan travels as its YAML
// text so that the leader validates it itself and reports problems with
// the operator's file name, line and column; the artifact travels first
// (UploadArtifact) and is named here by its digest.
type SubmitRequest struct {
	PlanName       string `json:"plan_name"`
	Plan           string `json:"plan"`
	ArtifactSHA256 string `json:"artifact_sha256"`
	Force          bool   `json:"force,omitempty"`
	// Vars are the values of the plan's ${NAME} variables, read by the CLI
	// from the operator's environment: a coordinator never reads its own.
	Vars map[string]string `json:"vars,omitempty"`
	// Set are the operator's --set KEY=VALUE (plans.VarKeys).
	Set map[string]string `json:"set,omitempty"`
	// Message is why the operator deploys (--message), kept with it.
	Message string `json:"message,omitempty"`
	// By is filled in by the server from the caller's certificate (never
	// read from the request): who asked.
	By string `json:"-"`
}

// SubmitResponse names the new deployment.
type SubmitResponse struct {
	ID string `json:"id"`
}

// RepairRequest asks for a repair (`drover repair`): every host of a plan
// brought back to its recorded release, healthy and in rotation. The plan
// is Plan, its YAML text (release.artifact is not read: nothing is
// uploaded), or else the plan of deployment Of.
type RepairRequest struct {
	PlanName string `json:"plan_name,omitempty"`
	Plan     string `json:"plan,omitempty"`
	Of       string `json:"of,omitempty"`
	// Vars are the plan's ${NAME} variables, as in SubmitRequest.
	Vars map[string]string `json:"vars,omitempty"`
}

// RepairResponse names the repair deployment, and the hosts left alone
// because no release is recorded for them.
type RepairResponse struct {
	ID      string   `json:"id"`
	Skipped []string `json:"skipped,omitempty"`
}

// Action is an operator's request on a running deployment: the domain's
// lifecycle action, named here for the API's callers.
type Action = deploy.Action

// Actions.
const (
	ActionPause  = deploy.ActionPause
	ActionResume = deploy.ActionResume
	ActionAbort  = deploy.ActionAbort
)

// TokenRequest creates an API token.
type TokenRequest struct {
	Name string              `json:"name"`
	Role raftstore.TokenRole `json:"role"`
	TTL  Duration            `json:"ttl,omitempty"` // 0: no expiry
	// Agent is the one agent name an agent-join token may enroll
	// (required for that role); Replace lets it enroll a name that is
	// already enrolled or revoked.
	Agent   string `json:"agent,omitempty"`
	Replace bool   `json:"replace,omitempty"`
}

// TokenResponse carries a new token's clear text: the only time it exists
// outside its holder.
type TokenResponse struct {
	Name  string              `json:"name"`
	Role  raftstore.TokenRole `json:"role"`
	Token string              `json:"token"`
}

// Duration is a time.Duration that travels as a string ("1m30s").
type Duration = duration.Duration

// The server's collaborators, owned here and implemented by the
// coordinator (cmd/drover wires them to the store and the engine).

// Node is the coordinator serving the request.
type Node interface {
	Status() NodeStatus
	// IsLeader reports whether this node leads and has caught up with
	// what was committed before its term: only then does it answer for
	// the cluster.
	IsLeader() bool
	// LeaderHTTP is the leader's API address ("host:port"), "" when unknown.
	LeaderHTTP() string
	// LeaderChanged returns a channel closed at the next change of leader
	// or of IsLeader.
	LeaderChanged() <-chan struct{}
}

// Cluster manages membership. Join and Remove only work on the leader.
type Cluster interface {
	// Members lists raft's voters with their registered API addresses;
	// the server fills in what each says of itself.
	Members(ctx context.Context) ([]Member, error)
	Join(ctx context.Context, req JoinRequest) error
	Remove(ctx context.Context, id string) error
	// Backup writes the whole replicated state (a Raft snapshot's bytes).
	Backup(w io.Writer) error
	// Restore replaces the cluster's state with a backup (leader only).
	Restore(ctx context.Context, r io.Reader) error
}

// Deployments is the deployment side of the coordinator. Writes only work
// on the leader (they return an error wrapping raftstore.ErrNotLeader
// elsewhere).
type Deployments interface {
	Submit(ctx context.Context, req SubmitRequest) (string, error)
	List() []deploy.Deployment
	Get(id string) (deploy.Deployment, error)
	Act(ctx context.Context, id string, a Action) error
	// Rollback records a rollback of id: to release `to`, or ("") each
	// host back to its previous release.
	Rollback(ctx context.Context, id, to string) (string, error)
	// Logs returns the recorded output of remote commands that q selects.
	Logs(q deploy.LogQuery) (deploy.LogPage, error)
	Repair(ctx context.Context, req RepairRequest) (RepairResponse, error)
	// Events returns the events of id after seq, and the last seq applied.
	Events(id string, after uint64) ([]deploy.Event, uint64)
	// Changed is closed at the next applied command.
	Changed() <-chan struct{}
}

// Artifacts stores release archives by SHA-256, on every coordinator.
type Artifacts interface {
	Has(sha256 string) bool
	// Put stores r if its digest is sha256 (and makes it available to the
	// other coordinators); a mismatch is an error wrapping ErrDigest.
	Put(ctx context.Context, sha256 string, r io.Reader) error
	Open(sha256 string) (io.ReadCloser, int64, error)
}

// Auth checks and manages API tokens (stored hashed in the replicated state).
type Auth interface {
	Authenticate(token string) (raftstore.TokenRole, bool)
	CreateToken(ctx context.Context, req TokenRequest) (string, error)
	Tokens() []raftstore.Token
	DeleteToken(ctx context.Context, name string) error
}

// AgentInfo is one host agent: enrolled in the replicated state, and
// connected (or not) to the leader.
type AgentInfo struct {
	Name          string    `json:"name"`
	Address       string    `json:"address,omitempty"` // where its connection comes from
	Version       string    `json:"version,omitempty"`
	Arch          string    `json:"arch,omitempty"`
	State         string    `json:"state"` // online, offline, revoked
	LastHeartbeat time.Time `json:"last_heartbeat,omitzero"`
	Enrolled      time.Time `json:"enrolled,omitzero"`
}

// Agents lists and revokes host agents. Revoke only works on the leader.
type Agents interface {
	AgentList() []AgentInfo
	RevokeAgent(ctx context.Context, name string) error
}
