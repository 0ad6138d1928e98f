package plans

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
)

// The decoder keeps where the keys naming outside things are written, in
// the plan file or the inventory, for errors found when they are used.
func TestKeys(t *testing.T) {
	f := newFixture(t, map[string]string{
		"hosts.yaml": "- {name: web1, address: 10.0.0.1, lb_server: web/web1}\n- {name: web2, address: 10.0.0.2, lb_server: web/web2, transport: agent}\n",
	})
	src := `name: web
version: "2"
inventory: hosts.yaml
load_balancer:
  haproxy:
    - socket: /run/lb1.sock
    - address: 10.0.0.9:9999
ssh:
  identity_file: keys/id_deploy
release: {artifact: app.tar.gz, path: /srv/app, restart: bin/restart}
health:
  tcp: {port: 8080}
`
	p, err := f.parse(src)
	if err != nil {
		t.Fatal(f.problems(t, err))
	}
	plan, inv := filepath.Join(f.dir, "plan.yaml"), filepath.Join(f.dir, "hosts.yaml")
	for key, want := range map[string]Position{
		"inventory":                        {plan, 3, 12},
		"load_balancer.haproxy[0].socket":  {plan, 6, 15},
		"load_balancer.haproxy[1].address": {plan, 7, 16},
		"ssh.identity_file":                {plan, 9, 18},
		"release.artifact":                 {plan, 10, 21},
		"health.tcp.port":                  {plan, 12, 15},
		"hosts[1].transport":               {inv, 2, 67},
	} {
		if got := p.Keys[key]; got != want {
			t.Errorf("%s at %v, want %v", key, got, want)
		}
	}
	if _, ok := p.Keys["hosts[0].transport"]; ok {
		t.Errorf("an ssh host's default transport has a position")
	}
	for i, want := range []string{"load_balancer.haproxy[0].socket", "load_balancer.haproxy[1].address"} {
		if got := p.HAProxyKey(i); got != want {
			t.Errorf("HAProxyKey(%d) = %q, want %q", i, got, want)
		}
	}
	if got, want := p.Where("ssh.identity_file"), plan+":9:18: ssh.identity_file"; got != want {
		t.Errorf("Where = %q, want %q", got, want)
	}
	if got := p.Where("ssh.known_hosts"); got != "ssh.known_hosts" {
		t.Errorf("Where of a default = %q, want the key alone", got)
	}
	// The engine runs the plan as recorded (JSON): the positions go with it.
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Plan
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Keys, p.Keys) {
		t.Errorf("keys after JSON: %v, want %v", back.Keys, p.Keys)
	}
}
