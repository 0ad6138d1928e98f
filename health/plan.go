package health

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/drover-dev/drover/plans"
)

// FromPlan builds the check and the policy for one host from a plan's health
// block: http (the URL rendered for this host and version), tcp (the host's
// address without port, at the given port) or command (run on the host
// through run). Exactly one kind must be set.
func FromPlan(h plans.Health, host plans.Host, version string,
	run func(ctx context.Context, cmd string, out io.Writer) error) (Checker, Policy, error) {
	pol := Policy{
		Interval:       h.Interval,
		Timeout:        h.Timeout,
		Deadline:       h.Deadline,
		MinHealthyTime: h.MinHealthyTime,
		Threshold:      h.HealthyThreshold,
	}
	kinds := 0
	for _, set := range []bool{h.HTTP != nil, h.TCP != nil, h.Command != ""} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return nil, Policy{}, fmt.Errorf("health for %s: want exactly one of http, tcp and command, have %d", host.Name, kinds)
	}
	addr := host.HostOnly()
	if addr == "" {
		return nil, Policy{}, fmt.Errorf("health for %s: empty address", host.Name)
	}
	switch {
	case h.HTTP != nil:
		u, err := h.HTTP.URLFor(host, version)
		if err != nil {
			return nil, Policy{}, fmt.Errorf("health for %s: %w", host.Name, err)
		}
		return HTTP(u, h.HTTP.Status, h.HTTP.BodyContains, h.Timeout), pol, nil
	case h.TCP != nil:
		if h.TCP.Port < 1 || h.TCP.Port > 65535 {
			return nil, Policy{}, fmt.Errorf("health for %s: tcp port %d out of range", host.Name, h.TCP.Port)
		}
		return TCP(net.JoinHostPort(addr, strconv.Itoa(h.TCP.Port)), h.Timeout), pol, nil
	default:
		if run == nil {
			return nil, Policy{}, fmt.Errorf("health for %s: command check needs a way to run commands on the host", host.Name)
		}
		return Command(run, h.Command, h.Timeout), pol, nil
	}
}
