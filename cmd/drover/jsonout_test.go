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
	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/orchestrator"
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
	d := fleetOf(2, 1)
	v.begin(d)
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	for _, ev := range []orchestrator.Event{
		{Kind: orchestrator.EventStarted, Version: "v2", Batches: 2, State: deploy.StateRunning},
		{Kind: orchestrator.EventPreflight, Message: "2 hosts ready"},
		{Kind: orchestrator.EventBatch, Batch: 1, Batches: 2, Hosts: []string{"web1"}},
		{Kind: orchestrator.EventStage, Host: "web1", Stage: deploy.StageInstall, Phase: deploy.PhaseRollout, Version: "v2", Elapsed: 1200 * time.Millisecond},
		{Kind: orchestrator.EventProbe, Host: "web1", Stage: deploy.StageVerify, Version: "v2", Error: "status 503"},
		{Kind: orchestrator.EventHostFailed, Host: "web1", Stage: deploy.StageVerify, Phase: deploy.PhaseRollout, Error: "not healthy", Output: "line\n"},
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
	if len(lines) != 10 {
		t.Fatalf("%d lines:\n%s", len(lines), out.String())
	}
	for _, l := range lines {
		validate(t, s, []byte(l))
	}
	if !strings.Contains(lines[3], `"elapsed":1.2`) {
		t.Errorf("elapsed is not in seconds: %s", lines[3])
	}
}
