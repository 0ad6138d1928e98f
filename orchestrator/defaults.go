package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/drover-dev/drover/internal/fence"
	"github.com/drover-dev/drover/orchestrator/health"
	"github.com/drover-dev/drover/orchestrator/lb/haproxy"
	"github.com/drover-dev/drover/orchestrator/ssh"
	"github.com/drover-dev/drover/plans"
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
		return nil, err
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

// HAProxyBalancer returns the plan's HAProxy driver, or nil without one.
func HAProxyBalancer(p *plans.Plan) (Balancer, error) {
	lb := p.LoadBalancer
	if lb.HAProxy == nil {
		return nil, nil
	}
	d, err := haproxy.New(haproxy.Config{
		Socket:        lb.HAProxy.Socket,
		Address:       lb.HAProxy.Address,
		DrainTimeout:  lb.DrainTimeout,
		EnableTimeout: lb.EnableTimeout,
		Force:         lb.OnDrainTimeout == plans.DrainTimeoutForce,
	})
	if err != nil {
		return nil, err
	}
	instance := lb.HAProxy.Socket + lb.HAProxy.Address // exactly one is set
	return haproxyBalancer{Driver: d, instance: "haproxy " + instance}, nil
}

// PlanHealth builds the plan's health check for one host at one release.
func PlanHealth(p *plans.Plan, h plans.Host, version string, host Host) (health.Checker, health.Policy, error) {
	return health.FromPlan(p.Health, h, version, host.Run)
}
