package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/lab"
)

// rawCall is one HTTPS request sent with curl from the control namespace,
// as the operator "ops" (its client certificate) with the given bearer
// token and extra headers; it returns the HTTP status and the body.
func (c *cluster) rawCall(t *testing.T, method string, to lab.Coordinator, path, token, body string, hdr ...string) (string, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "body")
	args := []string{"-s", "-o", out, "-w", "%{http_code}", "-X", method,
		"--cacert", filepath.Join(c.TLSDir, "ca.crt"),
		"--cert", filepath.Join(c.TLSDir, "ops.crt"), "--key", filepath.Join(c.TLSDir, "ops.key"),
		"-H", "Authorization: Bearer " + token}
	if method == "HEAD" {
		args = append(args, "-I")
	}
	for _, h := range hdr {
		args = append(args, "-H", h)
	}
	if body != "" {
		args = append(args, "--data-binary", body, "-H", "Content-Type: application/json")
	}
	args = append(args, "https://"+lab.APIAddr(to)+path)
	code, err := c.lab.Command(context.Background(), "curl", args...).Output()
	if err != nil {
		t.Fatalf("curl %s %s: %v", method, path, err)
	}
	b, _ := os.ReadFile(out)
	return string(code), string(b)
}

// probeForwardedIdentity is issue 8's finding 1 against real `drover
// server` processes: an operator's certificate with a made-up token,
// sent to a follower, must not borrow the follower's server identity on
// the leader (a join, artifact reads and writes); membership is unchanged.
func (c *cluster) probeForwardedIdentity(t *testing.T) {
	leader := c.waitLeader(c.nodes)
	follower := c.others(leader)[0]
	before, err := c.members()
	if err != nil {
		t.Fatal(err)
	}
	const bogus = "not-a-real-token"
	const sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" // sha256("hello")
	join := `{"id":"evil","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`
	probes := []struct {
		name, method, path, token, body string
		hdr                             []string
		want                            string
	}{
		{"join with a made-up token", "POST", "/v1/cluster/join", bogus, join, nil, "401"},
		{"artifact read with a made-up token", "GET", "/v1/artifacts/" + sha, bogus, "", nil, "401"},
		{"artifact check with a made-up token", "HEAD", "/v1/artifacts/" + sha, bogus, "", nil, "401"},
		{"artifact upload with a made-up token", "PUT", "/v1/artifacts/" + sha, bogus, "hello", nil, "401"},
		// Finding 10: a manage token does not make an upload a replica.
		{"operator's upload claiming to be a replica", "PUT", "/v1/artifacts/" + sha, c.Token, "hello", []string{api.HeaderReplica + ": 1"}, "403"},
		// The probe itself works: the same certificate reads the status.
		{"status", "GET", "/v1/status", bogus, "", nil, "200"},
	}
	for _, to := range []lab.Coordinator{c.node(follower.Name), c.node(leader)} {
		for _, p := range probes {
			code, body := c.rawCall(t, p.method, to, p.path, p.token, p.body, p.hdr...)
			if code != p.want {
				t.Errorf("%s to %s: HTTP %s %s, want %s", p.name, to.Name, code, strings.TrimSpace(body), p.want)
			}
		}
	}
	after, err := c.members()
	if err != nil {
		t.Fatal(err)
	}
	ids := func(ms []api.Member) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID+"@"+m.RaftAddr)
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(ids(before), ids(after)) {
		t.Fatalf("membership changed: %v -> %v", ids(before), ids(after))
	}
}
