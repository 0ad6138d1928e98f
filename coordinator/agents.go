package coordinator

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/health"
	"github.com/drover-dev/drover/internal/fence"
	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/orchestrator"
	"github.com/drover-dev/drover/plans"
	"github.com/drover-dev/drover/raftstore"
	hub "github.com/drover-dev/drover/transport/agent"
	"github.com/drover-dev/drover/transport/agent/wire"
)

// agentRegistry is the replicated side of the agents (hub.Registry): join
// tokens are spent through Raft, so that exactly one agent wins a token
// even when two coordinators are asked at once, and certificates are
// signed with the cluster CA when this node holds its key.
type agentRegistry struct{ c *Coordinator }

// Enroll spends a join token and signs the agent's public key.
func (r agentRegistry) Enroll(ctx context.Context, req wire.EnrollRequest) (wire.EnrollResponse, error) {
	c := r.c
	if !plans.IsSafeName(req.Name) {
		return wire.EnrollResponse{}, fmt.Errorf("%w: agent name %q: use letters, digits, '.', '-' and '_'", hub.ErrRefused, req.Name)
	}
	pub, err := x509.ParsePKIXPublicKey(req.PublicKey)
	if err != nil {
		return wire.EnrollResponse{}, fmt.Errorf("%w: public key: %v", hub.ErrRefused, err)
	}
	if c.ca == nil {
		return wire.EnrollResponse{}, fmt.Errorf("%w: coordinator %s cannot sign agent certificates: no %s in its --tls-dir",
			hub.ErrRefused, c.cfg.NodeID, pki.CAKeyFile)
	}
	// Check the token against this node's state first: a made-up, spent,
	// expired or mismatched token costs no Raft write (finding 3 of issue
	// 8). Apply checks again, and its answer is final: two agents
	// presenting one token at once, only one wins.
	spend := &raftstore.SpendToken{Hash: pki.HashToken(req.Token), Role: raftstore.RoleAgentJoin, At: time.Now().UTC(), Agent: req.Name}
	if t, ok := c.store.TokenByHash(spend.Hash); !ok {
		err = raftstore.ErrNoToken
	} else {
		_, enrolled := c.store.Agent(req.Name)
		err = t.Spendable(spend.Role, spend.Agent, enrolled, spend.At)
	}
	if err == nil {
		err = c.store.Apply(ctx, spend)
	}
	switch {
	case errors.Is(err, raftstore.ErrTokenAgent):
		return wire.EnrollResponse{}, fmt.Errorf("%w: %v", hub.ErrRefused, err)
	case errors.Is(err, raftstore.ErrAgentEnrolled):
		return wire.EnrollResponse{}, fmt.Errorf("%w: agent %s is enrolled already (or revoked); to give the name to a new key, create a token with 'drover agent token create %s --replace'",
			hub.ErrRefused, req.Name, req.Name)
	case errors.Is(err, raftstore.ErrTokenSpent):
		return wire.EnrollResponse{}, fmt.Errorf("%w: this join token was already used (tokens are single-use; create another with 'drover agent token create')", hub.ErrRefused)
	case errors.Is(err, raftstore.ErrTokenExpired):
		return wire.EnrollResponse{}, fmt.Errorf("%w: this join token has expired", hub.ErrRefused)
	case errors.Is(err, raftstore.ErrNoToken):
		return wire.EnrollResponse{}, fmt.Errorf("%w: unknown join token", hub.ErrRefused)
	case err != nil:
		return wire.EnrollResponse{}, err
	}
	certPEM, err := c.ca.Sign(pub, pki.IssueRequest{Name: req.Name, Role: pki.RoleAgent})
	if err != nil {
		return wire.EnrollResponse{}, fmt.Errorf("sign the certificate of %s: %w", req.Name, err)
	}
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		return wire.EnrollResponse{}, err
	}
	if err := c.store.Apply(ctx, &raftstore.EnrollAgent{Name: req.Name, Serial: cert.SerialNumber.Text(16), At: time.Now().UTC()}); err != nil {
		return wire.EnrollResponse{}, fmt.Errorf("record agent %s: %w", req.Name, err)
	}
	c.log.Info("agent enrolled", "agent", req.Name)
	return wire.EnrollResponse{Certificate: certPEM, CA: c.caPEM}, nil
}

// Admit lets in an agent whose current certificate this is.
func (r agentRegistry) Admit(cert *x509.Certificate) error {
	name := pki.CommonName(cert)
	a, ok := r.c.store.Agent(name)
	switch {
	case !ok:
		return fmt.Errorf("%w: agent %s is not enrolled", hub.ErrRefused, name)
	case a.Revoked:
		return fmt.Errorf("%w: agent %s is revoked", hub.ErrRefused, name)
	case a.Serial != cert.SerialNumber.Text(16):
		return fmt.Errorf("%w: agent %s presents an old certificate (it enrolled again since)", hub.ErrRefused, name)
	}
	return nil
}

// certificates refuses, on the API, the certificates of revoked and
// re-enrolled agents, like the agent connection does. Operator and server
// certificates have no revocation list: they are refused when they expire
// or when the cluster's CA changes (docs/security.md).
type certificates struct{ c *Coordinator }

func (a certificates) Admit(cert *x509.Certificate) error {
	if pki.RoleOf(cert) != pki.RoleAgent {
		return nil
	}
	return agentRegistry(a).Admit(cert)
}

// AgentList joins the enrolled agents with what the hub sees of them.
func (c *Coordinator) AgentList() []api.AgentInfo {
	live := map[string]hub.Status{}
	for _, st := range c.hub.Agents() {
		live[st.Name] = st
	}
	var out []api.AgentInfo
	for _, a := range c.store.Agents() {
		info := api.AgentInfo{Name: a.Name, Enrolled: a.Enrolled, State: "offline"}
		if st, ok := live[a.Name]; ok {
			info.Address, info.Version, info.Arch, info.LastHeartbeat = st.Address, st.Version, st.OS+"/"+st.Arch, st.LastHeartbeat
			if st.Online {
				info.State = "online"
			}
		}
		if a.Revoked {
			info.State = "revoked"
		}
		out = append(out, info)
	}
	return out
}

// RevokeAgent refuses an agent's certificate and drops its connection.
func (c *Coordinator) RevokeAgent(ctx context.Context, name string) error {
	err := c.store.Apply(ctx, &raftstore.RevokeAgent{Name: name})
	if errors.Is(err, raftstore.ErrUnknownAgent) {
		return fmt.Errorf("%w: %w", err, api.ErrNotFound)
	}
	if err == nil {
		c.hub.Drop(name)
		c.log.Info("agent revoked", "agent", name)
	}
	return err
}

// connector reaches a plan's hosts: SSH for ssh hosts (the dialer is made
// on first use, so an agent-only plan needs no SSH settings), the hub for
// agent hosts.
func (c *Coordinator) connector(p *plans.Plan) (orchestrator.Connector, error) {
	return &mixedConnector{plan: p, hub: c.hub}, nil
}

type mixedConnector struct {
	plan *plans.Plan
	hub  *hub.Hub

	once   sync.Once // the engine connects hosts in parallel
	ssh    orchestrator.Connector
	sshErr error
}

func (m *mixedConnector) Connect(ctx context.Context, h plans.Host) (orchestrator.Host, error) {
	if h.Transport == plans.TransportAgent {
		ah, err := m.hub.Host(h.Name)
		if err != nil {
			return nil, err
		}
		return ah, nil
	}
	m.once.Do(func() { m.ssh, m.sshErr = orchestrator.SSHConnector(m.plan) })
	if m.sshErr != nil {
		return nil, m.sshErr
	}
	return m.ssh.Connect(ctx, h)
}

// health makes HTTP and TCP checks of agent hosts from the host itself:
// behind NAT the coordinator may not reach the application's port.
func (c *Coordinator) health(p *plans.Plan, h plans.Host, version string, host orchestrator.Host) (health.Checker, health.Policy, error) {
	chk, pol, err := orchestrator.PlanHealth(p, h, version, host)
	if err != nil || h.Transport != plans.TransportAgent || p.Health.Command != "" {
		return chk, pol, err
	}
	var wc wire.Check
	if p.Health.HTTP != nil {
		u, err := p.Health.HTTP.URLFor(h, version)
		if err != nil {
			return nil, pol, err
		}
		wc = wire.Check{HTTP: u, Status: p.Health.HTTP.Status, BodyContains: p.Health.HTTP.BodyContains}
	} else {
		wc = wire.Check{TCP: fmt.Sprintf("%s:%d", h.HostOnly(), p.Health.TCP.Port)}
	}
	return agentCheck{hub: c.hub, name: h.Name, check: wc, timeout: p.Health.Timeout, fence: c.store.VerifyLeader}, pol, nil
}

type agentCheck struct {
	hub     *hub.Hub
	name    string
	check   wire.Check
	timeout time.Duration
	fence   fence.Func
}

// Check asks the agent to probe its own host. Like every action it
// carries the confirmed term: the agent refuses anything without one.
func (a agentCheck) Check(ctx context.Context) error {
	ctx, err := fence.Check(fence.With(ctx, a.fence))
	if err != nil {
		return err
	}
	h, err := a.hub.Host(a.name)
	if err != nil {
		return err
	}
	return h.Check(ctx, a.check, a.timeout)
}
