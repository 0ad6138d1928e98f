package plans

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseReportsEveryProblemAtOnce(t *testing.T) {
	f := newFixture(t, nil)
	src := `name: web
hosts:
  - name: web1
    address: 10.0.0.1:0
  - name: web1
    address: 10.0.0.2
strategy:
  batch: 0
  max_failures: 10%
  pause: soon
release:
  artifact: missing.tar.gz
  path: relative/app
health:
  tcp: {port: 8080}
  command: "true"
  deadline: 30ms
`
	_, err := f.parse(src)
	want := lines(
		`plan.yaml:1:1: missing required key "version" (the release being rolled out, e.g. "2.0.1")`,
		`plan.yaml:4:14: hosts[0].address: port must be a number between 1 and 65535, got "10.0.0.1:0"`,
		`plan.yaml:5:11: hosts[1].name: duplicate host name "web1" (also hosts[0], line 3)`,
		`plan.yaml:8:10: strategy.batch: must be a positive count or a percentage like "25%", got 0`,
		`plan.yaml:10:10: strategy.pause: must be a duration like "200ms" or "30s", got "soon"`,
		`plan.yaml:12:3: release: missing required key "restart" (the command that restarts the app after `+"`current`"+` moves)`,
		`plan.yaml:12:13: release.artifact: file $DIR/missing.tar.gz does not exist`,
		`plan.yaml:13:9: release.path: must be an absolute path like /srv/app, got "relative/app"`,
		`plan.yaml:16:3: health.command: only one check may be set; tcp is already set`,
		`plan.yaml:17:13: health.deadline: must be at least health.interval (1s), got 30ms`,
	)
	if got := f.problems(t, err); got != want {
		t.Errorf("problems:\n got:\n%s\nwant:\n%s", got, want)
	}
	var list *Errors
	if !errors.As(err, &list) || len(*list) != 10 {
		t.Fatalf("want 10 problems in *Errors, got %v", err)
	}
	var one Error
	if !errors.As(err, &one) || one.Line != 1 || one.Col != 1 || one.File != filepath.Join(f.dir, "plan.yaml") {
		t.Errorf("errors.As(Error) = %+v", one)
	}
	if !errors.Is(one, ErrInvalid) {
		t.Errorf("a single Error is not ErrInvalid")
	}
}

func TestParseKeepsThePathAsGiven(t *testing.T) {
	f := newFixture(t, nil)
	t.Chdir(f.dir)
	_, err := Parse("plan.yaml", []byte("name: web\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "plan.yaml:1:1: ") {
		t.Fatalf("got %v", err)
	}
}

func TestLoad(t *testing.T) {
	f := newFixture(t, nil)
	path := filepath.Join(f.dir, "web.yaml")
	if err := os.WriteFile(path, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Path != path || p.Dir != f.dir {
		t.Errorf("Path, Dir = %q, %q", p.Path, p.Dir)
	}

	_, err = Load(filepath.Join(f.dir, "nope.yaml"))
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v; want ErrInvalid and fs.ErrNotExist", err)
	}
}

func TestParseDefaults(t *testing.T) {
	f := newFixture(t, nil)
	p, err := f.parse(base)
	if err != nil {
		t.Fatal(err)
	}
	want := &Plan{
		Path:    filepath.Join(f.dir, "plan.yaml"),
		Dir:     f.dir,
		Name:    "web",
		Version: "1.0",
		Hosts:   []Host{{Name: "web1", Address: "10.0.0.1:22", Transport: TransportSSH}},
		SSH: SSH{
			User:            "deployer",
			KnownHosts:      filepath.Join(f.dir, "home", ".ssh", "known_hosts"),
			HostKeyChecking: HostKeyStrict,
			ConnectTimeout:  10 * time.Second,
			CommandTimeout:  5 * time.Minute,
		},
		LoadBalancer: LoadBalancer{
			DrainTimeout:   30 * time.Second,
			OnDrainTimeout: DrainTimeoutFail,
			EnableTimeout:  30 * time.Second,
		},
		Strategy: Strategy{Batches: []Size{{N: 1}}, MinInService: Size{N: 1}, Concurrency: DefaultConcurrency},
		Release: Release{
			Artifact: filepath.Join(f.dir, "app.tar.gz"),
			Path:     "/srv/app",
			Restart:  "/bin/true",
			Keep:     5,
		},
		Health: Health{
			Command:          "true",
			Interval:         time.Second,
			Timeout:          2 * time.Second,
			HealthyThreshold: 3,
			Deadline:         60 * time.Second,
		},
		Rollback: Rollback{Automatic: true},
		Keys: map[string]Position{
			"release.artifact": {File: filepath.Join(f.dir, "plan.yaml"), Line: 4, Col: 21},
			"release.path":     {File: filepath.Join(f.dir, "plan.yaml"), Line: 4, Col: 39},
			"health.command":   {File: filepath.Join(f.dir, "plan.yaml"), Line: 5, Col: 19},
		},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got  %+v\nwant %+v", p, want)
	}
	if p.MaxFailures() != 0 {
		t.Errorf("MaxFailures = %d", p.MaxFailures())
	}
}

func TestParseFullPlan(t *testing.T) {
	f := newFixture(t, nil)
	src := `name: web                         # one running deployment per name
version: "2.0.1"

hosts:
  - name: web1
    address: 10.200.0.11
    lb_server: web/web1
    transport: ssh
  - name: web2
    address: "10.200.0.12:2222"
    lb_server: web/web2
    transport: agent
  - name: web3
    address: "[fd00::3]"
    lb_server: web/web3

ssh:
  user: deploy
  identity_file: keys/id_deploy
  known_hosts: ~/known
  host_key_checking: accept-new
  connect_timeout: 3s
  command_timeout: 90s
  session_per_command: true

load_balancer:
  haproxy:
    address: 127.0.0.1:9999
  drain_timeout: 45s
  on_drain_timeout: force
  enable_timeout: 5s

strategy:
  batches: [1, "50%"]
  max_failures: "34%"
  pause: 250ms
  concurrency: 8

release:
  artifact: ./app.tar.gz
  strip_components: 1
  path: /srv/app/
  restart: /srv/app/current/bin/restart
  keep: 3

health:
  http:
    url: "https://{{.Host}}:8443/health?name={{.Name}}&v={{.Version}}"
    status: 204
    body_contains: ok
  interval: 200ms
  timeout: 1s
  healthy_threshold: 2
  deadline: 20s
  min_healthy_time: 2s

rollback:
  automatic: false

hooks:
  before_drain: [echo draining]
  after_install: []
  after_activate:
    - |
      set -e
      ./migrate
  after_enable: ["echo done"]
`
	p, err := f.parse(src)
	if err != nil {
		t.Fatal(err)
	}
	wantHosts := []Host{
		{Name: "web1", Address: "10.200.0.11:22", LBServer: "web/web1", Transport: TransportSSH},
		{Name: "web2", Address: "10.200.0.12:2222", LBServer: "web/web2", Transport: TransportAgent},
		{Name: "web3", Address: "[fd00::3]:22", LBServer: "web/web3", Transport: TransportSSH},
	}
	if !reflect.DeepEqual(p.Hosts, wantHosts) {
		t.Errorf("Hosts = %+v", p.Hosts)
	}
	wantSSH := SSH{
		User:            "deploy",
		IdentityFile:    filepath.Join(f.dir, "keys", "id_deploy"),
		KnownHosts:      filepath.Join(f.dir, "home", "known"),
		HostKeyChecking: HostKeyAcceptNew,
		ConnectTimeout:  3 * time.Second,
		CommandTimeout:  90 * time.Second,

		SessionPerCommand: true,
	}
	if p.SSH != wantSSH {
		t.Errorf("SSH = %+v", p.SSH)
	}
	wantLB := LoadBalancer{
		HAProxy:        HAProxies{{Address: "127.0.0.1:9999"}},
		DrainTimeout:   45 * time.Second,
		OnDrainTimeout: DrainTimeoutForce,
		EnableTimeout:  5 * time.Second,
	}
	if !reflect.DeepEqual(p.LoadBalancer, wantLB) {
		t.Errorf("LoadBalancer = %+v", p.LoadBalancer)
	}
	wantStrategy := Strategy{
		Batches:      []Size{{N: 1}, {N: 50, Percent: true}},
		MaxFailures:  Size{N: 34, Percent: true},
		Pause:        250 * time.Millisecond,
		MinInService: Size{N: 1},
		Concurrency:  8,
	}
	if !reflect.DeepEqual(p.Strategy, wantStrategy) {
		t.Errorf("Strategy = %+v", p.Strategy)
	}
	if got := p.MaxFailures(); got != 2 { // 34% of 3, rounded up
		t.Errorf("MaxFailures = %d, want 2", got)
	}
	wantRelease := Release{Artifact: filepath.Join(f.dir, "app.tar.gz"), StripComponents: 1, Path: "/srv/app", Restart: "/srv/app/current/bin/restart", Keep: 3}
	if p.Release != wantRelease {
		t.Errorf("Release = %+v", p.Release)
	}
	wantHealth := Health{
		HTTP:             &HTTPCheck{URL: "https://{{.Host}}:8443/health?name={{.Name}}&v={{.Version}}", Status: 204, BodyContains: "ok"},
		Interval:         200 * time.Millisecond,
		Timeout:          time.Second,
		HealthyThreshold: 2,
		Deadline:         20 * time.Second,
		MinHealthyTime:   2 * time.Second,
	}
	if !reflect.DeepEqual(p.Health, wantHealth) {
		t.Errorf("Health = %+v", p.Health)
	}
	if p.Rollback.Automatic {
		t.Errorf("Rollback.Automatic = true")
	}
	wantHooks := Hooks{
		BeforeDrain:   []string{"echo draining"},
		AfterActivate: []string{"set -e\n./migrate\n"},
		AfterEnable:   []string{"echo done"},
	}
	if !reflect.DeepEqual(p.Hooks, wantHooks) {
		t.Errorf("Hooks = %#v", p.Hooks)
	}
	for i, want := range []string{
		"https://10.200.0.11:8443/health?name=web1&v=2.0.1",
		"https://10.200.0.12:8443/health?name=web2&v=2.0.1",
		"https://[fd00::3]:8443/health?name=web3&v=2.0.1",
	} {
		if got, err := p.HealthURL(p.Hosts[i]); err != nil || got != want {
			t.Errorf("HealthURL(%s) = %q, %v; want %q", p.Hosts[i].Name, got, err, want)
		}
	}
	if h, ok := p.HostByName("web2"); !ok || h.Address != "10.200.0.12:2222" {
		t.Errorf("HostByName(web2) = %+v, %v", h, ok)
	}
	if _, ok := p.HostByName("web9"); ok {
		t.Errorf("HostByName(web9) found a host")
	}
}

func TestParseValidVariants(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		src   string
		check func(t *testing.T, p *Plan)
	}{
		{
			name:  "inventory instead of hosts",
			files: map[string]string{"inv/hosts.yaml": "- {name: a, address: a.example.com}\n- {name: b, address: b.example.com:2200}\n"},
			src:   head + "inventory: inv/hosts.yaml\n" + tail,
			check: func(t *testing.T, p *Plan) {
				if len(p.Hosts) != 2 || p.Hosts[1].Address != "b.example.com:2200" || !strings.HasSuffix(p.Inventory, filepath.Join("inv", "hosts.yaml")) {
					t.Errorf("Hosts = %+v, Inventory = %q", p.Hosts, p.Inventory)
				}
			},
		},
		{
			name: "anchors, aliases and merge keys",
			src: head + `hosts:
  - &web {name: web1, address: 10.0.0.1, lb_server: web/web1}
  - <<: *web
    name: web2
    address: 10.0.0.2
    lb_server: web/web2
load_balancer: {haproxy: {socket: /run/haproxy.sock}}
` + tail + "hooks: {after_install: &cmds [make], after_enable: *cmds}\n",
			check: func(t *testing.T, p *Plan) {
				if len(p.Hosts) != 2 || p.Hosts[1].Name != "web2" || p.Hosts[1].LBServer != "web/web2" {
					t.Errorf("Hosts = %+v", p.Hosts)
				}
				if !reflect.DeepEqual(p.Hooks.AfterEnable, []string{"make"}) {
					t.Errorf("AfterEnable = %q", p.Hooks.AfterEnable)
				}
			},
		},
		{
			name: "batch as a percentage and an explicit string tag",
			src:  "name: web\nversion: !!str 2\n" + hostsLine + tail + "strategy: {batch: 25%, max_failures: 0}\n",
			check: func(t *testing.T, p *Plan) {
				if p.Version != "2" || !reflect.DeepEqual(p.Strategy.Batches, []Size{{N: 25, Percent: true}}) {
					t.Errorf("Version = %q, Batches = %+v", p.Version, p.Strategy.Batches)
				}
			},
		},
		{
			name: "tcp check, empty optional sections",
			src:  head + hostsLine + releaseLine + "health: {tcp: {port: 8080}}\nssh:\nhooks:\nrollback:\n",
			check: func(t *testing.T, p *Plan) {
				if p.Health.TCP == nil || p.Health.TCP.Port != 8080 || !p.Rollback.Automatic || p.SSH.User != "deployer" {
					t.Errorf("Health = %+v, Rollback = %+v, SSH = %+v", p.Health, p.Rollback, p.SSH)
				}
			},
		},
		{
			name: "haproxy socket relative to the plan",
			src: head + "hosts: [{name: web1, address: 10.0.0.1, lb_server: be/web1}]\n" + tail +
				"load_balancer: {haproxy: {socket: run/admin.sock}}\nstrategy: {allow_full_outage: true}\n",
			check: func(t *testing.T, p *Plan) {
				if len(p.LoadBalancer.HAProxy) != 1 || p.LoadBalancer.HAProxy[0].Socket != filepath.Join(p.Dir, "run", "admin.sock") {
					t.Errorf("HAProxy = %+v", p.LoadBalancer.HAProxy)
				}
			},
		},
		{
			name: "an haproxy pair as a list",
			src: head + "hosts: [{name: web1, address: 10.0.0.1, lb_server: be/web1}, {name: web2, address: 10.0.0.2, lb_server: be/web2}]\n" + tail +
				"load_balancer:\n  haproxy:\n    - socket: run/admin.sock\n    - {address: 10.0.0.3:9999}\n",
			check: func(t *testing.T, p *Plan) {
				want := HAProxies{{Socket: filepath.Join(p.Dir, "run", "admin.sock")}, {Address: "10.0.0.3:9999"}}
				if !reflect.DeepEqual(p.LoadBalancer.HAProxy, want) {
					t.Errorf("HAProxy = %+v, want %+v", p.LoadBalancer.HAProxy, want)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.files)
			p, err := f.parse(tc.src)
			if err != nil {
				t.Fatal(f.problems(t, err))
			}
			tc.check(t, p)
		})
	}
}

// TestHAProxiesJSON: plans recorded in the replicated log before lists
// held one HAProxy object; they still decode, and lists round-trip.
func TestHAProxiesJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want HAProxies
	}{
		{`{"haproxy":{"socket":"/run/a.sock"}}`, HAProxies{{Socket: "/run/a.sock"}}},
		{`{"haproxy":[{"socket":"/run/a.sock"},{"address":"10.0.0.3:9999"}]}`, HAProxies{{Socket: "/run/a.sock"}, {Address: "10.0.0.3:9999"}}},
		{`{}`, nil},
	} {
		var lb LoadBalancer
		if err := json.Unmarshal([]byte(tc.in), &lb); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if !reflect.DeepEqual(lb.HAProxy, tc.want) {
			t.Errorf("%s: HAProxy = %+v, want %+v", tc.in, lb.HAProxy, tc.want)
		}
		b, err := json.Marshal(lb)
		if err != nil {
			t.Fatal(err)
		}
		var again LoadBalancer
		if err := json.Unmarshal(b, &again); err != nil || !reflect.DeepEqual(again.HAProxy, tc.want) {
			t.Errorf("round trip of %s: %s -> %+v, %v", tc.in, b, again.HAProxy, err)
		}
	}
	var lb LoadBalancer
	if err := json.Unmarshal([]byte(`{"haproxy":"x"}`), &lb); err == nil {
		t.Errorf("a string decoded as HAProxy: %+v", lb.HAProxy)
	}
}
