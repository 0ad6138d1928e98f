package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/lb/haproxy"
	"github.com/drover-dev/drover/plans"
	"github.com/drover-dev/drover/transport/agent"
	"github.com/drover-dev/drover/transport/ssh"
)

// A cause that a plan key names is reported once, at the key's
// FILE:LINE:COL, with the hosts it stopped.
func TestPreflightNamesThePlanKey(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "admin.sock")
	// The real driver's error for a runtime API socket that is not there.
	g, err := haproxy.NewGroup(haproxy.Config{Socket: missing, RetryTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	realCheck := func(server string) error { return g.Check(context.Background(), server) }
	keys := map[string]plans.Position{
		"load_balancer.haproxy.socket": {File: "plan.yaml", Line: 12, Col: 13},
		"ssh.identity_file":            {File: "plan.yaml", Line: 8, Col: 18},
		"ssh.known_hosts":              {File: "plan.yaml", Line: 9, Col: 16},
		"hosts[0].transport":           {File: "hosts.yaml", Line: 1, Col: 50},
		"hosts[1].transport":           {File: "hosts.yaml", Line: 2, Col: 50},
	}
	each := func(hosts int, err func(host string) error) map[string]error {
		m := map[string]error{}
		for _, h := range hostsNamed(hosts) {
			m[h] = err(h)
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		hosts int
		agent bool // hosts use transport: agent
		check func(server string) error
		fail  map[string]error
		want  string
	}{
		{name: "a missing HAProxy socket", hosts: 8, check: realCheck,
			want: "plan.yaml:12:13: load_balancer.haproxy.socket: dial unix " + missing + ": connect: no such file or directory (web1, web2, web3, web4, web5 and 3 more: 8 hosts)"},
		{name: "one host behind a missing socket", hosts: 1, check: realCheck,
			want: "plan.yaml:12:13: load_balancer.haproxy.socket: dial unix " + missing + ": connect: no such file or directory (web1)"},
		{name: "a key every host refuses", hosts: 3, fail: each(3, func(h string) error {
			return fmt.Errorf("ssh: %s:22: authentication as \"deploy\" failed (key file /keys/id_deploy): %w", h, ssh.ErrAuthFailed)
		}), want: `plan.yaml:8:18: ssh.identity_file: authentication as "deploy" failed (key file /keys/id_deploy): authentication failed (web1, web2, web3: 3 hosts)`},
		{name: "known_hosts without the hosts' keys", hosts: 2, fail: each(2, func(h string) error {
			return fmt.Errorf("%w: %s:22 presented ssh-ed25519 SHA256:x and has no entry in /home/kh", ssh.ErrHostKeyUnknown, h)
		}), want: "plan.yaml:9:16: ssh.known_hosts: host key unknown: /home/kh has no entry for these hosts; verify each fingerprint, then add it (ssh-keyscan -p PORT ADDRESS >> /home/kh), or set ssh.host_key_checking: accept-new (web1, web2: 2 hosts)"},
		{name: "agents that never connected", hosts: 2, agent: true, fail: each(2, func(h string) error {
			return fmt.Errorf("agent %s is offline (never connected): %w", h, agent.ErrOffline)
		}), want: "hosts.yaml:1:50: hosts[0].transport: agent is offline: not connected to this cluster's coordinators (is `drover agent` running on the host, and can it reach them?) (web1, web2: 2 hosts)"},
		{name: "agents without a cluster", hosts: 2, agent: true, fail: each(2, func(h string) error {
			return fmt.Errorf("%s: transport agent: agents connect to a coordinator cluster ('drover server'); deploy with --server or DROVER_ADDR: %w", h, ErrTransportUnavailable)
		}), want: "hosts.yaml:1:50: hosts[0].transport: transport agent: agents connect to a coordinator cluster ('drover server'); deploy with --server or DROVER_ADDR: transport not available (web1, web2: 2 hosts)"},
		{name: "one offline agent keeps its own line", hosts: 2, agent: true, fail: map[string]error{
			"web2": fmt.Errorf("agent web2 is offline (last seen 12s ago): %w", agent.ErrOffline)},
			want: "web2: connect web2 (web2:22): agent web2 is offline (last seen 12s ago): agent is offline"},
		{name: "a cause of one host stays on its line", hosts: 3, fail: map[string]error{
			"web2": fmt.Errorf("%w: web2:22 presented ssh-ed25519 SHA256:x and has no entry in /home/kh", ssh.ErrHostKeyUnknown)},
			want: "web2: connect web2 (web2:22): host key unknown: web2:22 presented ssh-ed25519 SHA256:x and has no entry in /home/kh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(hostsNamed(tc.hosts)...)
			for h, err := range tc.fail {
				f.dialFail[h] = err
			}
			f.checkBy = tc.check
			h := newHarness(t, f)
			p := h.plan("v1", plans.Size{N: 1}, 0)
			p.LoadBalancer.HAProxy[0].Socket = missing
			p.SSH.KnownHosts, p.SSH.IdentityFile = "/home/kh", "/keys/id_deploy"
			p.Keys = keys
			if tc.agent {
				for i := range p.Hosts {
					p.Hosts[i].Transport = plans.TransportAgent
				}
			}
			_, _, err := h.deploy(p, nil)
			if want := "preflight failed, no host was touched:\n  " + tc.want; !errors.Is(err, ErrPreflight) || err.Error() != want {
				t.Fatalf("err =\n%v\nwant\n%s", err, want)
			}
		})
	}
}

// A host that fails verify says where the check is written: a wrong port
// or URL fails every host alike.
func TestVerifyNamesTheCheckKey(t *testing.T) {
	f := newFleet(hostsNamed(2)...)
	h := newHarness(t, f)
	h.mustDeploy(h.plan("v1", plans.Size{N: 1}, 0))
	v2 := h.plan("v2", plans.Size{N: 1}, 0)
	v2.Health.TCP = &plans.TCPCheck{Port: 9}
	v2.Keys = map[string]plans.Position{"health.tcp.port": {File: "plan.yaml", Line: 20, Col: 17}}
	id, st, err := h.deploy(v2, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := h.store.Deployment(id)
	if want := "1 host(s) failed (web1), more than max_failures=0; each failed the health check at plan.yaml:20:17: health.tcp.port"; d.Error != want {
		t.Errorf("the deployment's error is %q, want %q", d.Error, want)
	}
	got := d.Hosts["web1"].Error
	if want := "plan.yaml:20:17: health.tcp.port: "; st != deploy.StateRolledBack || !strings.Contains(got, want) || !strings.Contains(got, "web1:9: connection refused") {
		t.Fatalf("%s, web1: %q, want it to contain %q and the probe's error", st, got, want)
	}
}

// A key file the transport cannot use is reported at ssh.identity_file.
func TestSSHConnectorNamesTheIdentityFile(t *testing.T) {
	key := filepath.Join(t.TempDir(), "id_deploy")
	if err := os.WriteFile(key, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &plans.Plan{SSH: plans.SSH{User: "deploy", IdentityFile: key, KnownHosts: filepath.Join(t.TempDir(), "kh")},
		Keys: map[string]plans.Position{"ssh.identity_file": {File: "plan.yaml", Line: 8, Col: 18}}}
	_, err := SSHConnector(p)
	if want := "plan.yaml:8:18: ssh.identity_file: ssh: identity file " + key + " is not a private key"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("SSHConnector: %v, want %q...", err, want)
	}
}
