package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/raftstore"
)

// rawDo sends one request with the operator's certificate and manage token.
func rawDo(t *testing.T, p *testPKI, method, url, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tokManage)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := p.httpClient(&p.client).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func wantCode(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	var eb errorBody
	_ = json.Unmarshal(body, &eb)
	if resp.StatusCode != status || eb.Code != code {
		t.Fatalf("got %d %s, want %d code %q", resp.StatusCode, body, status, code)
	}
}

func TestForwarding(t *testing.T) {
	p := newPKI(t)
	submit := `{"plan_name":"web","plan":"name: web"}`

	cases := []struct {
		name string
		// setup returns the node to ask and the nodes that must not have
		// seen the request at all.
		setup      func(t *testing.T, st *store) (to *testNode, leader *testNode)
		method     string
		path, body string
		header     map[string]string
		status     int
		code       string
		forwarded  bool // the leader saw it, forwarded by the follower
		writes     int
		retryAfter string
	}{
		{
			name: "write on a follower goes to the leader",
			setup: func(t *testing.T, st *store) (*testNode, *testNode) {
				l := startNode(t, p, st, "n1", true)
				f := startNode(t, p, st, "n2", false)
				f.setLeader(false, l.addr)
				return f, l
			},
			method: "POST", path: "/v1/deployments", body: submit, status: 201, forwarded: true, writes: 1,
		},
		{
			name: "read on a follower goes to the leader",
			setup: func(t *testing.T, st *store) (*testNode, *testNode) {
				l := startNode(t, p, st, "n1", true)
				f := startNode(t, p, st, "n2", false)
				f.setLeader(false, l.addr)
				return f, l
			},
			method: "GET", path: "/v1/deployments", status: 200, forwarded: true,
		},
		{
			name: "stale read stays on the follower",
			setup: func(t *testing.T, st *store) (*testNode, *testNode) {
				l := startNode(t, p, st, "n1", true)
				f := startNode(t, p, st, "n2", false)
				f.setLeader(false, l.addr)
				return f, l
			},
			method: "GET", path: "/v1/deployments?stale=true", status: 200,
		},
		{
			name: "status is never forwarded",
			setup: func(t *testing.T, st *store) (*testNode, *testNode) {
				l := startNode(t, p, st, "n1", true)
				f := startNode(t, p, st, "n2", false)
				f.setLeader(false, l.addr)
				return f, l
			},
			method: "GET", path: "/v1/status", status: 200,
		},
		{
			name: "an upload stays on the node that receives it",
			setup: func(t *testing.T, st *store) (*testNode, *testNode) {
				l := startNode(t, p, st, "n1", true)
				f := startNode(t, p, st, "n2", false)
				f.setLeader(false, l.addr)
				return f, l
			},
			method: "PUT", path: "/v1/artifacts/" + helloSHA, body: "hello", status: 204, writes: 1,
		},
		{
			name: "an already forwarded request on a follower is refused",
			setup: func(t *testing.T, st *store) (*testNode, *testNode) {
				l := startNode(t, p, st, "n1", true)
				f := startNode(t, p, st, "n2", false)
				f.setLeader(false, l.addr)
				return f, l
			},
			method: "POST", path: "/v1/deployments", body: submit, header: map[string]string{HeaderForwardedBy: "n3"},
			status: 503, code: "not_leader",
		},
		{
			// A leader killed and restarted at once, its state not caught
			// up yet, receives what a follower still forwards to it.
			name: "a forwarded request with a token this follower does not know yet",
			setup: func(t *testing.T, st *store) (*testNode, *testNode) {
				f := startNode(t, p, st, "n1", false)
				return f, nil
			},
			method: "GET", path: "/v1/deployments/d1/events",
			header: map[string]string{HeaderForwardedBy: "n2", "Authorization": "Bearer drv_not-applied-here-yet"},
			status: 503, code: "not_leader",
		},
		{
			name: "no known leader",
			setup: func(t *testing.T, st *store) (*testNode, *testNode) {
				f := startNode(t, p, st, "n2", false)
				return f, nil
			},
			method: "POST", path: "/v1/deployments", body: submit, status: 503, code: "no_leader", retryAfter: "1",
		},
		{
			name: "leader unreachable",
			setup: func(t *testing.T, st *store) (*testNode, *testNode) {
				f := startNode(t, p, st, "n2", false)
				f.setLeader(false, deadAddr(t))
				return f, nil
			},
			method: "POST", path: "/v1/deployments", body: submit, status: 503, code: "no_leader", retryAfter: "1",
		},
		{
			name: "leader that lost leadership answers not_leader",
			setup: func(t *testing.T, st *store) (*testNode, *testNode) {
				l := startNode(t, p, st, "n1", true)
				f := startNode(t, p, st, "n2", false)
				f.setLeader(false, l.addr)
				st.setFail("submit", fmt.Errorf("apply: %w", raftstore.ErrNotLeader))
				return f, l
			},
			method: "POST", path: "/v1/deployments", body: submit, status: 503, code: "not_leader", forwarded: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newStore()
			to, lead := tc.setup(t, st)
			resp, body := rawDo(t, p, tc.method, "https://"+to.addr+tc.path, tc.body, tc.header)
			if tc.code != "" {
				wantCode(t, resp, body, tc.status, tc.code)
			} else if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			if got := st.writeCount(); got != tc.writes {
				t.Errorf("%d writes, want %d", got, tc.writes)
			}
			if lead != nil {
				seen := lead.requests()
				switch {
				case tc.forwarded && (len(seen) != 1 || seen[0].forwardedBy != "n2"):
					t.Errorf("the leader saw %+v, want one request forwarded by n2", seen)
				case !tc.forwarded && len(seen) != 0:
					t.Errorf("the leader saw %+v, want nothing", seen)
				}
			}
		})
	}
}

// Two followers that each believe the other leads: the request goes one
// hop and stops.
func TestForwardingLoop(t *testing.T) {
	p := newPKI(t)
	st := newStore()
	a := startNode(t, p, st, "a", false)
	b := startNode(t, p, st, "b", false)
	a.setLeader(false, b.addr)
	b.setLeader(false, a.addr)

	resp, body := rawDo(t, p, "POST", "https://"+a.addr+"/v1/deployments/d1/pause", "", nil)
	wantCode(t, resp, body, 503, "not_leader")
	if got := a.requests(); len(got) != 1 {
		t.Errorf("a saw %+v, want the one request", got)
	}
	if got := b.requests(); len(got) != 1 || got[0].forwardedBy != "a" {
		t.Errorf("b saw %+v, want one request forwarded by a", got)
	}
}

func TestMembers(t *testing.T) {
	p := newPKI(t)
	st := newStore()
	l := startNode(t, p, st, "n1", true)
	f := startNode(t, p, st, "n2", false)
	f.setLeader(false, l.addr)
	dead := deadAddr(t)
	st.members = []Member{
		{ID: "n1", RaftAddr: "r1", HTTPAddr: l.addr, Voter: true, Leader: true},
		{ID: "n2", RaftAddr: "r2", HTTPAddr: f.addr, Voter: true},
		{ID: "n3", RaftAddr: "r3", HTTPAddr: dead, Voter: true},
	}
	c := newTestClient(t, p, tokRead, f.addr)
	ms, err := c.Members(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 {
		t.Fatalf("members %+v", ms)
	}
	if m := ms[0]; !m.Reachable || m.State != "Leader" || m.AppliedIndex != 42 || !m.Leader {
		t.Errorf("leader %+v", m)
	}
	if m := ms[1]; !m.Reachable || m.State != "Follower" || m.LastContactMS != 3 || m.Error != "" {
		t.Errorf("follower %+v", m)
	}
	if m := ms[2]; m.Reachable || m.Error == "" || m.LastContactMS != -1 {
		t.Errorf("dead member %+v", m)
	}
	// Forwarded to the leader, which answered for itself and probed the follower.
	if got := l.requests(); len(got) != 1 || got[0].forwardedBy != "n2" {
		t.Errorf("leader saw %+v", got)
	}
	if got := f.requests(); len(got) != 2 || got[1].path != "/v1/status" {
		t.Errorf("follower saw %+v", got)
	}
	// A stale read is answered by the follower.
	start := time.Now()
	ms, err = c.Stale().Members(context.Background())
	if err != nil || len(ms) != 3 {
		t.Fatalf("stale members: %v %+v", err, ms)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("members took %v: probes are not bounded", time.Since(start))
	}
	if got := l.requests(); len(got) != 2 || got[1].path != "/v1/status" {
		t.Errorf("leader saw %+v, want only a status probe more", got)
	}
}

func TestBodyLimit(t *testing.T) {
	p := newPKI(t)
	st := newStore()
	l := startNode(t, p, st, "n1", true)
	f := startNode(t, p, st, "n2", false)
	f.setLeader(false, l.addr)
	big := `{"plan_name":"web","plan":"` + strings.Repeat("x", 5<<20) + `"}`
	for _, n := range []*testNode{l, f} {
		resp, body := rawDo(t, p, "POST", "https://"+n.addr+"/v1/deployments", big, nil)
		wantCode(t, resp, body, 413, "too_large")
	}
	if st.writeCount() != 0 {
		t.Fatal("an oversized request wrote")
	}
}

// A follower that forwarded a request to a leader which then went silent
// (cut off) gives up as soon as it learns that another node leads, and
// tells the caller to try again, instead of waiting for TCP to time out.
func TestForwardingCancelledWhenLeaderChanges(t *testing.T) {
	p := newPKI(t)
	st := newStore()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	reached := make(chan struct{}, 1)
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepts, never answers
			select {
			case reached <- struct{}{}:
			default:
			}
		}
	}()
	f := startNode(t, p, st, "n2", false)
	f.setLeader(false, silent.Addr().String())
	go func() {
		<-reached                         // the request is stuck at the silent leader
		f.setLeader(false, "127.0.0.1:1") // the follower hears of a new leader
	}()
	start := time.Now()
	resp, body := rawDo(t, p, "GET", "https://"+f.addr+"/v1/deployments", "", nil)
	wantCode(t, resp, body, 503, "not_leader")
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the forwarded request took %v after the leader changed", took)
	}
}
