package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/pki/pkitest"
	"github.com/drover-dev/drover/internal/testwait"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/raftstore"
)

// testCluster is three real coordinators on 127.0.0.1: Raft over mutual
// TLS, the HTTPS API, the artifact store. No hosts: these tests cover the
// cluster itself; the lab's end-to-end tests cover deployments.
type testCluster struct {
	t      *testing.T
	dir    string
	tlsDir string
	token  string
	nodes  map[string]*testNode
}

type testNode struct {
	cfg    Config
	c      *Coordinator
	cancel context.CancelFunc
	done   chan struct{}
}

var fastTiming = raftstore.Timing{Heartbeat: slowdown * 150 * time.Millisecond, Election: slowdown * 150 * time.Millisecond, LeaderLease: slowdown * 100 * time.Millisecond}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func newTestCluster(t *testing.T, ids ...string) *testCluster {
	t.Helper()
	return newTestClusterWith(t, nil, ids...)
}

// newTestClusterWith is newTestCluster with mod applied to each node's
// configuration before it starts.
func newTestClusterWith(t *testing.T, mod func(*Config), ids ...string) *testCluster {
	t.Helper()
	dir := t.TempDir()
	tc := &testCluster{t: t, dir: dir, nodes: map[string]*testNode{}}
	ca := pkitest.New(t)
	tc.tlsDir = ca.Dir
	ca.Issue(t, "ops", pki.RoleClient)
	for _, id := range ids {
		ca.Issue(t, id, pki.RoleServer)
	}
	var err error
	if tc.token, err = pki.ReadToken(filepath.Join(tc.tlsDir, pki.BootstrapTokenFile)); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		cfg := Config{
			NodeID: id, DataDir: filepath.Join(dir, id), RaftAddr: freeAddr(t), HTTPAddr: freeAddr(t),
			TLS: pki.DirPaths(tc.tlsDir, id), Timing: fastTiming, BootstrapToken: tc.token, CADir: tc.tlsDir,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: testVersion,
		}
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = []string{tc.nodes[ids[0]].cfg.HTTPAddr}
		}
		if mod != nil {
			mod(&cfg)
		}
		tc.nodes[id] = &testNode{cfg: cfg}
		tc.start(id)
	}
	t.Cleanup(func() {
		for id := range tc.nodes {
			tc.stop(id)
		}
	})
	return tc
}

func (tc *testCluster) start(id string) {
	tc.t.Helper()
	n := tc.nodes[id]
	ctx, cancel := context.WithCancel(context.Background())
	c, err := Start(ctx, n.cfg)
	if err != nil {
		cancel()
		tc.t.Fatalf("start %s: %v", id, err)
	}
	n.c, n.cancel, n.done = c, cancel, make(chan struct{})
	go func() { c.Run(ctx); close(n.done) }()
}

func (tc *testCluster) stop(id string) {
	n := tc.nodes[id]
	if n.c == nil {
		return
	}
	n.cancel()
	<-n.done
	n.c.Close()
	n.c = nil
}

// client talks to the given nodes (all when none) as the operator.
func (tc *testCluster) client(token string, ids ...string) *api.Client {
	tc.t.Helper()
	if len(ids) == 0 {
		for id := range tc.nodes {
			ids = append(ids, id)
		}
	}
	var addrs []string
	for _, id := range ids {
		addrs = append(addrs, tc.nodes[id].cfg.HTTPAddr)
	}
	tlsCfg, err := pki.ClientConfig(pki.DirPaths(tc.tlsDir, "ops"))
	if err != nil {
		tc.t.Fatal(err)
	}
	cl, err := api.NewClient(api.ClientConfig{Addrs: addrs, TLS: tlsCfg, Token: token, Timeout: 5 * time.Second})
	if err != nil {
		tc.t.Fatal(err)
	}
	return cl
}

// waitFormed waits until cl sees every node a reachable member, with its
// API address, and one leader.
func (tc *testCluster) waitFormed(ctx context.Context, cl *api.Client) {
	tc.t.Helper()
	testwait.For(tc.t, "reachable members with one leader", func() bool {
		ms, err := cl.Members(ctx)
		if err != nil || len(ms) != len(tc.nodes) {
			return false
		}
		leaders := 0
		for _, m := range ms {
			if !m.Reachable || m.HTTPAddr == "" {
				return false
			}
			if m.Leader {
				leaders++
			}
		}
		return leaders == 1
	})
}

// follower returns a running node that does not lead.
func (tc *testCluster) follower() string {
	leader := tc.leader()
	for id, n := range tc.nodes {
		if n.c != nil && id != leader {
			return id
		}
	}
	return ""
}

func (tc *testCluster) leader() string {
	for id, n := range tc.nodes {
		if n.c != nil && n.c.IsLeader() {
			return id
		}
	}
	return ""
}

func TestClusterFormsFailsOverAndAuthenticates(t *testing.T) {
	tc := newTestCluster(t, "c1", "c2", "c3")
	ctx := context.Background()
	cl := tc.client(tc.token)

	tc.waitFormed(ctx, cl)

	// A read token, created through a follower (forwarded to the leader).
	follower := tc.follower()
	tok, err := tc.client(tc.token, follower).CreateToken(ctx, api.TokenRequest{Name: "ci", Role: raftstore.RoleRead})
	if err != nil {
		t.Fatalf("create token via follower: %v", err)
	}
	if !strings.HasPrefix(tok.Token, pki.TokenPrefix) {
		t.Fatalf("token %q lacks its prefix", tok.Token)
	}
	for _, tk := range tc.nodes[follower].c.store.Tokens() {
		if strings.Contains(tk.Hash, tok.Token) || tk.Hash == tok.Token {
			t.Fatal("a token is stored in clear")
		}
	}
	reader := tc.client(tok.Token)
	if _, err := reader.Deployments(ctx); err != nil {
		t.Fatalf("read token cannot list: %v", err)
	}
	if _, err := reader.CreateToken(ctx, api.TokenRequest{Name: "x", Role: raftstore.RoleManage}); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("read token creating a token: %v, want ErrForbidden", err)
	}
	if _, err := tc.client("drv_wrong").Deployments(ctx); !errors.Is(err, api.ErrUnauthorized) {
		t.Fatalf("wrong token: %v, want ErrUnauthorized", err)
	}

	// An artifact uploaded to one follower reaches every node.
	body := []byte("release bytes")
	sum := sha256.Sum256(body)
	sha := hex.EncodeToString(sum[:])
	if err := tc.client(tc.token, follower).UploadArtifact(ctx, sha, func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(string(body))), nil
	}); err != nil {
		t.Fatalf("upload: %v", err)
	}
	for id, n := range tc.nodes {
		if !n.c.arts.Has(sha) {
			t.Errorf("%s lacks the uploaded artifact", id)
		}
	}

	// The leader dies: another takes over, and the cluster still answers
	// through the remaining addresses.
	old := tc.leader()
	tc.stop(old)
	testwait.For(t, "a new leader", func() bool { l := tc.leader(); return l != "" && l != old })
	if _, err := cl.CreateToken(ctx, api.TokenRequest{Name: "after-failover", Role: raftstore.RoleRead}); err != nil {
		t.Fatalf("write after failover: %v", err)
	}
	// The old leader restarts with its data dir and catches up.
	tc.start(old)
	testwait.For(t, old+" to catch up", func() bool {
		for _, tk := range tc.nodes[old].c.store.Tokens() {
			if tk.Name == "after-failover" {
				return true
			}
		}
		return false
	})

	// Removing a member (a follower, stopped for good).
	victim := ""
	for id := range tc.nodes {
		if id != tc.leader() {
			victim = id
		}
	}
	tc.stop(victim)
	if err := cl.RemoveMember(ctx, victim); err != nil {
		t.Fatalf("remove %s: %v", victim, err)
	}
	ms, err := cl.Members(ctx)
	if err != nil || len(ms) != 2 {
		t.Fatalf("members after remove: %v, %v", ms, err)
	}
}

// Every node serves Prometheus metrics to a client with a certificate.
func TestMetricsOnEveryNode(t *testing.T) {
	tc := newTestCluster(t, "c1", "c2", "c3")
	tlsCfg, err := pki.ClientConfig(pki.DirPaths(tc.tlsDir, "ops"))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 5 * time.Second}
	testwait.For(t, "a leader", func() bool { return tc.leader() != "" })
	for id, n := range tc.nodes {
		resp, err := hc.Get("https://" + n.cfg.HTTPAddr + "/metrics")
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, name := range []string{"drover_deployments_total", "drover_host_stage_duration_seconds",
			"drover_raft_apply_duration_seconds", "drover_leader_changes_total", "drover_is_leader"} {
			if !strings.Contains(string(b), name) {
				t.Errorf("%s: /metrics lacks %s", id, name)
			}
		}
	}
}

// Five coordinators survive the loss of two, the leader among them.
func TestFiveNodesLoseTwo(t *testing.T) {
	tc := newTestCluster(t, "c1", "c2", "c3", "c4", "c5")
	ctx := context.Background()
	cl := tc.client(tc.token)
	testwait.For(t, "five reachable members", func() bool {
		ms, err := cl.Members(ctx)
		if err != nil || len(ms) != 5 {
			return false
		}
		for _, m := range ms {
			if !m.Reachable {
				return false
			}
		}
		return true
	})
	old := tc.leader()
	tc.stop(old)
	for id := range tc.nodes {
		if id != old && tc.nodes[id].c != nil && !tc.nodes[id].c.IsLeader() {
			tc.stop(id)
			break
		}
	}
	testwait.For(t, "a new leader among three", func() bool { l := tc.leader(); return l != "" && l != old })
	if _, err := cl.CreateToken(ctx, api.TokenRequest{Name: "three-left", Role: raftstore.RoleRead}); err != nil {
		t.Fatalf("write with three of five: %v", err)
	}
}

// A backup taken through the API restores into a new cluster: tokens (as
// hashes) and everything else come back, and the old token works there.
func TestBackupRestoreThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	src := newTestCluster(t, "a1", "a2", "a3")
	cl := src.client(src.token)
	testwait.For(t, "the bootstrap token stored", func() bool { _, err := cl.Deployments(ctx); return err == nil })
	tok, err := cl.CreateToken(ctx, api.TokenRequest{Name: "dash", Role: raftstore.RoleRead})
	if err != nil {
		t.Fatal(err)
	}
	var backup strings.Builder
	if err := cl.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(backup.String(), tok.Token) {
		t.Fatal("the backup holds a token in clear")
	}

	dst := newTestCluster(t, "b1", "b2")
	dcl := dst.client(dst.token)
	testwait.For(t, "the bootstrap token stored", func() bool { _, err := dcl.Deployments(ctx); return err == nil })
	if err := dcl.Restore(ctx, func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(backup.String())), nil }); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if _, err := dst.client(tok.Token).Deployments(ctx); err != nil {
		t.Fatalf("a token of the old cluster after restore: %v", err)
	}
	// Both nodes still know where the other is (forwarding works).
	for id := range dst.nodes {
		if _, err := dst.client(tok.Token, id).Deployments(ctx); err != nil {
			t.Fatalf("read through %s after restore: %v", id, err)
		}
	}
	// The restored state has the old cluster's tokens, not this one's.
	if _, err := dcl.Deployments(ctx); !errors.Is(err, api.ErrUnauthorized) {
		t.Fatalf("the new cluster's own bootstrap token after restore: %v, want ErrUnauthorized", err)
	}
	old := dst.client(src.token)
	if err := old.Restore(ctx, func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("{not json")), nil }); !errors.Is(err, api.ErrBadRequest) {
		t.Fatalf("restore of garbage: %v, want ErrBadRequest", err)
	}
}
