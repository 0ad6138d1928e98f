package plans

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const samplePlan = `name: web
version: "2.0.1"
hosts:
  - {name: web1, address: 10.200.0.11, lb_server: web/web1}
  - {name: web2, address: 10.200.0.12, lb_server: web/web2}
  - {name: web3, address: "10.200.0.13:2222", lb_server: web/web3, transport: agent}
ssh: {user: deploy}
load_balancer:
  haproxy: {socket: /run/haproxy/admin.sock}
strategy:
  batch: 2
  max_failures: 1
  pause: 5s
release:
  artifact: app.tar.gz
  path: /srv/app
  restart: /srv/app/current/bin/restart
health:
  http:
    url: "http://{{.Host}}:8080/health"
    body_contains: ok
hooks:
  before_drain: [notify-start]
  after_install: [make assets]
  after_activate: [warm-cache]
  after_enable: [notify-done]
`

func TestDescribe(t *testing.T) {
	f := newFixture(t, nil)
	p, err := f.parse(samplePlan)
	if err != nil {
		t.Fatal(f.problems(t, err))
	}
	var b strings.Builder
	if err := p.Describe(&b); err != nil {
		t.Fatal(err)
	}
	out := strings.ReplaceAll(b.String(), f.dir, "$DIR")
	sum := sha256.Sum256([]byte("not really a tarball, but not empty"))
	hexSum := hex.EncodeToString(sum[:])

	for _, want := range []string{
		"plan web ($DIR/plan.yaml)",
		"  version:        2.0.1",
		"  artifact:       $DIR/app.tar.gz (35 bytes, sha256 " + hexSum + ")",
		"  hosts:          3",
		"  batches:        2 (sizes 2, 1; strategy batch 2), pause 5s between batches",
		"  failure budget: 1 of 3 hosts may fail (max_failures 1); one more stops the rollout",
		"  rollback:       automatic, to each host's previous release",
		"  load balancer:  haproxy runtime API at socket /run/haproxy/admin.sock",
		"batch 1 of 2 (2 hosts: web1, web2)",
		"  pause 5s before the next batch",
		"batch 2 of 2 (1 host: web3)",
		"    preflight: connect to the drover agent at 10.200.0.13:2222",
		"  budget: up to 1 failed host tolerated and the rollout goes on; failure 2 stops it.",
		"  rollback (automatic): when the rollout stops, every host it touched goes back to its previous release",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("output lacks line %q\n%s", want, out)
		}
	}

	// web1's actions, in order.
	web1 := []string{
		"  host web1 (10.200.0.11:22, ssh)",
		"    preflight: connect via ssh to deploy@10.200.0.11:22 (host key checking strict, known_hosts $DIR/home/.ssh/known_hosts, timeout 10s)",
		"    preflight: check tar and sha256sum are installed and the disk under /srv/app has room for the release",
		"    preflight: lb: check web/web1 exists in haproxy",
		"    hook before_drain: notify-start (in /srv/app)",
		"    lb: drain web/web1 (set server state drain, wait for 0 sessions, then maint; timeout 30s, on timeout: fail)",
		"    upload $DIR/app.tar.gz -> /srv/app/.drover/2.0.1.tar (sha256 " + hexSum + ", checked after upload)",
		"    unpack into /srv/app/releases/2.0.1",
		"    hook after_install: make assets (in /srv/app/releases/2.0.1)",
		"    activate: ln -sfn releases/2.0.1 /srv/app/current (atomic rename)",
		"    run restart: /srv/app/current/bin/restart",
		"    hook after_activate: warm-cache (in /srv/app/releases/2.0.1)",
		`    verify: http GET http://10.200.0.11:8080/health expect 200 and a body containing "ok" (timeout 2s each), 3 consecutive passes every 1s within 60s, then watch 0s`,
		"    lb: enable web/web1 (set server state ready), wait until UP (timeout 30s)",
		"    hook after_enable: notify-done (in /srv/app/releases/2.0.1)",
		"    prune releases beyond keep=5 in /srv/app/releases (never the current or the previous one)",
		"  host web2 (10.200.0.12:22, ssh)",
	}
	if !strings.Contains(out, strings.Join(web1, "\n")+"\n") {
		t.Errorf("output lacks web1's actions in order:\n%s\n--- got ---\n%s", strings.Join(web1, "\n"), out)
	}
	if !strings.Contains(out, "verify: http GET http://10.200.0.12:8080/health expect 200") {
		t.Errorf("web2's health URL is not rendered for web2:\n%s", out)
	}
}

// describe parses src and returns its plan and what plan show prints.
func describe(t *testing.T, src string) (*Plan, string) {
	t.Helper()
	f := newFixture(t, nil)
	p, err := f.parse(src)
	if err != nil {
		t.Fatal(f.problems(t, err))
	}
	var b strings.Builder
	if err := p.Describe(&b); err != nil {
		t.Fatal(err)
	}
	return p, b.String()
}

// mustContain fails t for each of wants that out lacks.
func mustContain(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q\n%s", want, out)
		}
	}
}

func TestDescribeWithoutBalancer(t *testing.T) {
	p, out := describe(t, head+hostsLine+releaseLine+"health: {tcp: {port: 8080}}\nrollback: {automatic: false}\n")
	mustContain(t, out,
		"  load balancer:  none (hosts are not drained)\n",
		"    lb: none configured, the host is not drained and keeps its traffic\n",
		"    verify: tcp connect to 10.0.0.1:8080 (timeout 2s each), 3 consecutive passes every 1s within 60s, then watch 0s\n",
		"  budget: no failures allowed: the first failed host stops the rollout; no further batch starts.\n",
		"  rollback (manual): the rollout stops and hosts stay as they are; run drover rollback ID to restore the previous release.\n",
	)
	if strings.Contains(out, "lb: enable") || strings.Contains(out, "lb: drain") {
		t.Errorf("balancer actions without a balancer:\n%s", out)
	}
	if _, err := p.HealthURL(p.Hosts[0]); err == nil {
		t.Errorf("HealthURL without an http check succeeded")
	}
}

// plan show lists each webhook with its events, and names the variable of
// its key without reading it.
func TestDescribeWebhooks(t *testing.T) {
	t.Setenv("DROVER_WEBHOOK_KEY", "hunter2")
	_, out := describe(t, base+"notify:\n  webhooks:\n    - {url: \"https://h/x\", secret_env: DROVER_WEBHOOK_KEY}\n    - {url: \"http://h/y\", events: [host.stage]}\n")
	mustContain(t, out,
		"  webhook:        https://h/x (deployment.created, deployment.paused, deployment.rolling_back, deployment.succeeded, deployment.failed, deployment.rolled_back, deployment.aborted, host.failed; signed with the HMAC key in $DROVER_WEBHOOK_KEY on the sender)\n",
		"  webhook:        http://h/y (host.stage; unsigned)\n",
	)
	if strings.Contains(out, "hunter2") {
		t.Errorf("plan show prints the HMAC key:\n%s", out)
	}
}

func TestDescribeFailsWhenTheArtifactIsGone(t *testing.T) {
	f := newFixture(t, nil)
	p, err := f.parse(base)
	if err != nil {
		t.Fatal(f.problems(t, err))
	}
	p.Release.Artifact = filepath.Join(f.dir, "gone.tar.gz")
	if err := p.Describe(&strings.Builder{}); err == nil {
		t.Fatal("Describe succeeded without an artifact")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestDescribeReportsWriteErrors(t *testing.T) {
	f := newFixture(t, nil)
	p, err := f.parse(base)
	if err != nil {
		t.Fatal(f.problems(t, err))
	}
	if err := p.Describe(failingWriter{}); err == nil || err.Error() != "disk full" {
		t.Fatalf("Describe = %v, want the write error", err)
	}
}

func TestFmtDuration(t *testing.T) {
	for d, want := range map[string]string{
		"0s": "0s", "200ms": "200ms", "1s": "1s", "60s": "60s", "90s": "90s", "2m": "2m",
		"5m": "5m", "2h": "2h", "90m": "1h30m", "1.5s": "1.5s", "12m30s": "12m30s",
	} {
		dur, err := time.ParseDuration(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmtDuration(dur); got != want {
			t.Errorf("fmtDuration(%s) = %s, want %s", d, got, want)
		}
	}
}

// TestDescribeHAProxyPairAndConcurrency: plan show names every HAProxy
// instance, says each step acts on all of them, and tells how many hosts
// are set up at once when the fleet is larger than strategy.concurrency.
func TestDescribeHAProxyPairAndConcurrency(t *testing.T) {
	src := strings.Replace(samplePlan, "  haproxy: {socket: /run/haproxy/admin.sock}\n",
		"  haproxy:\n    - {socket: /run/haproxy/admin.sock}\n    - {address: 10.200.0.3:9999}\n", 1)
	src = strings.Replace(src, "  pause: 5s\n", "  pause: 5s\n  concurrency: 2\n", 1)
	_, out := describe(t, src)
	mustContain(t, out,
		"  hosts:          3 (connected to, checked in preflight and pruned 2 at a time: strategy.concurrency)",
		"  load balancer:  2 haproxy instances, runtime API at socket /run/haproxy/admin.sock, address 10.200.0.3:9999 (every host is drained and enabled on each)",
		"preflight: lb: check web/web1 exists in haproxy on each of the 2 instances",
		"lb: drain web/web1 on each of the 2 instances (set server state drain",
		"lb: enable web/web1 on each of the 2 instances (set server state ready)",
	)
}

func TestDescribeAnalysis(t *testing.T) {
	f := newFixture(t, nil)
	p, err := f.parse(samplePlan + `analysis:
  interval: 1s
  duration: 10s
  prometheus: {url: "http://prom:9090"}
  gates:
    - {name: errors, haproxy: "error_rate < 1%"}
    - {name: app, prometheus: {query: "sum(x)", condition: "result < 0.5"}}
`)
	if err != nil {
		t.Fatal(f.problems(t, err))
	}
	var b strings.Builder
	if err := p.Describe(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"  analysis:       after each batch, every 1s for 10s; a gate fails after 2 failing samples in a row\n",
		"    gate errors: haproxy counters of the servers on 2.0.1: want error_rate < 1% (at least 50 requests a sample)\n",
		"    gate app: prometheus http://prom:9090: sum(x), want result < 0.5\n",
		"  analysis: with the batch back in rotation, sample gates errors, app every 1s for 10s; a failed gate fails this batch's hosts\n",
		"  a batch fails when an analysis gate fails: 2 failing samples in a row, or no passing sample in 10s.\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("plan show lacks %q:\n%s", want, b.String())
		}
	}
	if n := strings.Count(b.String(), "  analysis: with the batch"); n != 2 {
		t.Errorf("analysis step shown %d times, want once per batch (2)", n)
	}
}

func TestDescribeCanary(t *testing.T) {
	f := newFixture(t, nil)
	src := strings.Replace(samplePlan, "strategy:\n", "strategy:\n  canary: {hosts: 1, weight: 10%, duration: 30s}\n", 1)
	p, err := f.parse(src + "analysis: {interval: 1s, duration: 10s, gates: [{name: errors, haproxy: \"error_rate < 1%\"}]}\n")
	if err != nil {
		t.Fatal(f.problems(t, err))
	}
	var b strings.Builder
	if err := p.Describe(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"  canary:         1 host(s) at 10% of the traffic for 30s (strategy.canary), as batch 1, before the other batches\n",
		"batch 1 of 2 (canary, 1 host: web1)\n",
		"; strategy canary 1, then batch ",
		"  canary: record every server's weight, then set HAProxy weights so that web1 gets 10% of their backend's traffic\n",
		"  canary: sample gates errors every 1s for 30s; a failed gate fails the canary hosts\n",
		"  canary: set every server back to its recorded weight (also when the deployment fails, is aborted or rolls back)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("plan show lacks %q:\n%s", want, b.String())
		}
	}
	if n := strings.Count(b.String(), "  analysis: with the batch"); n != 1 {
		t.Errorf("analysis step shown %d times, want once, after the one batch that is not the canary", n)
	}
}
