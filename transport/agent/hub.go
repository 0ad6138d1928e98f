// Package agent is the agent transport on the coordinator's side, the hub
// (importers name it hub): the agent protocol (package wire) with the agents
// connected to this node, the WebSocket and enrollment
// handlers, and an orchestrator Host for each connected agent, so that the
// engine drives agent hosts exactly like SSH hosts.
package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"time"

	"github.com/drover-dev/drover/transport/agent/wire"
)

// Errors callers test with errors.Is.
var (
	// ErrOffline: the agent is not connected to this coordinator.
	ErrOffline = errors.New("agent is offline")
	// ErrDisconnected: the connection dropped while an action ran.
	ErrDisconnected = errors.New("agent disconnected during the action")
	// ErrLost: the agent restarted while the action ran; it may be half done.
	ErrLost = errors.New("action lost: the agent restarted while it ran")
	// ErrRefused: enrollment or connection refused (bad token, revoked, unknown).
	ErrRefused = errors.New("refused")
)

// Registry is the replicated side, implemented by the coordinator.
type Registry interface {
	// Enroll spends a single-use join token and returns a certificate for
	// req.PublicKey; errors wrapping ErrRefused mean 403.
	Enroll(ctx context.Context, req wire.EnrollRequest) (wire.EnrollResponse, error)
	// Admit decides whether the holder of cert (already verified against
	// the cluster CA, role agent) may connect: enrolled and not revoked.
	Admit(cert *x509.Certificate) error
}

// Leadership says whether this node leads, and who does.
type Leadership interface {
	IsLeader() bool
	LeaderHTTP() string
}

// Config wires a Hub.
type Config struct {
	Registry Registry
	Leader   Leadership
	Log      *slog.Logger
}

// Status is what the coordinator knows of one agent.
type Status struct {
	Name          string    `json:"name"`
	Address       string    `json:"address"` // remote address of its connection
	Version       string    `json:"version"`
	OS            string    `json:"os"`
	Arch          string    `json:"arch"`
	Hostname      string    `json:"hostname"`
	Connected     time.Time `json:"connected"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
	Online        bool      `json:"online"`
	MaxTerm       uint64    `json:"max_term"`
}

// ExitError is a command that ran on the agent and exited non-zero.
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string { return e.Msg }
