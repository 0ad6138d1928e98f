package plans

import (
	"path/filepath"
	"reflect"
	"testing"
)

// notify.webhooks: each problem where it is written; the HMAC key is only
// ever named, never given.
func TestNotifyWebhooks(t *testing.T) {
	f := newFixture(t, map[string]string{"app.tar.gz": "x"})
	tests := []struct {
		name string
		src  string
		want []Webhook // or
		err  string    // the problems
	}{
		{"absent", "", nil, ""},
		{"one, defaults", "notify: {webhooks: [{url: \"https://h.example/x\"}]}\n",
			[]Webhook{{URL: "https://h.example/x"}}, ""},
		{"full", "notify:\n  webhooks:\n    - url: http://127.0.0.1:9/hook\n      events: [deployment.succeeded, host.failed]\n      secret_env: DROVER_WEBHOOK_KEY\n",
			[]Webhook{{URL: "http://127.0.0.1:9/hook", Events: []string{"deployment.succeeded", "host.failed"}, SecretEnv: "DROVER_WEBHOOK_KEY"}}, ""},
		{"all events", "notify: {webhooks: [{url: \"https://h/x\", events: [\"*\"]}]}\n",
			[]Webhook{{URL: "https://h/x", Events: []string{"*"}}}, ""},
		{"secret in clear", "notify:\n  webhooks:\n    - url: https://h/x\n      secret: hunter2\n", nil,
			`plan.yaml:9:7: notify.webhooks[0].secret: the HMAC key is not written in the plan (the plan is recorded in the replicated state); put it in an environment variable of the coordinators and name it: secret_env: DROVER_WEBHOOK_SECRET`},
		{"bad secret_env", "notify: {webhooks: [{url: \"https://h/x\", secret_env: \"DROVER_WEBHOOK_A=B\"}]}\n", nil,
			`plan.yaml:6:54: notify.webhooks[0].secret_env: must be the name of an environment variable that starts with DROVER_WEBHOOK_ (the sender signs with no other variable), got "DROVER_WEBHOOK_A=B"`},
		{"secret_env without the prefix", "notify: {webhooks: [{url: \"https://h/x\", secret_env: AWS_SECRET_ACCESS_KEY}]}\n", nil,
			`plan.yaml:6:54: notify.webhooks[0].secret_env: must be the name of an environment variable that starts with DROVER_WEBHOOK_ (the sender signs with no other variable), got "AWS_SECRET_ACCESS_KEY"`},
		{"missing url", "notify: {webhooks: [{events: [host.failed]}]}\n", nil,
			`plan.yaml:6:21: notify.webhooks[0]: missing required key "url" (where events are POSTed, like https://hooks.example.com/drover)`},
		{"not a URL", "notify: {webhooks: [{url: ftp://h/x}]}\n", nil,
			`plan.yaml:6:27: notify.webhooks[0].url: must be an http:// or https:// URL with a host, got "ftp://h/x"`},
		{"credentials in the URL", "notify: {webhooks: [{url: \"https://u:p@h/x\"}]}\n", nil,
			`plan.yaml:6:27: notify.webhooks[0].url: must not carry credentials (user:password@): the URL is recorded and shown; sign requests with secret_env instead`},
		{"unknown event, near", "notify: {webhooks: [{url: \"https://h/x\", events: [deployment.succeded]}]}\n", nil,
			`plan.yaml:6:51: notify.webhooks[0].events[0]: unknown event "deployment.succeded"; did you mean "deployment.succeeded"?`},
		{"event twice", "notify: {webhooks: [{url: \"https://h/x\", events: [host.failed, host.failed]}]}\n", nil,
			`plan.yaml:6:64: notify.webhooks[0].events[1]: "host.failed" is listed twice`},
		{"unknown key", "notify: {webhooks: [{url: \"https://h/x\", event: [host.failed]}]}\n", nil,
			`plan.yaml:6:42: notify.webhooks[0].event: unknown key; did you mean "events"?`},
		{"not a list", "notify: {webhooks: {url: \"https://h/x\"}}\n", nil,
			`plan.yaml:6:20: notify.webhooks: must be a list of webhooks, like [{url: https://hooks.example.com/drover}], got a mapping`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(filepath.Join(f.dir, "plan.yaml"), []byte(base+tc.src))
			if got := f.problems(t, err); got != tc.err {
				t.Fatalf("problems:\n%s\nwant\n%s", got, tc.err)
			}
			if err == nil && !reflect.DeepEqual(p.Notify.Webhooks, tc.want) {
				t.Fatalf("webhooks = %+v, want %+v", p.Notify.Webhooks, tc.want)
			}
		})
	}
}

func TestWebhookWants(t *testing.T) {
	tests := []struct {
		w     Webhook
		event string
		want  bool
	}{
		{Webhook{}, EventDeploymentSucceeded, true},
		{Webhook{}, EventHostStage, false},
		{Webhook{Events: []string{EventHostStage}}, EventHostStage, true},
		{Webhook{Events: []string{EventHostStage}}, EventDeploymentSucceeded, false},
		{Webhook{Events: []string{EventAll}}, EventHostStage, true},
	}
	for _, tc := range tests {
		if got := tc.w.Wants(tc.event); got != tc.want {
			t.Errorf("%+v.Wants(%s) = %v, want %v", tc.w.Events, tc.event, got, tc.want)
		}
	}
}

// Where the sender's environment is known (a local deploy, the leader at
// submission), a key variable it does not set is an error at its position.
func TestWebhookKeyMustBeSetOnTheSender(t *testing.T) {
	f := newFixture(t, map[string]string{"app.tar.gz": "x"})
	src := base + "notify: {webhooks: [{url: \"https://h/x\", secret_env: DROVER_WEBHOOK_KEY}]}\n"
	tests := []struct {
		name string
		env  map[string]string
		err  string
	}{
		{"set", map[string]string{"DROVER_WEBHOOK_KEY": "k"}, ""},
		{"unset", nil, `plan.yaml:6:54: notify.webhooks[0].secret_env: DROVER_WEBHOOK_KEY is not set in the environment of the sender (this drover process)`},
		{"empty", map[string]string{"DROVER_WEBHOOK_KEY": ""}, `plan.yaml:6:54: notify.webhooks[0].secret_env: DROVER_WEBHOOK_KEY is not set in the environment of the sender (this drover process)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseWith(filepath.Join(f.dir, "plan.yaml"), []byte(src), Options{
				Sender:    "this drover process",
				SenderEnv: func(n string) (string, bool) { v, ok := tc.env[n]; return v, ok },
			}, Files{})
			if got := f.problems(t, err); got != tc.err {
				t.Fatalf("problems:\n%s\nwant\n%s", got, tc.err)
			}
		})
	}
}
