package plans

// This file decodes the optional `notify:` section: webhooks that the
// sending coordinator (the leader; the CLI for a local deploy) calls on
// deployment events. A webhook's HMAC key is never written in the plan,
// which is recorded in the replicated state: like secrets:, the plan names
// an environment variable, and the sender reads it from its own
// environment when it signs (see package webhook).

import (
	"net/url"
	"slices"
	"strings"

	"github.com/drover-dev/drover/plans/yamlpos"
	"github.com/goccy/go-yaml/ast"
)

// Notify is where deployment events are sent.
type Notify struct {
	Webhooks []Webhook `json:"webhooks,omitempty"`
}

// Webhook is one receiver of deployment events.
type Webhook struct {
	URL string `json:"url"`
	// Events are the event names sent (WebhookEvents); empty means
	// DefaultWebhookEvents.
	Events []string `json:"events,omitempty"`
	// SecretEnv names the environment variable, on the sending node,
	// that holds the HMAC-SHA256 key of the signature header; "" sends
	// unsigned requests. The key itself never enters the plan.
	SecretEnv string `json:"secret_env,omitempty"`
}

// WebhookSecretPrefix starts the name of every variable that may hold a
// webhook's HMAC key: a plan, written by an API client, cannot make the
// sender sign with any other variable of its environment (a cloud
// credential, say) and send the result where the plan says.
const WebhookSecretPrefix = "DROVER_WEBHOOK_"

func isSet(env func(string) (string, bool), name string) bool {
	v, ok := env(name)
	return ok && v != ""
}

// Webhook event names: what a receiver subscribes to in events:.
const (
	EventDeploymentCreated     = "deployment.created"
	EventDeploymentRunning     = "deployment.running"
	EventDeploymentPaused      = "deployment.paused"
	EventDeploymentRollingBack = "deployment.rolling_back"
	EventDeploymentSucceeded   = "deployment.succeeded"
	EventDeploymentFailed      = "deployment.failed"
	EventDeploymentRolledBack  = "deployment.rolled_back"
	EventDeploymentAborted     = "deployment.aborted"
	EventHostStage             = "host.stage"  // a host entered a stage (many per host)
	EventHostFailed            = "host.failed" // a host failed
	// EventAll subscribes to every event.
	EventAll = "*"
)

// WebhookEvents are the names events: accepts, EventAll aside.
var WebhookEvents = []string{
	EventDeploymentCreated, EventDeploymentRunning, EventDeploymentPaused, EventDeploymentRollingBack,
	EventDeploymentSucceeded, EventDeploymentFailed, EventDeploymentRolledBack, EventDeploymentAborted,
	EventHostStage, EventHostFailed,
}

// DefaultWebhookEvents are sent when events: is absent: a deployment's
// start, pause, rollback and end, and each failed host.
var DefaultWebhookEvents = []string{
	EventDeploymentCreated, EventDeploymentPaused, EventDeploymentRollingBack, EventDeploymentSucceeded,
	EventDeploymentFailed, EventDeploymentRolledBack, EventDeploymentAborted, EventHostFailed,
}

// Wants reports whether the webhook subscribes to the named event.
func (w Webhook) Wants(event string) bool {
	evs := w.Events
	if len(evs) == 0 {
		evs = DefaultWebhookEvents
	}
	return slices.Contains(evs, EventAll) || slices.Contains(evs, event)
}

var (
	notifyKeys  = []string{"webhooks"}
	webhookKeys = []string{"url", "events", "secret_env"}
)

func (l *loader) notify(top *mapping, p *Plan) {
	nm, ok := top.OptMapping("notify", notifyKeys...)
	if !ok || nm == nil {
		return
	}
	v, present, ok := nm.Get("webhooks")
	if !present || !ok || v.K == kNull {
		return
	}
	if v.K != kSeq {
		l.errorf(v.P, "notify.webhooks: must be a list of webhooks, like [{url: https://hooks.example.com/drover}], got %s", v)
		return
	}
	for i, e := range v.N.(*ast.SequenceNode).Values {
		path := index("notify.webhooks", i)
		ev, ok := nm.D.Value(e, path)
		if !ok {
			continue
		}
		if ev.K != kMap {
			l.errorf(ev.P, "%s: must be a mapping with url, events and secret_env, got %s", path, ev)
			continue
		}
		// A literal key has a clear way out rather than "unknown key".
		if wm, ok := nm.D.Mapping(ev, path, append(webhookKeys, "secret")...); ok {
			if w, ok := l.webhook(wm, path); ok {
				p.Notify.Webhooks = append(p.Notify.Webhooks, w)
			}
		}
	}
}

// webhook decodes one entry of notify.webhooks.
func (l *loader) webhook(m *mapping, path string) (Webhook, bool) {
	var w Webhook
	good := true
	if m.Has("secret") {
		l.errorf(m.KeyPos("secret"), "%s.secret: the HMAC key is not written in the plan (the plan is recorded in the replicated state); "+
			"put it in an environment variable of the coordinators and name it: secret_env: DROVER_WEBHOOK_SECRET", path)
		good = false
	}
	if s, sp, ok := m.NonEmpty("url", true, "where events are POSTed, like https://hooks.example.com/drover"); ok {
		u, err := url.Parse(s)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			l.errorf(sp, "%s.url: must be an http:// or https:// URL with a host, got %s", path, quote(s))
			good = false
		case u.User != nil:
			l.errorf(sp, "%s.url: must not carry credentials (user:password@): the URL is recorded and shown; sign requests with secret_env instead", path)
			good = false
		default:
			w.URL = s
		}
	} else {
		good = false
	}
	if !l.webhookEvents(m, path, &w) {
		good = false
	}
	if m.Has("secret_env") {
		if s, sp, ok := m.NonEmpty("secret_env", false, ""); ok {
			switch {
			case !envNameRE.MatchString(s) || !strings.HasPrefix(s, WebhookSecretPrefix) || s == WebhookSecretPrefix:
				l.errorf(sp, "%s.secret_env: must be the name of an environment variable that starts with %s (the sender signs with no other variable), got %s",
					path, WebhookSecretPrefix, quote(s))
				good = false
			case l.opts.SenderEnv != nil && !isSet(l.opts.SenderEnv, s):
				l.errorf(sp, "%s.secret_env: %s is not set in the environment of the sender (%s)", path, s, l.opts.Sender)
				good = false
			default:
				w.SecretEnv = s
			}
		} else {
			good = false
		}
	}
	return w, good
}

// webhookEvents decodes events:, each name checked where it is written.
func (l *loader) webhookEvents(m *mapping, path string, w *Webhook) bool {
	v, present, ok := m.Get("events")
	if !present || (ok && v.K == kNull) {
		return true
	}
	if !ok {
		return false
	}
	path += ".events"
	if v.K != kSeq {
		l.errorf(v.P, "%s: must be a list of event names, like [deployment.succeeded, deployment.failed], got %s", path, v)
		return false
	}
	good := true
	seen := map[string]bool{}
	for i, e := range v.N.(*ast.SequenceNode).Values {
		ip := index(path, i)
		ev, ok := m.D.Value(e, ip)
		if !ok {
			good = false
			continue
		}
		s, sp, ok := m.D.AsString(ev, ip)
		switch {
		case !ok:
			good = false
		case s != EventAll && !slices.Contains(WebhookEvents, s):
			if near := yamlpos.Suggest(s, WebhookEvents); near != "" {
				l.errorf(sp, "%s: unknown event %s; did you mean %s?", ip, quote(s), quote(near))
			} else {
				l.errorf(sp, "%s: unknown event %s; expected %s or %s", ip, quote(s), strings.Join(WebhookEvents, ", "), quote(EventAll))
			}
			good = false
		case seen[s]:
			l.errorf(sp, "%s: %s is listed twice", ip, quote(s))
			good = false
		default:
			seen[s] = true
			w.Events = append(w.Events, s)
		}
	}
	return good
}
