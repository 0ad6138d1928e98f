package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// failedLedger holds a deployment whose web1 failed in activate after
// printing on both streams.
func failedLedger(t *testing.T) *ledgerControl {
	t.Helper()
	c := &ledgerControl{l: deploy.NewLedger(), by: deploy.Unattended}
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	for _, cmd := range []deploy.Command{
		&deploy.CreateDeployment{Deployment: deploy.Deployment{ID: "d1", Name: "web", Version: "v2", Batches: [][]string{{"web1", "web2"}}}, At: at},
		&deploy.AppendLog{ID: "d1", Chunks: []deploy.LogChunk{
			{Host: "web1", Stage: deploy.StageInstall, Command: "verify and unpack the release", Lines: []deploy.LogLine{{At: at, Stream: deploy.Stdout, Text: "unpacked"}}},
			{Host: "web1", Stage: deploy.StageActivate, Command: "switch current and restart: ./bin/restart", Lines: []deploy.LogLine{
				{At: at.Add(time.Second), Stream: deploy.Stdout, Text: "starting app"},
				{At: at.Add(2 * time.Second), Stream: deploy.Stderr, Text: "fatal: cannot bind :8080"},
			}},
		}},
		&deploy.AppendLog{ID: "d1", Chunks: []deploy.LogChunk{
			{Host: "web1", Stage: deploy.StageActivate, Command: "switch current and restart: ./bin/restart-v1", Lines: []deploy.LogLine{{At: at.Add(3 * time.Second), Stream: deploy.Stdout, Text: "v1 back"}}},
		}},
		&deploy.SetHostStage{ID: "d1", Host: "web1", Stage: deploy.StageFailed, Phase: deploy.PhaseRollout, Error: "web1: activate: switch current and restart: ./bin/restart: exit status 7", At: at},
		&deploy.SetState{ID: "d1", State: deploy.StateFailed, At: at},
	} {
		if err := c.l.Apply(cmd); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestLogsText(t *testing.T) {
	c := failedLedger(t)
	tests := []struct {
		name   string
		q      deploy.LogQuery
		stream deploy.Stream
		want   string // a regexp over the whole output
	}{
		{"one host and stage, both streams apart", deploy.LogQuery{ID: "d1", Host: "web1", Stage: deploy.StageActivate}, "",
			`^== web1 activate: switch current and restart: ./bin/restart\n  \d\d:\d\d:01\.000 stdout starting app\n  \d\d:\d\d:02\.000 stderr fatal: cannot bind :8080\n== web1 activate: switch current and restart: ./bin/restart-v1\n  \d\d:\d\d:03\.000 stdout v1 back\n$`},
		{"stderr only", deploy.LogQuery{ID: "d1", Stage: deploy.StageActivate}, deploy.Stderr,
			`^== web1 activate: [^\n]*\n  \d\d:\d\d:02\.000 stderr fatal: cannot bind :8080\n$`},
		{"nothing recorded", deploy.LogQuery{ID: "d1", Host: "web2"}, "", `^no recorded output for d1 \(failed\)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			p, err := c.logs(context.Background(), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			d, _ := c.get(context.Background(), "d1")
			if err := (&logWriter{w: &b, stream: tc.stream}).page(p, d); err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(tc.want).MatchString(b.String()) {
				t.Errorf("output:\n%s\nwant /%s/", b.String(), tc.want)
			}
		})
	}
}

// --follow on a deployment that has ended prints every line and returns.
func TestFollowLogsReturnsWhenEnded(t *testing.T) {
	c := failedLedger(t)
	var b bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := followLogs(ctx, c, deploy.LogQuery{ID: "d1"}, &logWriter{w: &b, json: true}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "\n"); n != 4 {
		t.Errorf("%d JSON lines, want 4:\n%s", n, b.String())
	}
}

// status names the failed command and shows its last lines with times.
func TestPrintFailures(t *testing.T) {
	c := failedLedger(t)
	d, _ := c.get(context.Background(), "d1")
	var b bytes.Buffer
	printFailures(context.Background(), &b, c, d)
	for _, want := range []string{
		`\nweb1: activate: switch current and restart: ./bin/restart: exit status 7`,
		`last output of activate, switch current and restart: ./bin/restart:`,
		`\d\d:\d\d:02\.000 stderr fatal: cannot bind :8080`,
		`drover logs d1 web1 --stage activate`,
	} {
		if !regexp.MustCompile(want).MatchString(b.String()) {
			t.Errorf("status lacks /%s/:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "unpacked") || strings.Contains(b.String(), "v1 back") {
		t.Errorf("status shows another command's output:\n%s", b.String())
	}
}

// drover logs -o json matches docs/json/logs.schema.json, and --follow's
// lines its $defs/line.
func TestLogsJSONSchema(t *testing.T) {
	c := failedLedger(t)
	d, _ := c.get(context.Background(), "d1")
	p, err := c.logs(context.Background(), deploy.LogQuery{ID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := (&logWriter{w: &b, json: true}).page(p, d); err != nil {
		t.Fatal(err)
	}
	validate(t, schema(t, "logs"), b.Bytes())
	b.Reset()
	if err := followLogs(context.Background(), c, deploy.LogQuery{ID: "d1"}, &logWriter{w: &b, json: true}); err != nil {
		t.Fatal(err)
	}
	c2 := jsonschema.NewCompiler()
	c2.AssertFormat()
	line, err := c2.Compile(filepath.Join("..", "..", "docs", "json", "logs.schema.json") + "#/$defs/line")
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range bytes.Split(bytes.TrimSpace(b.Bytes()), []byte("\n")) {
		validate(t, line, raw)
	}
}
