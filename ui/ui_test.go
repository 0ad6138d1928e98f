package ui

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/notify"
)

// state is a replicated state in memory.
type state struct {
	mu      sync.Mutex
	d       deploy.Deployment
	evs     []deploy.Event
	changed notify.Signal
}

func (s *state) Deployments() []deploy.Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return []deploy.Deployment{s.d}
}

func (s *state) Deployment(id string) (deploy.Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id != s.d.ID {
		return deploy.Deployment{}, deploy.ErrUnknownDeployment
	}
	return s.d, nil
}

func (s *state) Events(id string, after uint64) ([]deploy.Event, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []deploy.Event
	for _, ev := range s.evs {
		if ev.Seq > after && ev.Deployment == id {
			out = append(out, ev)
		}
	}
	return out, uint64(len(s.evs))
}

func (s *state) Changed() <-chan struct{} { return s.changed.C() }

// apply records an event, and the state it leads to.
func (s *state) apply(ev deploy.Event) {
	s.mu.Lock()
	ev.Seq, ev.Deployment = uint64(len(s.evs)+1), s.d.ID
	s.evs = append(s.evs, ev)
	if ev.State != "" {
		s.d.State = ev.State
	}
	s.mu.Unlock()
	s.changed.Fire()
}

const readToken = "read-token"

func newDashboard(t *testing.T) (*httptest.Server, *state) {
	t.Helper()
	st := &state{d: deploy.Deployment{ID: "d1", Name: "web", Version: "v2", State: deploy.StateRunning,
		Plan: json.RawMessage(`{"name":"web"}`), Batches: [][]string{{"web1"}},
		Hosts: map[string]*deploy.HostProgress{"web1": {Name: "web1", Stage: deploy.StagePending, Target: "v2"}}}}
	h := New(Config{
		Source:       st,
		Authenticate: func(tok string) bool { return tok == readToken },
		Lists: map[string]func(context.Context) (any, error){
			"node": func(context.Context) (any, error) { return map[string]string{"id": "n1"}, nil },
		},
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, st
}

func client(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Data needs a signed-in cookie; the pages do not (they hold no data).
func TestAccess(t *testing.T) {
	srv, _ := newDashboard(t)
	tests := []struct {
		name   string
		token  string // signed in with, "" for none
		path   string
		status int
	}{
		{"page without a token", "", "/ui/", http.StatusOK},
		{"script without a token", "", "/ui/app.js", http.StatusOK},
		{"deployments without a token", "", "/ui/api/deployments", http.StatusUnauthorized},
		{"deployment without a token", "", "/ui/api/deployments/d1", http.StatusUnauthorized},
		{"events without a token", "", "/ui/api/deployments/d1/events", http.StatusUnauthorized},
		{"list without a token", "", "/ui/api/node", http.StatusUnauthorized},
		{"deployments", readToken, "/ui/api/deployments", http.StatusOK},
		{"deployment", readToken, "/ui/api/deployments/d1", http.StatusOK},
		{"unknown deployment", readToken, "/ui/api/deployments/nope", http.StatusNotFound},
		{"list", readToken, "/ui/api/node", http.StatusOK},
		{"unknown list", readToken, "/ui/api/tokens", http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := client(t)
			if tc.token != "" {
				resp, err := c.PostForm(srv.URL+"/ui/login", url.Values{"token": {tc.token}})
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusSeeOther {
					t.Fatalf("login: %s", resp.Status)
				}
			}
			resp, err := c.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("GET %s: %s, want %d", tc.path, resp.Status, tc.status)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
		})
	}
}

// A wrong token gets no cookie; a good one gets an HttpOnly, SameSite=Strict
// cookie scoped to the dashboard; logout clears it.
func TestLogin(t *testing.T) {
	srv, _ := newDashboard(t)
	c := client(t)
	resp, err := c.Post(srv.URL+"/ui/login", "application/json", strings.NewReader(`{"token":"wrong"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong token: %s, cookies %v", resp.Status, resp.Cookies())
	}
	resp, err = c.Post(srv.URL+"/ui/login", "application/json", strings.NewReader(`{"token":"`+readToken+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cs := resp.Cookies()
	if resp.StatusCode != http.StatusNoContent || len(cs) != 1 {
		t.Fatalf("good token: %s, cookies %v", resp.Status, cs)
	}
	if ck := cs[0]; ck.Name != Cookie || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != Prefix {
		t.Errorf("cookie %+v", ck)
	}
	resp, err = c.Post(srv.URL+"/ui/logout", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp, err = c.Get(srv.URL + "/ui/api/deployments"); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after logout: %s", resp.Status)
	}
}

// The stream sends each event as it is applied, with its Seq as the SSE id,
// resumes after Last-Event-ID, and ends with the deployment.
func TestEventStream(t *testing.T) {
	srv, st := newDashboard(t)
	st.apply(deploy.Event{Kind: deploy.EvCreated})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ui/api/deployments/d1/events", nil)
	req.AddCookie(&http.Cookie{Name: Cookie, Value: readToken})
	req.Header.Set("Last-Event-ID", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	next := func() []string { // the lines of the next event
		var lines []string
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("stream: %v (so far %q)", err, lines)
			}
			l = strings.TrimRight(l, "\n")
			switch {
			case l == "" && len(lines) > 0:
				return lines
			case l == "" || strings.HasPrefix(l, ":") || strings.HasPrefix(l, "retry:"):
			default:
				lines = append(lines, l)
			}
		}
	}
	st.apply(deploy.Event{Kind: deploy.EvStage, Host: "web1", Stage: deploy.StageDrain})
	if got := next(); got[0] != "id: 2" || got[1] != "event: stage" || !strings.Contains(got[2], `"host":"web1"`) {
		t.Fatalf("first event after 1: %q", got)
	}
	st.apply(deploy.Event{Kind: deploy.EvState, State: deploy.StateSucceeded})
	if got := next(); got[0] != "id: 3" || got[1] != "event: state" {
		t.Fatalf("second event: %q", got)
	}
	if got := next(); got[0] != "event: end" {
		t.Fatalf("after the terminal state: %q", got)
	}
	if rest, _ := io.ReadAll(br); len(strings.TrimSpace(string(rest))) != 0 {
		t.Errorf("after end: %q", rest)
	}
}
