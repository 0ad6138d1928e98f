// Package webhook sends deployment events to the receivers a plan names
// (notify.webhooks): a JSON body per event, POSTed with an HMAC-SHA256
// signature, retried with backoff from a bounded queue per receiver.
//
// The Notifier follows the replicated event log, not the engine: a slow or
// dead receiver never holds a deployment back, and a leader that takes
// over sends from the same log. It runs only where deployments run (the
// leader; the CLI for a local deploy). Delivery is at least once: every
// event has an ID that is the same on every node and every attempt
// (HeaderDelivery), and a new leader sends again the events of the last
// Replay before it took over, which its predecessor may not have
// delivered; receivers drop IDs they have seen.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/notify"
	"github.com/drover-dev/drover/plans"
)

// Request headers.
const (
	HeaderEvent     = "X-Drover-Event"     // the event name, as in the body
	HeaderDelivery  = "X-Drover-Delivery"  // the event ID: the same on every node and attempt
	HeaderSignature = "X-Drover-Signature" // "sha256=" + hex HMAC-SHA256 of the body
)

// Defaults.
const (
	// Replay is how far back a new leader sends events again.
	Replay         = time.Minute
	DefaultQueue   = 256
	DefaultTries   = 8
	DefaultBackoff = 500 * time.Millisecond
	DefaultTimeout = 10 * time.Second
	maxBackoff     = 30 * time.Second
)

// Source is the replicated state the Notifier follows (a raftstore.Store).
type Source interface {
	Events(id string, after uint64) ([]deploy.Event, uint64)
	Changed() <-chan struct{}
	Deployment(id string) (deploy.Deployment, error)
}

// Config wires a Notifier.
type Config struct {
	Source Source
	// Env reads the HMAC keys' variables (os.LookupEnv), on this node.
	Env func(string) (string, bool)
	// Client sends the requests; nil: one with DefaultTimeout.
	Client *http.Client
	Log    *slog.Logger
	// Queue bounds the undelivered events per receiver (DefaultQueue):
	// past it the oldest is dropped. Tries bounds the attempts per event
	// (DefaultTries), Backoff is the first pause between them (doubling
	// up to 30s, with jitter).
	Queue   int
	Tries   int
	Backoff time.Duration
}

// Payload is the body of each request.
type Payload struct {
	ID         string     `json:"id"`    // = HeaderDelivery
	Event      string     `json:"event"` // = HeaderEvent
	Time       time.Time  `json:"time"`
	Deployment Deployment `json:"deployment"`
	// The deployment's state, for deployment.* events.
	State deploy.DeploymentState `json:"state,omitempty"`
	// The host, its stage and direction, for host.* events.
	Host    string       `json:"host,omitempty"`
	Stage   deploy.Stage `json:"stage,omitempty"`
	Phase   deploy.Phase `json:"phase,omitempty"`
	Message string       `json:"message,omitempty"`
	Error   string       `json:"error,omitempty"`
}

// Deployment says which deployment an event is about.
type Deployment struct {
	ID      string      `json:"id"`
	Name    string      `json:"name"`
	Version string      `json:"version"`
	Kind    deploy.Kind `json:"kind"`
}

// Notifier delivers events. Run it while this node runs deployments.
type Notifier struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	receivers map[receiverKey]*receiver
	hooks     map[string][]plans.Webhook // by deployment ID
	pending   int                        // queued or in flight, all receivers
	seen      uint64                     // Run has dispatched every event up to this Seq
	idle      notify.Signal              // fires when pending or seen changes
}

// New returns a Notifier; nothing is sent before Run.
func New(cfg Config) *Notifier {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: DefaultTimeout}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Env == nil {
		cfg.Env = func(string) (string, bool) { return "", false }
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.Tries <= 0 {
		cfg.Tries = DefaultTries
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	return &Notifier{cfg: cfg, log: cfg.Log, receivers: map[receiverKey]*receiver{}, hooks: map[string][]plans.Webhook{}}
}

// Since is the cursor from which Run sends the events recorded at or after
// t: a new leader passes time.Now().Add(-Replay).
func Since(src Source, t time.Time) uint64 {
	evs, last := src.Events("", 0)
	for _, ev := range evs {
		if !ev.Time.Before(t) {
			return ev.Seq - 1
		}
	}
	return last
}

// Now is the cursor after every event recorded so far: a local deploy
// sends only what it does.
func Now(src Source) uint64 {
	_, last := src.Events("", ^uint64(0))
	return last
}

// Run sends every event after the cursor, and those that follow, until ctx
// ends; deliveries still queued or in flight then are abandoned.
func (n *Notifier) Run(ctx context.Context, after uint64) {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for {
		changed := n.cfg.Source.Changed()
		evs, last := n.cfg.Source.Events("", after)
		for _, ev := range evs {
			if ev.Seq <= after {
				continue
			}
			after = ev.Seq
			n.dispatch(ctx, &wg, ev)
		}
		n.mu.Lock()
		n.seen = max(n.seen, last) // last: every event recorded, read or not wanted
		n.mu.Unlock()
		n.idle.Fire()
		select {
		case <-ctx.Done():
			n.mu.Lock()
			for k, r := range n.receivers {
				n.pending -= r.drop()
				delete(n.receivers, k)
			}
			n.mu.Unlock()
			n.idle.Fire()
			return
		case <-changed:
		}
	}
}

// Flush waits until every event recorded before the call is delivered or
// given up, or ctx ends. A local deploy flushes before the CLI exits: the
// deployment's last event may be recorded but not yet seen by Run, so an
// empty queue alone does not mean everything was sent.
func (n *Notifier) Flush(ctx context.Context) error {
	want := Now(n.cfg.Source)
	for {
		ch := n.idle.C()
		n.mu.Lock()
		p, seen := n.pending, n.seen
		n.mu.Unlock()
		if p == 0 && seen >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			if seen < want {
				return fmt.Errorf("webhooks: %d events not yet read: %w", want-seen, ctx.Err())
			}
			return fmt.Errorf("webhooks: %d deliveries pending: %w", p, ctx.Err())
		case <-ch:
		}
	}
}

// names are the webhook events an event is (the most specific first).
func names(ev deploy.Event) []string {
	switch ev.Kind {
	case deploy.EvCreated:
		return []string{plans.EventDeploymentCreated}
	case deploy.EvState:
		return []string{"deployment." + string(ev.State)}
	case deploy.EvStage:
		if ev.Stage == deploy.StageFailed {
			return []string{plans.EventHostFailed, plans.EventHostStage}
		}
		return []string{plans.EventHostStage}
	}
	return nil
}

// dispatch queues ev for every receiver of its deployment that wants it.
func (n *Notifier) dispatch(ctx context.Context, wg *sync.WaitGroup, ev deploy.Event) {
	evNames := names(ev)
	if len(evNames) == 0 || ev.Deployment == "" {
		return
	}
	hooks, d := n.webhooks(ev.Deployment)
	for _, h := range hooks {
		for _, name := range evNames {
			if !h.Wants(name) {
				continue
			}
			n.enqueue(ctx, wg, h, delivery{payload: Payload{
				ID: fmt.Sprintf("%s-%d", ev.Deployment, ev.Seq), Event: name, Time: ev.Time,
				Deployment: d, State: ev.State, Host: ev.Host, Stage: ev.Stage, Phase: ev.Phase,
				Message: ev.Message, Error: ev.Error,
			}})
			break
		}
	}
}

// webhooks returns the receivers the deployment's plan names, decoded
// once per deployment.
func (n *Notifier) webhooks(id string) ([]plans.Webhook, Deployment) {
	d, err := n.cfg.Source.Deployment(id)
	if err != nil {
		return nil, Deployment{}
	}
	dep := Deployment{ID: d.ID, Name: d.Name, Version: d.Version, Kind: d.Kind}
	n.mu.Lock()
	defer n.mu.Unlock()
	if hs, ok := n.hooks[id]; ok {
		return hs, dep
	}
	var p struct {
		Notify plans.Notify `json:"notify"`
	}
	if err := json.Unmarshal(d.Plan, &p); err != nil {
		n.log.Warn("webhooks: cannot read the deployment's plan", "deployment", id, "err", err)
	}
	n.hooks[id] = p.Notify.Webhooks
	return p.Notify.Webhooks, dep
}

// receiverKey: one queue per URL and key, shared by deployments, so
// that a receiver sees its events in order.
type receiverKey struct{ url, secretEnv string }

type delivery struct{ payload Payload }

type receiver struct {
	key receiverKey
	q   chan delivery
}

// drop empties the queue; it returns how many were dropped.
func (r *receiver) drop() int {
	k := 0
	for {
		select {
		case <-r.q:
			k++
		default:
			return k
		}
	}
}

func (n *Notifier) enqueue(ctx context.Context, wg *sync.WaitGroup, h plans.Webhook, d delivery) {
	key := receiverKey{h.URL, h.SecretEnv}
	n.mu.Lock()
	r, ok := n.receivers[key]
	if !ok {
		r = &receiver{key: key, q: make(chan delivery, n.cfg.Queue)}
		n.receivers[key] = r
		wg.Go(func() { n.work(ctx, r) })
	}
	n.pending++
	for {
		select {
		case r.q <- d:
			n.mu.Unlock()
			return
		default:
		}
		// Full: the receiver is down or slow. Make room by dropping the
		// oldest event, never by waiting.
		select {
		case old := <-r.q:
			n.pending--
			n.log.Warn("webhook queue full: event dropped", "receiver", where(key.url), "id", old.payload.ID, "event", old.payload.Event)
		default:
		}
	}
}

// done counts one delivery finished, sent or given up.
func (n *Notifier) done() {
	n.mu.Lock()
	n.pending--
	n.mu.Unlock()
	n.idle.Fire()
}

// work delivers one receiver's events in order.
func (n *Notifier) work(ctx context.Context, r *receiver) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-r.q:
			n.deliver(ctx, r.key, d)
			n.done()
		}
	}
}

// errPermanent marks an answer that retrying will not change.
var errPermanent = errors.New("refused")

// deliver sends one event, retrying with backoff.
func (n *Notifier) deliver(ctx context.Context, key receiverKey, d delivery) {
	body, err := json.Marshal(d.payload)
	if err != nil {
		return
	}
	var sig string
	if key.secretEnv != "" {
		secret, ok := n.cfg.Env(key.secretEnv)
		if !ok || secret == "" {
			n.log.Error("webhook not sent: its HMAC key's variable is not set on this node",
				"receiver", where(key.url), "variable", key.secretEnv, "id", d.payload.ID, "event", d.payload.Event)
			return
		}
		sig = Sign([]byte(secret), body)
	}
	wait := n.cfg.Backoff
	for try := 1; ; try++ {
		err := n.post(ctx, key.url, body, sig, d.payload)
		if err == nil {
			n.log.Debug("webhook delivered", "receiver", where(key.url), "id", d.payload.ID, "event", d.payload.Event, "try", try)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errPermanent) || try >= n.cfg.Tries {
			n.log.Warn("webhook not delivered: giving up", "receiver", where(key.url), "id", d.payload.ID,
				"event", d.payload.Event, "tries", try, "err", err)
			return
		}
		n.log.Debug("webhook delivery failed, retrying", "receiver", where(key.url), "id", d.payload.ID, "err", err, "in", wait)
		// Jitter spreads the retries of receivers that failed together.
		pause := wait/2 + rand.N(wait/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		wait = min(2*wait, maxBackoff)
	}
}

func (n *Notifier) post(ctx context.Context, u string, body []byte, sig string, p Payload) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "drover-webhook")
	h.Set(HeaderEvent, p.Event)
	h.Set(HeaderDelivery, p.ID)
	if sig != "" {
		h.Set(HeaderSignature, sig)
	}
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		// The URL may carry a token in its path: the error names only
		// the receiver's host.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("POST to %s: %w", where(u), err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return fmt.Errorf("POST to %s: %s", where(u), resp.Status)
	default:
		return fmt.Errorf("%w: POST to %s: %s", errPermanent, where(u), resp.Status)
	}
}

// Sign is the HeaderSignature value of body under key:
// "sha256=" + hex(HMAC-SHA256(key, body)).
func Sign(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig is body's signature under key, in constant
// time: what a receiver written in Go does.
func Verify(key, body []byte, sig string) bool {
	return hmac.Equal([]byte(Sign(key, body)), []byte(sig))
}

// where names a receiver in logs and errors: scheme and host only, since
// a URL's path or query may carry a token (chat webhooks do).
func where(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "(bad URL)"
	}
	return pu.Scheme + "://" + pu.Host
}
