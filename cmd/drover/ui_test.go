package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"

	"github.com/drover-dev/drover/raftstore"
)

// The local dashboard listens on loopback only, and its printed link signs
// a browser in: the token from the fragment buys the cookie that reads.
func TestServeDashboard(t *testing.T) {
	st, err := raftstore.OpenSingle(context.Background(), raftstore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, addr := range []string{"0.0.0.0:0", "10.0.0.1:7480", "example.com:80", "7480"} {
		if _, err := serveDashboard(context.Background(), st, addr, io.Discard); err == nil {
			t.Errorf("serveDashboard(%q) accepted a non-loopback address", addr)
		}
	}
	var out strings.Builder
	stop, err := serveDashboard(context.Background(), st, "127.0.0.1:0", &out)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	m := regexp.MustCompile(`(http://127\.0\.0\.1:[0-9]+)/ui/#token=([0-9a-f]+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no link in %q", out.String())
	}
	base, token := m[1], m[2]
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func() int {
		resp, err := c.Get(base + "/ui/api/deployments")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != http.StatusUnauthorized {
		t.Fatalf("before signing in: %d", code)
	}
	for _, tc := range []struct {
		token string
		want  int
	}{{"not-" + token, http.StatusUnauthorized}, {token, http.StatusNoContent}} {
		resp, err := c.Post(base+"/ui/login", "application/json", strings.NewReader(`{"token":"`+tc.token+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("login with %q: %d, want %d", tc.token, resp.StatusCode, tc.want)
		}
	}
	if code := get(); code != http.StatusOK {
		t.Fatalf("signed in: %d", code)
	}
}
