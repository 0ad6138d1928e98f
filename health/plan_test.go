package health

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/plans"
)

func TestFromPlanHTTP(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.RequestURI()
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))

	h := plans.Health{
		HTTP:     &plans.HTTPCheck{URL: "http://{{.Host}}:" + port + "/health?n={{.Name}}&v={{.Version}}", Status: 200, BodyContains: "ok"},
		Interval: time.Millisecond, Timeout: time.Second, HealthyThreshold: 2, Deadline: time.Minute, MinHealthyTime: 5 * time.Millisecond,
	}
	c, pol, err := FromPlan(h, plans.Host{Name: "web1", Address: "127.0.0.1:22"}, "2.0.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Policy{Interval: time.Millisecond, Timeout: time.Second, Deadline: time.Minute, MinHealthyTime: 5 * time.Millisecond, Threshold: 2}
	if pol != want {
		t.Fatalf("policy = %+v, want %+v", pol, want)
	}
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got != "/health?n=web1&v=2.0.1" {
		t.Fatalf("request = %q", got)
	}
}

func TestFromPlanURLs(t *testing.T) {
	for _, tc := range []struct{ addr, tmpl, want string }{
		{"10.200.0.11:22", "http://{{.Host}}:8080/health", "http://10.200.0.11:8080/health"},
		{"10.200.0.11", "http://{{.Host}}:8080/health", "http://10.200.0.11:8080/health"},
		{"web1.example:2222", "https://{{.Host}}/v/{{.Version}}", "https://web1.example/v/3"},
		{"[fd00::11]:22", "http://{{.Host}}:8080/", "http://[fd00::11]:8080/"},
	} {
		c, _, err := FromPlan(plans.Health{HTTP: &plans.HTTPCheck{URL: tc.tmpl}}, plans.Host{Name: "h", Address: tc.addr}, "3", nil)
		if err != nil {
			t.Errorf("%s: %v", tc.addr, err)
			continue
		}
		if u := c.(*httpCheck).url; u != tc.want {
			t.Errorf("%s: url = %q, want %q", tc.addr, u, tc.want)
		}
		if s := c.(*httpCheck).status; s != 200 {
			t.Errorf("status 0 should mean 200, got %d", s)
		}
	}
}

func TestFromPlanTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	c, _, err := FromPlan(plans.Health{TCP: &plans.TCPCheck{Port: port}, Timeout: time.Second},
		plans.Host{Name: "h", Address: "127.0.0.1:22"}, "1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestFromPlanCommand(t *testing.T) {
	var ran string
	run := func(ctx context.Context, cmd string, out io.Writer) error {
		ran = cmd
		return nil
	}
	c, _, err := FromPlan(plans.Health{Command: "test -f /srv/app/current/READY"}, plans.Host{Name: "h", Address: "h:22"}, "1", run)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(context.Background()); err != nil || ran != "test -f /srv/app/current/READY" {
		t.Fatalf("err = %v, ran %q", err, ran)
	}
}

func TestFromPlanErrors(t *testing.T) {
	host := plans.Host{Name: "web1", Address: "10.200.0.11:22"}
	for _, tc := range []struct {
		name string
		h    plans.Health
		want string
	}{
		{"none", plans.Health{}, "exactly one of http, tcp and command, have 0"},
		{"two", plans.Health{TCP: &plans.TCPCheck{Port: 80}, Command: "true"}, "have 2"},
		{"bad template", plans.Health{HTTP: &plans.HTTPCheck{URL: "http://{{.Host"}}, "template"},
		{"unknown field", plans.Health{HTTP: &plans.HTTPCheck{URL: "http://{{.Hostname}}/"}}, "Hostname"},
		{"not http", plans.Health{HTTP: &plans.HTTPCheck{URL: "ftp://{{.Host}}/health"}}, "http:// or https://"},
		{"port", plans.Health{TCP: &plans.TCPCheck{Port: 0}}, "port 0"},
		{"no runner", plans.Health{Command: "true"}, "run commands"},
	} {
		_, _, err := FromPlan(tc.h, host, "1", nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "health for web1: ") {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}
