package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/drover-dev/drover/health"
	"github.com/drover-dev/drover/internal/fence"
	"github.com/drover-dev/drover/lb/haproxy"
	"github.com/drover-dev/drover/plans"
	"github.com/drover-dev/drover/transport/ssh"
)

// ErrTransportUnavailable means a host names a transport this coordinator
// cannot use.
var ErrTransportUnavailable = errors.New("transport not available")

// DefaultDeps wires the real transports: SSH hosts, the HAProxy runtime API
// and the plan's health checks. events may be nil.
func DefaultDeps(store Store, events func(Event)) Deps {
	return Deps{
		Store:     store,
		Events:    events,
		Connector: SSHConnector,
		Balancer:  HAProxyBalancer,
		Health:    PlanHealth,
	}
}

// SSHConnector returns a connector for the plan's ssh settings.
func SSHConnector(p *plans.Plan) (Connector, error) {
	d, err := ssh.NewDialer(ssh.ConfigFromPlan(p.SSH))
	if err != nil {
		// No key to offer: the identity file is unusable, or missing.
		return nil, fmt.Errorf("%s: %w", p.Where("ssh.identity_file"), err)
	}
	return &sshConnector{d: d}, nil
}

type sshConnector struct{ d *ssh.Dialer }

func (c *sshConnector) Connect(ctx context.Context, h plans.Host) (Host, error) {
	if h.Transport == plans.TransportAgent {
		return nil, fmt.Errorf("%s: transport agent: agents connect to a coordinator cluster ('drover server'); deploy with --server or DROVER_ADDR: %w", h.Name, ErrTransportUnavailable)
	}
	cl, err := c.d.Dial(ctx, h.Address)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return termHost{cl}, nil
}

// termHost exports the Raft term an action is taken under (see fence.go)
// to every remote command as DROVER_TERM: hooks can read it, and the host's
// own records (an audit log, a ForceCommand wrapper) show who acted when.
type termHost struct{ Host }

func (h termHost) Run(ctx context.Context, cmd string, out io.Writer) error {
	if t := fence.Term(ctx); t > 0 {
		cmd = fmt.Sprintf("DROVER_TERM=%d; export DROVER_TERM; %s", t, cmd)
	}
	return h.Host.Run(ctx, cmd, out)
}

// HAProxyBalancer returns the plan's HAProxy instances as one balancer
// (haproxy.Group), or nil without any.
func HAProxyBalancer(p *plans.Plan) (Balancer, error) {
	lb := p.LoadBalancer
	if len(lb.HAProxy) == 0 {
		return nil, nil
	}
	cfgs := make([]haproxy.Config, len(lb.HAProxy))
	for i, h := range lb.HAProxy {
		cfgs[i] = haproxy.Config{
			Socket:        h.Socket,
			Address:       h.Address,
			DrainTimeout:  lb.DrainTimeout,
			EnableTimeout: lb.EnableTimeout,
			Force:         lb.OnDrainTimeout == plans.DrainTimeoutForce,
		}
	}
	g, err := haproxy.NewGroup(cfgs...)
	if err != nil {
		return nil, err
	}
	return haproxyBalancer{g}, nil
}

// PlanHealth builds the plan's health check for one host at one release.
func PlanHealth(p *plans.Plan, h plans.Host, version string, host Host) (health.Checker, health.Policy, error) {
	return health.FromPlan(p.Health, h, version, host.Run)
}
