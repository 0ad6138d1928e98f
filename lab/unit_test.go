package lab

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

func TestDefaultTopology(t *testing.T) {
	topo := DefaultTopology()
	if got := topo.Network.String(); got != "10.200.0.0/22" {
		t.Errorf("network = %s", got)
	}
	if c := topo.Control(); c.Name != "ctl" || c.Address.String() != "10.200.0.1" {
		t.Errorf("control = %+v", c)
	}
	if b := topo.BalancerNode(); b.Name != "lb" || b.Address.String() != "10.200.0.2" {
		t.Errorf("balancer = %+v", b)
	}
	if topo.Balancer.FrontendPort != 80 || topo.Balancer.Backend != "web" {
		t.Errorf("balancer spec = %+v", topo.Balancer)
	}
	if topo.App.Port != 8080 || topo.App.ReleasePath != "/srv/app" {
		t.Errorf("app = %+v", topo.App)
	}
	if n := len(topo.ByRole(RoleCoordinator)); n != 3 {
		t.Errorf("%d coordinators, want 3", n)
	}
	webs := topo.ByRole(RoleWeb)
	if len(webs) != 254 {
		t.Fatalf("%d web hosts, want 254", len(webs))
	}
	for i, w := range webs[8:] {
		n := strconv.Itoa(i + 9)
		if w.Name != "web"+n || w.Address.String() != "10.200.1."+n || w.ServerName() != w.Name {
			t.Errorf("web host %d = %+v", i+9, w)
		}
	}
	for i, w := range webs[:8] {
		name := "web" + string(rune('1'+i))
		if w.Name != name || w.Address.String() != "10.200.0.1"+string(rune('1'+i)) || w.LBServer != "web/"+name || w.ServerName() != name {
			t.Errorf("web host %d = %+v", i, w)
		}
	}
	// The file on disk (what the Vagrantfile reads) is the embedded one.
	fromFile, err := LoadTopology("topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(fromFile.Nodes) != len(topo.Nodes) {
		t.Errorf("file has %d nodes, embedded %d", len(fromFile.Nodes), len(topo.Nodes))
	}
}

func TestTopologyErrors(t *testing.T) {
	base := `network: 10.200.0.0/24
app: {port: 8080, release_path: /srv/app}
balancer: {frontend_port: 80, backend: web}
nodes:
  - {name: ctl, address: 10.200.0.1, role: control}
  - {name: lb, address: 10.200.0.2, role: balancer}
`
	tests := []struct {
		name, extra, want string
	}{
		{"ok", "  - {name: web1, address: 10.200.0.11, role: web, lb_server: web/web1}\n", ""},
		{"no web", "", "at least one node with role web"},
		{"outside network", "  - {name: web1, address: 10.9.0.11, role: web, lb_server: web/web1}\n", "outside network"},
		{"duplicate address", "  - {name: web1, address: 10.200.0.2, role: web, lb_server: web/web1}\n", "already used by lb"},
		{"duplicate name", "  - {name: lb, address: 10.200.0.11, role: web, lb_server: web/web1}\n", "duplicate name"},
		{"bad lb_server", "  - {name: web1, address: 10.200.0.11, role: web, lb_server: web1}\n", "lb_server must be"},
		{"other backend", "  - {name: web1, address: 10.200.0.11, role: web, lb_server: api/web1}\n", "is not balancer.backend"},
		{"duplicate server", "  - {name: web1, address: 10.200.0.11, role: web, lb_server: web/x}\n  - {name: web2, address: 10.200.0.12, role: web, lb_server: web/x}\n", "already used by web1"},
		{"unknown role", "  - {name: db1, address: 10.200.0.21, role: database}\n  - {name: web1, address: 10.200.0.11, role: web, lb_server: web/web1}\n", "unknown role"},
		{"unknown field", "  - {name: web1, address: 10.200.0.11, role: web, lb_server: web/web1, port: 22}\n", "unknown field"},
		{"bad address", "  - {name: web1, address: 10.200.0.300, role: web, lb_server: web/web1}\n", "topology"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTopology([]byte(base + tt.extra))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	if _, err := LoadTopology(filepath.Join(t.TempDir(), "missing.yaml")); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}

func TestNamespaceNames(t *testing.T) {
	if got := nsID(nsName("a1b2c3", "web1")); got != "a1b2c3" {
		t.Errorf("nsID = %q", got)
	}
	for _, n := range []string{"drl-ctl", "drlXYZ-ctl", "other", "drla1b2c3"} {
		if id := nsID(n); id != "" {
			t.Errorf("nsID(%q) = %q, want none", n, id)
		}
	}
	for i, node := range []string{"web1", "lb", "a-very-long-node-name"} {
		if v := vethName("a1b2c3", i, node); len(v) > 15 {
			t.Errorf("veth name %q longer than 15", v)
		}
	}
}

// planLab is a Lab description without anything running, for Plan.
func planLab() *Lab {
	return &Lab{
		ID: "abc123", User: "root", IdentityFile: "/lab/id_ed25519", KnownHosts: "/lab/known_hosts",
		HAProxySocket: "/lab/haproxy.sock", ReleasePath: "/srv/app", AppPort: 8080,
		Hosts: []Host{
			{Name: "web1", Address: "10.200.0.11", LBServer: "web/web1"},
			{Name: "web2", Address: "10.200.0.12", LBServer: "web/web2"},
		},
	}
}

func TestPlan(t *testing.T) {
	l := planLab()
	b, err := l.Plan(PlanParams{Version: "2.0.1", Artifact: "/a/app.tar.gz", Batch: "2", MaxFailures: "10%",
		MinHealthyTime: 500 * time.Millisecond, Extra: "hooks:\n  after_enable: [\"true\"]\n"})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := yaml.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	get := func(path ...string) any {
		var v any = got
		for _, p := range path {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[p]
		}
		return v
	}
	checks := []struct {
		path []string
		want any
	}{
		{[]string{"name"}, "web"},
		{[]string{"version"}, "2.0.1"},
		{[]string{"ssh", "user"}, "root"},
		{[]string{"ssh", "identity_file"}, "/lab/id_ed25519"},
		{[]string{"ssh", "known_hosts"}, "/lab/known_hosts"},
		{[]string{"ssh", "host_key_checking"}, "strict"},
		{[]string{"load_balancer", "haproxy", "socket"}, "/lab/haproxy.sock"},
		{[]string{"strategy", "batch"}, uint64(2)},
		{[]string{"strategy", "max_failures"}, "10%"},
		{[]string{"release", "artifact"}, "/a/app.tar.gz"},
		{[]string{"release", "path"}, "/srv/app"},
		{[]string{"release", "restart"}, "/srv/app/current/bin/restart"},
		{[]string{"release", "keep"}, uint64(3)},
		{[]string{"health", "http", "url"}, "http://{{.Host}}:8080/health"},
		{[]string{"health", "interval"}, "50ms"},
		{[]string{"health", "healthy_threshold"}, uint64(2)},
		{[]string{"health", "deadline"}, "5s"},
		{[]string{"health", "min_healthy_time"}, "500ms"},
		{[]string{"rollback", "automatic"}, true},
	}
	for _, c := range checks {
		if v := get(c.path...); v != c.want {
			t.Errorf("%s = %#v, want %#v", strings.Join(c.path, "."), v, c.want)
		}
	}
	if hooks := get("hooks", "after_enable"); hooks == nil {
		t.Errorf("extra YAML missing:\n%s", b)
	}
	hosts, _ := get("hosts").([]any)
	if len(hosts) != 2 {
		t.Fatalf("hosts = %#v", get("hosts"))
	}
	if h := hosts[1].(map[string]any); h["name"] != "web2" || h["address"] != "10.200.0.12" || h["lb_server"] != "web/web2" {
		t.Errorf("host = %#v", h)
	}

	// A subset, a percentage batch.
	b, err = l.Plan(PlanParams{Version: "v1", Artifact: "/a.tgz", Batch: "50%", Hosts: []string{"web2"}})
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	if err := yaml.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if hosts, _ := get("hosts").([]any); len(hosts) != 1 || get("strategy", "batch") != "50%" {
		t.Errorf("subset plan:\n%s", b)
	}

	for name, p := range map[string]PlanParams{
		"no version":     {Artifact: "/a.tgz"},
		"bad batch":      {Version: "v1", Artifact: "/a.tgz", Batch: "two"},
		"unknown host":   {Version: "v1", Artifact: "/a.tgz", Hosts: []string{"web9"}},
		"duplicate key":  {Version: "v1", Artifact: "/a.tgz", Extra: "name: other"},
		"bad percentage": {Version: "v1", Artifact: "/a.tgz", MaxFailures: "150%"},
	} {
		if _, err := l.Plan(p); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRunLoad(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			http.Error(w, "boom", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("v7 hostA\n"))
	}))
	defer srv.Close()
	res, err := RunLoad(t.Context(), LoadConfig{URL: srv.URL, Concurrency: 3, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 10 || res.Failures == 0 || res.ByVersion["v7"] != res.Requests-res.Failures || res.ByHost["hostA"] == 0 {
		t.Errorf("result = %+v", res)
	}
	if len(res.FirstErrors) == 0 || !strings.Contains(res.FirstErrors[0], "status 503") {
		t.Errorf("first errors = %v", res.FirstErrors)
	}
}

func TestReadProcStat(t *testing.T) {
	s, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.State == 'Z' || s.StartTime == 0 {
		t.Errorf("self = %+v", s)
	}
	if !sameProcessAlive(os.Getpid(), s.StartTime) || sameProcessAlive(os.Getpid(), s.StartTime+1) {
		t.Error("sameProcessAlive ignores the start time")
	}
}

// TestPlanHAProxyPair: a lab with two HAProxy instances writes a plan that
// lists both runtime APIs (the first through the relay when asked).
func TestPlanHAProxyPair(t *testing.T) {
	l := planLab()
	l.HAProxyAddress = "10.200.0.2:9999"
	l.HAProxies = []HAProxyInstance{{Name: "haproxy", Socket: "/lab/haproxy.sock"}, {Name: "haproxy2", Socket: "/lab/haproxy2.sock"}}
	for _, tc := range []struct {
		tcp  bool
		want string
	}{
		{false, "  haproxy:\n    - socket: /lab/haproxy.sock\n    - socket: /lab/haproxy2.sock\n"},
		{true, "  haproxy:\n    - address: 10.200.0.2:9999\n    - socket: /lab/haproxy2.sock\n"},
	} {
		b, err := l.Plan(PlanParams{Version: "v1", Artifact: "/a.tgz", HAProxyTCP: tc.tcp})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), tc.want) {
			t.Errorf("HAProxyTCP %v: plan lacks\n%s\n%s", tc.tcp, tc.want, b)
		}
	}
}
