package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testwait"
	"github.com/drover-dev/drover/lab"
	"github.com/drover-dev/drover/orchestrator"
	"github.com/drover-dev/drover/webhook"
)

// hookReceiver is a webhook receiver on the lab's control address: a real
// HTTP server that the coordinators reach over the lab's bridge.
type hookReceiver struct {
	url string
	mu  sync.Mutex
	got []hookRequest
}

type hookRequest struct {
	from   string // the sender's IP
	header http.Header
	body   []byte
	p      webhook.Payload
}

func newHookReceiver(t *testing.T, l *lab.Lab) *hookReceiver {
	t.Helper()
	ln, err := l.ListenControl(0)
	if err != nil {
		t.Fatal(err)
	}
	r := &hookReceiver{url: "http://" + ln.Addr().String() + "/drover"}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var p webhook.Payload
		_ = json.Unmarshal(b, &p)
		host, _, _ := net.SplitHostPort(req.RemoteAddr)
		r.mu.Lock()
		r.got = append(r.got, hookRequest{host, req.Header.Clone(), b, p})
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

// of returns the requests about version's deployment.
func (r *hookReceiver) of(version string) []hookRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []hookRequest
	for _, g := range r.got {
		if g.p.Deployment.Version == version {
			out = append(out, g)
		}
	}
	return out
}

func (r *hookReceiver) has(version, event string) bool {
	for _, g := range r.of(version) {
		if g.p.Event == event {
			return true
		}
	}
	return false
}

func (r *hookReceiver) dump(version string) func() string {
	return func() string {
		var b strings.Builder
		for _, g := range r.of(version) {
			fmt.Fprintf(&b, "%s from %s: %s %s %s\n", g.p.ID, g.from, g.p.Event, g.p.Host, g.p.Stage)
		}
		return b.String()
	}
}

// TestClusterWebhooks: real coordinators send a plan's webhooks to a real
// receiver: from the leader only, each signed with the key in the
// coordinators' environment, which appears in neither the replicated state
// nor the logs; after the leader is killed mid-rollout, the new leader
// carries on and the deployment's end still arrives (at least once, with
// the IDs every node gives the same event).
func TestClusterWebhooks(t *testing.T) {
	kb := make([]byte, 16)
	_, _ = rand.Read(kb)
	key := "hook-" + hex.EncodeToString(kb)
	// The coordinators inherit it: the lab starts them with this environment.
	t.Setenv("DROVER_WEBHOOK_E2E", key)
	c := newCluster(t, 4)
	rcv := newHookReceiver(t, c.lab)
	addrOf := map[string]string{}
	for _, n := range c.nodes {
		addrOf[n.Name] = n.Address
	}
	plan := func(version string) string {
		return c.plan(version, false, "2", func(p *lab.PlanParams) {
			p.HAProxyTCP, p.MinHealthyTime = true, 200*time.Millisecond
			p.Extra = fmt.Sprintf("notify:\n  webhooks:\n    - url: %s\n      events: [\"*\"]\n      secret_env: DROVER_WEBHOOK_E2E\n", rcv.url)
		})
	}
	checkSigned := func(t *testing.T, reqs []hookRequest) {
		t.Helper()
		for _, g := range reqs {
			if sig := g.header.Get(webhook.HeaderSignature); !webhook.Verify([]byte(key), g.body, sig) {
				t.Errorf("%s %s: signature %q does not verify", g.p.ID, g.p.Event, sig)
			}
			if g.header.Get(webhook.HeaderDelivery) != g.p.ID {
				t.Errorf("%s: %s is %q", g.p.ID, webhook.HeaderDelivery, g.header.Get(webhook.HeaderDelivery))
			}
		}
	}

	t.Run("key not set on the leader", func(t *testing.T) {
		c.t = t
		p := c.plan("v0", false, "2", func(p *lab.PlanParams) {
			p.HAProxyTCP = true
			p.Extra = fmt.Sprintf("notify:\n  webhooks:\n    - {url: %q, secret_env: DROVER_WEBHOOK_NOT_SET}\n", rcv.url)
		})
		code, d := c.runWith(c.env(), "deploy", p)
		at := regexp.MustCompile(`plan-v0\.yaml:[0-9]+:[0-9]+: notify\.webhooks\[0\]\.secret_env: DROVER_WEBHOOK_NOT_SET is not set in the environment of the sender \(coordinator c[0-9]`)
		if msg := d.stderr.String(); code != 2 || !at.MatchString(msg) {
			t.Fatalf("deploy naming an unset key: exit %d, want 2 with the key's position\n%s", code, msg)
		}
	})

	t.Run("steady leader", func(t *testing.T) {
		c.t = t
		leader := c.waitLeader(c.nodes)
		if code, d := c.runWith(c.env(), "deploy", plan("v1")); code != 0 {
			t.Fatalf("deploy v1: exit %d\n%s", code, d.stdout.text())
		}
		testwait.Within(t, 30*time.Second, "deployment.succeeded at the receiver",
			func() bool { return rcv.has("v1", "deployment.succeeded") }, rcv.dump("v1"))
		reqs := rcv.of("v1")
		checkSigned(t, reqs)
		seen := map[string]bool{}
		done := map[string]bool{}
		for _, g := range reqs {
			if g.from != addrOf[leader] {
				t.Errorf("%s %s sent from %s, not from the leader %s (%s)", g.p.ID, g.p.Event, g.from, leader, addrOf[leader])
			}
			if seen[g.p.ID] {
				t.Errorf("%s %s delivered twice without a failover", g.p.ID, g.p.Event)
			}
			seen[g.p.ID] = true
			if g.p.Event == "host.stage" && g.p.Stage == "done" {
				done[g.p.Host] = true
			}
		}
		if first, last := reqs[0].p.Event, reqs[len(reqs)-1].p.Event; first != "deployment.created" || last != "deployment.succeeded" {
			t.Errorf("events from %s to %s, want deployment.created to deployment.succeeded", first, last)
		}
		if len(done) != 4 {
			t.Errorf("host.stage done for %d hosts, want 4:\n%s", len(done), rcv.dump("v1")())
		}
		t.Logf("v1: %d webhook requests, all from the leader %s", len(reqs), leader)
	})

	t.Run("leader killed mid-rollout", func(t *testing.T) {
		c.t = t
		d := c.startWith(c.env(), "deploy", plan("v2"))
		d.stdout.waitFor(t, "the first host in a stage", func(ev orchestrator.Event) bool { return ev.Kind == orchestrator.EventStage })
		killed := c.waitLeader(c.nodes)
		if err := c.Procs[killed].Kill(); err != nil {
			t.Fatalf("kill -9 %s: %v", killed, err)
		}
		if code := d.wait(t); code != 0 {
			t.Fatalf("deploy v2 with the leader killed: exit %d\n%s\n%s", code, d.stdout.text(), d.stderr.String())
		}
		testwait.Within(t, 30*time.Second, "deployment.succeeded at the receiver",
			func() bool { return rcv.has("v2", "deployment.succeeded") }, rcv.dump("v2"))
		reqs := rcv.of("v2")
		checkSigned(t, reqs)
		senders := map[string]int{}
		ids := map[string]int{}
		for _, g := range reqs {
			senders[g.from]++
			ids[g.p.ID]++
		}
		var end hookRequest
		for _, g := range reqs {
			if g.p.Event == "deployment.succeeded" {
				end = g
			}
		}
		if end.from == addrOf[killed] {
			t.Errorf("the end was sent by the killed leader %s", killed)
		}
		if !rcv.has("v2", "deployment.created") {
			t.Errorf("deployment.created never arrived:\n%s", rcv.dump("v2")())
		}
		dups := 0
		for _, n := range ids {
			dups += n - 1
		}
		t.Logf("v2: %d requests, %d distinct events, %d repeats (the new leader's replay), senders %v", len(reqs), len(ids), dups, senders)
		c.startServer(killed, false)
		c.waitMembers(3)
	})

	// The key is read from the environment when signing: it is in no
	// coordinator's data dir (the Raft log, snapshots) and no log.
	t.Run("key in no state and no log", func(t *testing.T) {
		for _, dir := range []string{filepath.Join(c.lab.Dir, "coord"), filepath.Join(c.lab.Dir, "logs")} {
			err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
				if err != nil || e.IsDir() {
					return err
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				if bytes.Contains(b, []byte(key)) {
					t.Errorf("the HMAC key is in %s", path)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestLocalWebhooks: without a cluster the CLI itself sends the webhooks,
// signed with the key from its own environment, and has delivered the
// deployment's end when it exits.
func TestLocalWebhooks(t *testing.T) {
	s := newSession(t, 2)
	rcv := newHookReceiver(t, s.lab)
	const key = "local-hook-key"
	plan := s.plan("v1", false, "1", func(p *lab.PlanParams) {
		p.Extra = fmt.Sprintf("notify:\n  webhooks:\n    - {url: %q, secret_env: DROVER_WEBHOOK_LOCAL}\n", rcv.url)
	})
	d := s.launch([]string{"DROVER_WEBHOOK_LOCAL=" + key}, "deploy", plan, "--data-dir", s.dataDir, "--output", "json")
	if code := d.wait(t); code != 0 {
		t.Fatalf("deploy v1: exit %d\n%s", code, d.stderr.String())
	}
	reqs := rcv.of("v1")
	var events []string
	for _, g := range reqs {
		events = append(events, g.p.Event)
		if !webhook.Verify([]byte(key), g.body, g.header.Get(webhook.HeaderSignature)) {
			t.Errorf("%s %s: signature does not verify", g.p.ID, g.p.Event)
		}
	}
	// The default events: the start and the end (no host failed).
	if want := []string{"deployment.created", "deployment.succeeded"}; strings.Join(events, " ") != strings.Join(want, " ") {
		t.Errorf("when drover exited the receiver had %v, want %v", events, want)
	}
}
