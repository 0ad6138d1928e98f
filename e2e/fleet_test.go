package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/drover-dev/drover/lab"
)

// fleetTopology is the lab's topology with at least n web hosts: the
// default one, grown (web9 on, in 10.200.1.0/24) if it has fewer.
func fleetTopology(n int) *lab.Topology {
	t := lab.DefaultTopology()
	webs := len(t.ByRole(lab.RoleWeb))
	if webs >= n {
		return t
	}
	t.Network = netip.MustParsePrefix("10.200.0.0/22")
	for i := webs + 1; i <= n; i++ {
		t.Nodes = append(t.Nodes, lab.Node{
			Name:     fmt.Sprintf("web%d", i),
			Address:  netip.AddrFrom4([4]byte{10, 200, 1, byte(i)}),
			Role:     lab.RoleWeb,
			LBServer: fmt.Sprintf("%s/web%d", t.Balancer.Backend, i),
		})
	}
	return t
}

// TestSixteenHostsStockHAProxy: 16 hosts behind an HAProxy with its stock
// runtime-API settings (stats maxconn 10). Before the driver bounded its
// connections, preflight opened one per host at once and was refused with
// EAGAIN.
func TestSixteenHostsStockHAProxy(t *testing.T) {
	s := newSessionWith(t, lab.Options{Topology: fleetTopology(16), Hosts: 16})
	if code, d := s.run("deploy", s.plan("v1", false, "4")); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stdout.text())
	}
	s.expectAllOn("v1")
	s.underLoad(4, func() {
		if code, d := s.run("deploy", s.plan("v2", false, "4")); code != 0 {
			t.Fatalf("deploy v2: exit %d\n%s", code, d.stdout.text())
		}
	})
	s.expectAllOn("v2")
}

// TestHAProxyPair: two HAProxy instances, each with its own runtime API and
// load through each. A deploy drains and enables every host on both: no
// request fails through either, and never more than a batch is out of
// rotation on any of them. An instance that is down refuses the deploy in
// preflight, naming it, before any host is touched.
func TestHAProxyPair(t *testing.T) {
	s := newSessionWith(t, lab.Options{Hosts: 6, HAProxies: 2})
	if code, d := s.run("deploy", s.plan("v1", false, "2")); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stdout.text())
	}
	s.expectAllOn("v1")

	for _, tc := range []struct {
		name, version string
		broken        bool
		code          int    // drover's exit code
		on            string // what every host runs after
	}{
		{"v2 under load through both", "v2", false, 0, "v2"},
		{"broken v3 rolls back on both", "v3", true, 3, "v2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			s.underLoad(2, func() {
				if code, d := s.run("deploy", s.plan(tc.version, tc.broken, "2")); code != tc.code {
					t.Fatalf("deploy %s: exit %d, want %d\n%s", tc.version, code, tc.code, d.stdout.text())
				}
			})
			s.expectAllOn(tc.on)
		})
	}

	t.Run("an instance down refuses the deploy", func(t *testing.T) {
		s.t = t
		second := s.lab.HAProxies[1]
		if err := s.lab.StopHAProxy(second.Name); err != nil {
			t.Fatal(err)
		}
		code, d := s.run("deploy", s.plan("v4", false, "2"))
		if code != 2 {
			t.Fatalf("deploy with %s down: exit %d, want 2 (refused in preflight)\n%s", second.Name, code, d.stdout.text())
		}
		out := d.stdout.text() + d.stderr.String()
		// One line, at the plan key of the instance that is down.
		if !strings.Contains(out, "preflight failed") || !strings.Contains(out, ": load_balancer.haproxy[1].socket: dial unix "+second.Socket+": ") {
			t.Errorf("the refusal does not name %s (%s) at its plan key:\n%s", second.Name, second.Socket, out)
		}
		if strings.Contains(out, "dial unix "+s.lab.HAProxySocket+": ") {
			t.Errorf("the refusal blames the instance that is up:\n%s", out)
		}
		for _, ev := range d.stdout.all() {
			if ev.Stage != "" {
				t.Errorf("a host was touched: %+v", ev)
			}
		}
		for h, v := range s.versions() {
			if v != "v2" {
				t.Errorf("%s serves %q, want v2", h, v)
			}
		}
	})
}
