package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"text/template"

	"github.com/drover-dev/drover/plans"
)

// URLData is what a plan's health URL template sees.
type URLData struct {
	Host    string // the host's address without port (IPv6 in brackets, ready for a URL)
	Name    string // the host's name in the plan
	Version string // the release being verified
}

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
	addr := hostOnly(host.Address)
	if addr == "" {
		return nil, Policy{}, fmt.Errorf("health for %s: empty address", host.Name)
	}
	switch {
	case h.HTTP != nil:
		u, err := renderURL(h.HTTP.URL, URLData{Host: urlHost(addr), Name: host.Name, Version: version})
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

// hostOnly strips the port from "host:port" (or "[v6]:port"); an address
// without a port is returned as it is, less IPv6 brackets.
func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
}

// urlHost brackets an IPv6 address for use in a URL.
func urlHost(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

// renderURL executes the URL template and checks the result is an absolute
// http(s) URL.
func renderURL(tmpl string, data URLData) (string, error) {
	t, err := template.New("url").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("http url template %q: %w", tmpl, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("http url template %q: %w", tmpl, err)
	}
	u, err := url.Parse(b.String())
	if err != nil {
		return "", fmt.Errorf("http url %q: %w", b.String(), err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("http url %q: %w", b.String(), errors.New("want an absolute http:// or https:// URL"))
	}
	return b.String(), nil
}
