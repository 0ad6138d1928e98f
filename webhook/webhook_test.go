package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/notify"
	"github.com/drover-dev/drover/plans"
)

// source is a replicated state in memory: events appended by the test.
type source struct {
	mu      sync.Mutex
	evs     []deploy.Event
	deps    map[string]deploy.Deployment
	changed notify.Signal
}

func newSource(hooks ...plans.Webhook) *source {
	plan, _ := json.Marshal(plans.Plan{Name: "web", Notify: plans.Notify{Webhooks: hooks}})
	return &source{deps: map[string]deploy.Deployment{
		"d1": {ID: "d1", Name: "web", Version: "2.0", Kind: deploy.KindDeploy, Plan: plan},
	}}
}

func (s *source) add(evs ...deploy.Event) {
	s.mu.Lock()
	for _, ev := range evs {
		ev.Seq = uint64(len(s.evs) + 1)
		if ev.Deployment == "" {
			ev.Deployment = "d1"
		}
		if ev.Time.IsZero() {
			ev.Time = time.Now()
		}
		s.evs = append(s.evs, ev)
	}
	s.mu.Unlock()
	s.changed.Fire()
}

func (s *source) Events(id string, after uint64) ([]deploy.Event, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []deploy.Event
	for _, ev := range s.evs {
		if ev.Seq > after && (id == "" || ev.Deployment == id) {
			out = append(out, ev)
		}
	}
	return out, uint64(len(s.evs))
}

func (s *source) Changed() <-chan struct{} { return s.changed.C() }

func (s *source) Deployment(id string) (deploy.Deployment, error) {
	d, ok := s.deps[id]
	if !ok {
		return d, deploy.ErrUnknownDeployment
	}
	return d, nil
}

// received is one request a receiver got.
type received struct {
	header http.Header
	body   []byte
	p      Payload
}

// receiver is a local HTTP receiver; answer decides each status code.
type recv struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	more   notify.Signal
	answer func(n int) int
}

func newReceiver(t *testing.T, answer func(n int) int) *recv {
	r := &recv{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var p Payload
		_ = json.Unmarshal(b, &p)
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Clone(), b, p})
		n := len(r.got)
		r.mu.Unlock()
		r.more.Fire()
		code := http.StatusNoContent
		if r.answer != nil {
			code = r.answer(n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.Close)
	return r
}

// wait returns the requests once there are n of them.
func (r *recv) wait(t *testing.T, n int) []received {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		ch := r.more.C()
		r.mu.Lock()
		got := append([]received(nil), r.got...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("receiver got %d requests, want %d", len(got), n)
		}
	}
}

func (r *recv) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.got) }

// logs collects what the notifier logs, to check that no key leaks.
type logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logs) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

const key = "k3y-never-logged"

func start(t *testing.T, src *source, cfg Config) (*Notifier, *logs) {
	t.Helper()
	lg := &logs{}
	cfg.Source = src
	cfg.Log = slog.New(slog.NewTextHandler(lg, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Env = func(name string) (string, bool) {
		if name == "DROVER_WEBHOOK_KEY" {
			return key, true
		}
		return "", false
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Millisecond
	}
	n := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx, 0) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after its context ended")
		}
		if strings.Contains(lg.String(), key) {
			t.Errorf("the HMAC key is in the log:\n%s", lg)
		}
	})
	return n, lg
}

var rollout = []deploy.Event{
	{Kind: deploy.EvCreated},
	{Kind: deploy.EvState, State: deploy.StateRunning},
	{Kind: deploy.EvStage, Host: "web1", Stage: deploy.StageDrain, Phase: deploy.PhaseRollout},
	{Kind: deploy.EvStage, Host: "web1", Stage: deploy.StageFailed, Phase: deploy.PhaseRollout, Error: "health: 503"},
	{Kind: deploy.EvRequest, Message: "pause"},
	{Kind: deploy.EvState, State: deploy.StateRolledBack},
}

// Each receiver gets the events it subscribes to, in order, each signed
// over its body, with the same ID in the header and the body.
func TestDeliversSubscribedEventsSigned(t *testing.T) {
	all := newReceiver(t, nil)
	def := newReceiver(t, nil)
	src := newSource(
		plans.Webhook{URL: all.URL + "/all", Events: []string{plans.EventAll}, SecretEnv: "DROVER_WEBHOOK_KEY"},
		plans.Webhook{URL: def.URL + "/default"},
	)
	start(t, src, Config{})
	src.add(rollout...)

	tests := []struct {
		r      *recv
		events []string
		signed bool
	}{
		{all, []string{"deployment.created", "deployment.running", "host.stage", "host.failed", "deployment.rolled_back"}, true},
		{def, []string{"deployment.created", "host.failed", "deployment.rolled_back"}, false},
	}
	for _, tc := range tests {
		got := tc.r.wait(t, len(tc.events))
		for i, g := range got {
			if g.p.Event != tc.events[i] || g.header.Get(HeaderEvent) != tc.events[i] {
				t.Errorf("request %d: event %q (header %q), want %q", i, g.p.Event, g.header.Get(HeaderEvent), tc.events[i])
			}
			if g.p.ID == "" || g.header.Get(HeaderDelivery) != g.p.ID {
				t.Errorf("request %d: delivery header %q, body id %q", i, g.header.Get(HeaderDelivery), g.p.ID)
			}
			if g.p.Deployment != (Deployment{ID: "d1", Name: "web", Version: "2.0", Kind: deploy.KindDeploy}) {
				t.Errorf("request %d: deployment %+v", i, g.p.Deployment)
			}
			sig := g.header.Get(HeaderSignature)
			switch {
			case tc.signed && !Verify([]byte(key), g.body, sig):
				t.Errorf("request %d: signature %q does not verify", i, sig)
			case tc.signed && Verify([]byte("other"), g.body, sig):
				t.Errorf("request %d: signature verifies under another key", i)
			case !tc.signed && sig != "":
				t.Errorf("request %d: unsigned webhook sent %s: %q", i, HeaderSignature, sig)
			}
		}
		if got[3%len(got)].p.Event == "host.failed" && got[3].p.Error != "health: 503" {
			t.Errorf("host.failed carries error %q", got[3].p.Error)
		}
	}
}

// A receiver that answers 503 gets the same event again (same ID) until it
// takes it; one that answers 400 is not asked again.
func TestRetriesWithBackoff(t *testing.T) {
	tests := []struct {
		name     string
		answer   func(n int) int
		requests int
	}{
		{"503 twice", func(n int) int {
			if n <= 2 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		}, 3},
		{"400 is final", func(int) int { return http.StatusBadRequest }, 1},
		{"gives up after Tries", func(int) int { return http.StatusBadGateway }, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newReceiver(t, tc.answer)
			src := newSource(plans.Webhook{URL: r.URL, Events: []string{plans.EventDeploymentCreated}})
			n, _ := start(t, src, Config{Tries: 4})
			src.add(rollout[0])
			got := r.wait(t, tc.requests)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := n.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if c := r.count(); c != tc.requests {
				t.Fatalf("%d requests, want %d", c, tc.requests)
			}
			for _, g := range got {
				if g.p.ID != got[0].p.ID {
					t.Errorf("a retry has ID %q, the first %q", g.p.ID, got[0].p.ID)
				}
			}
		})
	}
}

// A receiver that never answers holds back neither the notifier (its queue
// is bounded and drops the oldest) nor the other receivers.
func TestDeadReceiverBlocksNothing(t *testing.T) {
	release := make(chan struct{})
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(dead.Close)
	t.Cleanup(func() { close(release) })
	live := newReceiver(t, nil)
	src := newSource(
		plans.Webhook{URL: dead.URL, Events: []string{plans.EventAll}},
		plans.Webhook{URL: live.URL},
	)
	n, lg := start(t, src, Config{Queue: 4})
	src.add(rollout[0])
	for range 200 {
		src.add(deploy.Event{Kind: deploy.EvStage, Host: "h", Stage: deploy.StageDrain})
	}
	src.add(deploy.Event{Kind: deploy.EvState, State: deploy.StateSucceeded})
	// The live receiver has both ends of the deployment while the dead one
	// still holds its first request.
	if got := live.wait(t, 2); got[1].p.Event != plans.EventDeploymentSucceeded {
		t.Errorf("live receiver got %s, want %s", got[1].p.Event, plans.EventDeploymentSucceeded)
	}
	n.mu.Lock()
	pending := n.pending
	n.mu.Unlock()
	// Of 202 events: one in flight to the dead receiver, at most Queue
	// waiting for it, and perhaps the live one's last, answered but not
	// yet counted.
	if pending > 1+4+1 {
		t.Errorf("%d deliveries pending, want at most 6 (a bounded queue)", pending)
	}
	if !strings.Contains(lg.String(), "webhook queue full: event dropped") {
		t.Errorf("no drop was logged:\n%s", lg)
	}
}

// A webhook whose key's variable is not set on this node is not sent
// unsigned: it is skipped, and the log names the variable.
func TestMissingKeyIsNotSentUnsigned(t *testing.T) {
	r := newReceiver(t, nil)
	other := newReceiver(t, nil)
	src := newSource(
		plans.Webhook{URL: r.URL, SecretEnv: "DROVER_WEBHOOK_UNSET"},
		plans.Webhook{URL: other.URL},
	)
	n, lg := start(t, src, Config{})
	src.add(rollout[0])
	other.wait(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if c := r.count(); c != 0 {
		t.Fatalf("%d requests without the key, want 0", c)
	}
	if !strings.Contains(lg.String(), "variable=DROVER_WEBHOOK_UNSET") {
		t.Errorf("the log does not name the variable:\n%s", lg)
	}
}

// Since starts at the first event at or after t.
func TestSince(t *testing.T) {
	src := newSource()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	src.add(deploy.Event{Kind: deploy.EvCreated, Time: t0},
		deploy.Event{Kind: deploy.EvState, Time: t0.Add(time.Minute)},
		deploy.Event{Kind: deploy.EvState, Time: t0.Add(2 * time.Minute)})
	tests := []struct {
		at   time.Time
		want uint64
	}{
		{t0.Add(-time.Hour), 0},
		{t0.Add(30 * time.Second), 1},
		{t0.Add(time.Minute), 1},
		{t0.Add(time.Hour), 3},
	}
	for _, tc := range tests {
		if got := Since(src, tc.at); got != tc.want {
			t.Errorf("Since(%s) = %d, want %d", tc.at.Sub(t0), got, tc.want)
		}
	}
	if got := Now(src); got != 3 {
		t.Errorf("Now = %d, want 3", got)
	}
}

// Flush waits for the events recorded before it was called even when Run
// has not read them yet: a local deploy's last event is recorded just
// before the CLI flushes and exits.
func TestFlushWaitsForEventsNotYetRead(t *testing.T) {
	r := newReceiver(t, nil)
	src := newSource(plans.Webhook{URL: r.URL})
	src.add(rollout[0], rollout[1], rollout[5])
	n := New(Config{Source: src})
	flushed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		flushed <- n.Flush(ctx)
	}()
	select {
	case err := <-flushed:
		t.Fatalf("Flush returned (%v) before Run read the events", err)
	case <-time.After(100 * time.Millisecond):
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx, 0) }()
	defer func() { cancel(); <-done }()
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if c := r.count(); c != 2 {
		t.Errorf("receiver had %d requests when Flush returned, want 2 (created, rolled_back)", c)
	}
}
