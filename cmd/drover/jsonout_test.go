package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/analysis"
	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/orchestrator"
	"github.com/drover-dev/drover/raftstore"
	"github.com/drover-dev/drover/transport/agent/installer"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schema compiles docs/json/NAME.schema.json.
func schema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(filepath.Join("..", "..", "docs", "json", name+".schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validate(t *testing.T, s *jsonschema.Schema, raw []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not JSON: %v\n%s", err, raw)
	}
	if err := s.Validate(v); err != nil {
		t.Errorf("%s\ndoes not match the documented schema: %v", raw, err)
	}
}

// A ledger with a finished deployment (one host failed and rolled back)
// and a running one.
func jsonLedger(t *testing.T) deploy.Ledger {
	t.Helper()
	l := deploy.NewLedger()
	// Both hosts ran v1 before (what a finished deploy of v1 records).
	l.Hosts["web1"] = &deploy.HostRecord{Name: "web1", Current: "v1"}
	l.Hosts["web2"] = &deploy.HostRecord{Name: "web2", Current: "v1"}
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	host := func(name string) *deploy.HostProgress {
		return &deploy.HostProgress{Name: name, Stage: deploy.StagePending, Phase: deploy.PhaseRollout, Target: "v2", FromCurrent: "v1"}
	}
	cmds := []deploy.Command{
		&deploy.CreateDeployment{At: t0, Deployment: deploy.Deployment{ID: "d1", Name: "web", Version: "v2", Kind: deploy.KindDeploy, By: "client ops", Message: "fix the login page",
			Batches: [][]string{{"web1"}, {"web2"}}, Hosts: map[string]*deploy.HostProgress{"web1": host("web1"), "web2": host("web2")}}},
		&deploy.SetState{ID: "d1", State: deploy.StateRollingBack, At: t0.Add(time.Second)},
		&deploy.SetState{ID: "d1", State: deploy.StateRolledBack, Error: "1 host(s) failed", At: t0.Add(2 * time.Second)},
		&deploy.CreateDeployment{At: t0.Add(time.Minute), Deployment: deploy.Deployment{ID: "d2", Name: "web", Version: "v3", Kind: deploy.KindDeploy,
			Batches: [][]string{{"web1"}, {"web2"}}, Hosts: map[string]*deploy.HostProgress{"web1": host("web1"), "web2": host("web2")}}},
	}
	for _, c := range cmds {
		if err := l.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func TestStatusAndHistoryJSONMatchTheSchema(t *testing.T) {
	l := jsonLedger(t)
	dep := schema(t, "deployment")
	var ds []deploy.Deployment
	for _, id := range l.Order {
		d := l.Deployments[id].Clone()
		ds = append(ds, d)
		var b bytes.Buffer
		if err := writeJSON(&b, statusJSON(nil, map[string]string{"web1": "UP", "web2": "MAINT"}, d)); err != nil {
			t.Fatal(err)
		}
		validate(t, dep, b.Bytes())
	}
	var b bytes.Buffer
	if err := writeJSON(&b, historyJSON(ds)); err != nil {
		t.Fatal(err)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(b.Bytes(), &items); err != nil || len(items) != 2 {
		t.Fatalf("history: %v, %d items", err, len(items))
	}
	for _, it := range items {
		validate(t, dep, it)
	}
	if !strings.Contains(string(items[0]), `"id": "d2"`) || !strings.Contains(string(items[0]), `"batch": 1`) {
		t.Errorf("history is not newest first with the running one's batch:\n%s", b.String())
	}
	for _, want := range []string{`"duration_seconds": 2`, `"ended": "2026-11-29T10:00:02Z"`, `"from": "v1"`, `"by": "client ops"`, `"message": "fix the login page"`} {
		if !strings.Contains(string(items[1]), want) {
			t.Errorf("finished deployment lacks %s:\n%s", want, items[1])
		}
	}
}

// Every event the views print in JSON matches the schema, and the schema
// names every kind the engine has (a new kind must be documented).
func TestEventJSONMatchesTheSchema(t *testing.T) {
	s := schema(t, "event")
	src, err := os.ReadFile(filepath.Join("..", "..", "orchestrator", "events.go"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "json", "event.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := regexp.MustCompile(`EventKind = "([a-z_]+)"`).FindAllStringSubmatch(string(src), -1)
	if len(kinds) < 10 {
		t.Fatalf("found %d event kinds in orchestrator/events.go", len(kinds))
	}
	for _, k := range kinds {
		if !strings.Contains(string(doc), `"`+k[1]+`"`) {
			t.Errorf("event kind %q is not in docs/json/event.schema.json", k[1])
		}
	}
	var out bytes.Buffer
	v, _ := newView(&out, "json")
	v.note("waiting up to 2m for the hosts held by d0") // before the deployment exists
	d := fleetOf(2, 1)
	v.begin(d)
	v.note("stopping: no new hosts will start")
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	for _, ev := range []orchestrator.Event{
		{Kind: orchestrator.EventStarted, Version: "v2", Batches: 2, State: deploy.StateRunning},
		{Kind: orchestrator.EventPreflight, Message: "2 hosts ready"},
		{Kind: orchestrator.EventBatch, Batch: 1, Batches: 2, Hosts: []string{"web1"}},
		{Kind: orchestrator.EventStage, Host: "web1", Stage: deploy.StageInstall, Phase: deploy.PhaseRollout, Version: "v2", Elapsed: 1200 * time.Millisecond},
		{Kind: orchestrator.EventProbe, Host: "web1", Stage: deploy.StageVerify, Version: "v2", Error: "status 503"},
		{Kind: orchestrator.EventHostFailed, Host: "web1", Stage: deploy.StageVerify, Phase: deploy.PhaseRollout, Error: "not healthy", Output: "line\n"},
		{Kind: orchestrator.EventCanary, Batch: 1, Hosts: []string{"web1"}, Weights: map[string]int{"web/web1": 1, "web/web2": 9}, Share: 10, Message: "web1 at 10% of the traffic"},
		{Kind: orchestrator.EventAnalysis, Batch: 1, Batches: 2, Hosts: []string{"web1"}, Message: "watching gates errors for 30s, every 5s"},
		{Kind: orchestrator.EventGate, Batch: 1, Message: "error_rate 5% (want error_rate < 1%; 200 requests)", Sample: &analysis.Sample{
			Gate: "errors", Verdict: analysis.Fail, Condition: "error_rate < 1%", Metric: "error_rate", Value: 0.05, Threshold: 0.01, Requests: 200, At: t0}},
		{Kind: orchestrator.EventRollback, Message: "1 host failed"},
		{Kind: orchestrator.EventFinished, State: deploy.StateRolledBack, Error: "1 host(s) failed"},
	} {
		ev.Time, ev.Deployment = t0, "d1"
		v.event(ev)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 13 {
		t.Fatalf("%d lines:\n%s", len(lines), out.String())
	}
	for _, l := range lines {
		validate(t, s, []byte(l))
	}
	if !strings.Contains(lines[5], `"elapsed":1.2`) {
		t.Errorf("elapsed is not in seconds: %s", lines[5])
	}
}

// items splits a JSON array into its items, each validated against s.
func validateItems(t *testing.T, s *jsonschema.Schema, raw []byte, wantN int) {
	t.Helper()
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		t.Fatalf("not a JSON array: %v\n%s", err, raw)
	}
	if len(items) != wantN {
		t.Fatalf("%d items, want %d:\n%s", len(items), wantN, raw)
	}
	for _, it := range items {
		validate(t, s, it)
	}
}

// Every other -o json output matches its documented schema: the plan (run
// through the command), the build, and the cluster listings (built from
// what the API returns, as the commands do; e2e runs them on a cluster).
func TestCommandJSONMatchesTheSchemas(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"app-2.0.1.tar.gz": "x",
		"plan.yaml": `name: web
version: ${WEB_VERSION}
hosts:
  - {name: web1, address: 10.0.0.1, lb_server: web/web1}
  - {name: web2, address: 10.0.0.2, lb_server: web/web2}
  - {name: web3, address: 10.0.0.3, lb_server: web/web3}
load_balancer:
  haproxy: [{socket: /run/haproxy/admin.sock}, {address: "10.0.0.9:9999"}]
strategy: {batches: [1, 50%], max_failures: 1, pause: 1500ms}
release: {artifact: "app-${WEB_VERSION}.tar.gz", path: /srv/app, restart: /bin/true}
health: {http: {url: "http://{{.Host}}:8080/health"}, deadline: 90s}
hooks: {after_install: [echo installed]}
analysis:
  prometheus: {url: "http://10.0.0.8:9090"}
  gates:
    - {name: errors, haproxy: "error_rate < 1%"}
    - {name: p99, prometheus: {query: "histogram_quantile(0.99, x)", condition: "result < 0.5"}}
`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("WEB_VERSION", "2.0.1")
	plan := filepath.Join(dir, "plan.yaml")
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	run := func(args ...string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			out, err := runRoot(t, args...)
			if err != nil {
				t.Fatalf("drover %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return []byte(out)
		}
	}
	encode := func(v any) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			var b bytes.Buffer
			if err := writeJSON(&b, v); err != nil {
				t.Fatal(err)
			}
			return b.Bytes()
		}
	}
	for _, tc := range []struct {
		name   string
		schema string
		out    func(t *testing.T) []byte
		items  int // an array of this many; 0: one object
		want   []string
	}{
		{name: "plan show", schema: "plan", out: run("plan", "show", plan, "-o", "json", "--set", "version=2.0.2"),
			want: []string{`"version": "2.0.2"`, `"batches": [
    [
      "web1"
    ],
    [
      "web2",
      "web3"
    ]
  ]`, `"pause_seconds": 1.5`, `"deadline_seconds": 90`, `"max_failures": 1`, `"haproxy": "error_rate < 1%"`, `"from": "--set"`, `"from": "environment"`}},
		{name: "plan validate", schema: "plan", out: run("plan", "validate", plan, "-o", "json"), want: []string{`"version": "2.0.1"`}},
		{name: "version", schema: "version", out: run("version", "-o", "json"), want: []string{`"go_version"`}},
		{name: "cluster members", schema: "member", items: 3, out: encode(membersJSON([]api.Member{
			{ID: "c1", RaftAddr: "10.0.0.5:7000", HTTPAddr: "10.0.0.5:7443", Voter: true, Leader: true, Reachable: true, State: "Leader", AppliedIndex: 42},
			{ID: "c2", RaftAddr: "10.0.0.6:7000", HTTPAddr: "10.0.0.6:7443", Voter: true, Reachable: true, State: "Follower", LastContactMS: 1500, AppliedIndex: 41},
			{ID: "c3", RaftAddr: "10.0.0.7:7000", Voter: false, LastContactMS: -1, Error: "dial tcp: connection refused"},
		})), want: []string{`"last_contact_seconds": 1.5`}},
		{name: "hosts", schema: "agent", items: 2, out: encode(orEmpty([]api.AgentInfo{
			{Name: "web1", Address: "10.0.0.1:50000", Version: "1.2.0", Arch: "linux/amd64", State: "online", LastHeartbeat: t0, Enrolled: t0.Add(-time.Hour)},
			{Name: "web2", State: "revoked", Enrolled: t0},
		})), want: []string{`"last_heartbeat": "2026-11-29T10:00:00Z"`}},
		{name: "no hosts", schema: "agent", out: encode(orEmpty([]api.AgentInfo(nil)))},
		{name: "token list", schema: "token", items: 2, out: encode(orEmpty([]api.TokenInfo{
			{Name: "ops", Role: raftstore.RoleManage, Created: t0},
			{Name: "agent-join-web3", Role: raftstore.RoleAgentJoin, Created: t0, Expires: t0.Add(15 * time.Minute), Agent: "web3", Used: true},
		})), want: []string{`"expires": "2026-11-29T10:15:00Z"`}},
		{name: "agent install", schema: "agent-install", items: 2, out: encode(installJSON([]installer.Result{
			{Host: "web3", Action: installer.ActionInstalled, Supervisor: installer.SupervisorDrover},
			{Host: "web4", Action: installer.ActionUnchanged, Supervisor: installer.SupervisorSystemd},
		})), want: []string{`"action": "installed"`}},
		{name: "token create", schema: "new-token", out: func(t *testing.T) []byte {
			var b bytes.Buffer
			if err := printToken(&b, "json", api.TokenResponse{Name: "viewer", Role: raftstore.RoleRead, Token: "drv_abc"}); err != nil {
				t.Fatal(err)
			}
			return b.Bytes()
		}, want: []string{`"token": "drv_abc"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := tc.out(t)
			s := schema(t, tc.schema)
			switch {
			case tc.name == "no hosts":
				if strings.TrimSpace(string(raw)) != "[]" {
					t.Errorf("an empty list prints %s, want []", raw)
				}
			case tc.items > 0:
				validateItems(t, s, raw, tc.items)
			default:
				validate(t, s, raw)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(raw), w) {
					t.Errorf("output lacks %s:\n%s", w, raw)
				}
			}
		})
	}
}

// Every schema in docs/json is named in docs/json.md, and compiles.
func TestEverySchemaIsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "json.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "json", "*.schema.json"))
	if err != nil || len(files) < 7 {
		t.Fatalf("schemas: %v %v", files, err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".schema.json")
		schema(t, name)
		if !strings.Contains(string(doc), "(json/"+filepath.Base(f)+")") {
			t.Errorf("docs/json.md does not link json/%s", filepath.Base(f))
		}
	}
}

// An --output value drover does not know is a usage error that lists the
// ones it does, on every command.
func TestUnknownOutputIsAUsageError(t *testing.T) {
	for _, args := range [][]string{{"history"}, {"version"}, {"plan", "show", "x.yaml"}, {"hosts"}, {"deploy", "x.yaml"}} {
		_, err := runRoot(t, append(args, "-o", "yaml")...)
		if code := exitCode(err); code != exitUsage || err == nil || !strings.Contains(err.Error(), `--output "yaml": want one of auto, text, json`) {
			t.Errorf("drover %s -o yaml: exit %d, %v; want exit %d listing auto, text, json", strings.Join(args, " "), code, err, exitUsage)
		}
	}
}

// An output set in the config file is checked too, and names the file; a
// flag still beats it.
func TestUnknownOutputInTheConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("output: yaml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DROVER_CONFIG", cfg)
	_, err := runRoot(t, "version")
	if code := exitCode(err); code != exitUsage || err == nil || !strings.Contains(err.Error(), "config "+cfg+`: output "yaml": want one of auto, text, json`) {
		t.Errorf("output: yaml in the config: exit %d, %v", code, err)
	}
	if out, err := runRoot(t, "version", "-o", "json"); err != nil || !strings.Contains(out, `"go_version"`) {
		t.Errorf("-o json over the config's output: %v\n%s", err, out)
	}
}
