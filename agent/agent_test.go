package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/syncbuf"
	"github.com/drover-dev/drover/internal/testwait"

	"github.com/drover-dev/drover/transport/agent/wire"
)

func permOf(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestEnrollThenHello(t *testing.T) {
	fc := newFakeCoord(t, newTestCA(t))
	logs := &syncbuf.Buffer{}
	cfg := newConfig(t, fc, logs)
	startAgent(t, cfg)

	c, hello := fc.nextConn(t)
	if c.name != "web1" {
		t.Errorf("certificate common name %q, want web1", c.name)
	}
	if hello.Name != "web1" || hello.Version != "1.2.3-test" || hello.OS != runtime.GOOS || hello.Arch != runtime.GOARCH {
		t.Errorf("hello = %+v", hello)
	}
	if host, _ := os.Hostname(); hello.Hostname != host {
		t.Errorf("hello.Hostname = %q, want %q", hello.Hostname, host)
	}
	for _, a := range hello.Addresses {
		if ip := net.ParseIP(a); ip == nil || ip.IsLoopback() {
			t.Errorf("hello.Addresses has %q", a)
		}
	}
	if hello.MaxTerm != 0 || len(hello.Lost) != 0 {
		t.Errorf("new agent: hello = %+v", hello)
	}
	for _, f := range []string{keyFile, certFile} {
		if m := permOf(t, cfg.path(f)); m != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, m)
		}
	}
	if _, err := os.Stat(cfg.TokenFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the join token file is still there (err %v)", err)
	}
	fc.mu.Lock()
	for tk := range fc.tokens {
		if strings.Contains(logs.String(), tk) {
			t.Error("the join token was logged")
		}
	}
	fc.mu.Unlock()

	// Enrolled: Enroll is a no-op now, and needs no token.
	if err := Enroll(context.Background(), cfg); err != nil {
		t.Fatalf("Enroll when enrolled: %v", err)
	}
}

func TestEnrollReplayedToken(t *testing.T) {
	fc := newFakeCoord(t, newTestCA(t))
	cfg := newConfig(t, fc, &syncbuf.Buffer{})
	if err := os.WriteFile(cfg.TokenFile, []byte(fc.newToken(true)), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Enroll(context.Background(), cfg)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "join token already used") || !strings.Contains(err.Error(), "token_replayed") {
		t.Fatalf("err = %v, want a refusal naming the replayed token", err)
	}
	if _, err := os.Stat(cfg.path(certFile)); !errors.Is(err, os.ErrNotExist) {
		t.Error("a certificate was stored")
	}
	// Run gives up at once: retrying cannot fix a spent token.
	ta := startAgent(t, cfg)
	select {
	case err := <-ta.done:
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("Run = %v, want ErrRefused", err)
		}
		close(ta.done)
	case <-time.After(5 * time.Second):
		t.Fatal("Run kept going after a refused enrollment")
	}
}

func TestNotEnrolledWithoutToken(t *testing.T) {
	fc := newFakeCoord(t, newTestCA(t))
	cfg := newConfig(t, fc, &syncbuf.Buffer{})
	os.Remove(cfg.TokenFile)
	if err := Enroll(context.Background(), cfg); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("err = %v, want ErrNotEnrolled", err)
	}
}

func TestRunStreamsOutputAndExitCode(t *testing.T) {
	fc := newFakeCoord(t, newTestCA(t))
	startAgent(t, newConfig(t, fc, &syncbuf.Buffer{}))
	c, _ := fc.nextConn(t)

	c.act(t, wire.Action{ID: "r1", Term: 1, Kind: wire.KindRun,
		Command: "echo first; sleep 0.4; echo second; echo oops >&2; exit 3"})
	res, outs := c.result(t, "r1")
	if res.ExitCode != 3 || res.Error != "exit status 3" || res.Truncated || res.Rejected {
		t.Errorf("result = %+v", res)
	}
	if len(outs) < 2 || string(outs[0]) != "first\n" {
		t.Errorf("output was not streamed: frames %q", outs)
	}
	if got := string(bytes.Join(outs, nil)); got != "first\nsecond\noops\n" {
		t.Errorf("output = %q", got)
	}

	c.act(t, wire.Action{ID: "r2", Term: 1, Kind: wire.KindRun, Command: "read x && echo input || echo eof"})
	if res, outs := c.result(t, "r2"); res.ExitCode != 0 || string(bytes.Join(outs, nil)) != "eof\n" {
		t.Errorf("stdin is not /dev/null: %+v %q", res, outs)
	}
}

func TestRunOutputBounded(t *testing.T) {
	fc := newFakeCoord(t, newTestCA(t))
	startAgent(t, newConfig(t, fc, &syncbuf.Buffer{}))
	c, _ := fc.nextConn(t)

	c.act(t, wire.Action{ID: "big", Term: 1, Kind: wire.KindRun, Command: "head -c 300000 /dev/zero; echo done >&2"})
	res, outs := c.result(t, "big")
	if res.ExitCode != 0 || res.Error != "" || !res.Truncated {
		t.Errorf("result = %+v, want success, truncated", res)
	}
	total := 0
	for _, o := range outs {
		if len(o) > flushSize {
			t.Errorf("an output frame of %d bytes", len(o))
		}
		total += len(o)
	}
	if total != wire.MaxOutput {
		t.Errorf("%d bytes of output sent, want %d", total, wire.MaxOutput)
	}
}

func TestRunTimeoutKillsProcessGroup(t *testing.T) {
	fc := newFakeCoord(t, newTestCA(t))
	startAgent(t, newConfig(t, fc, &syncbuf.Buffer{}))
	c, _ := fc.nextConn(t)

	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	c.act(t, wire.Action{ID: "slow", Term: 1, Kind: wire.KindRun, Timeout: wire.Duration(300 * time.Millisecond),
		Command: fmt.Sprintf("sleep 30 & echo $! > %s; wait", pidFile)})
	res, _ := c.result(t, "slow")
	if res.Error != "timed out after 300ms" || res.ExitCode == 0 {
		t.Errorf("result = %+v", res)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the timeout took %s", d)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	testwait.For(t, "the background sleep to die", func() bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true // gone
		}
		_, after, _ := strings.Cut(string(stat), ") ")
		return strings.HasPrefix(after, "Z") // killed, not yet reaped by init
	})
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// sendPut sends a put action and its data in chunks of n bytes.
func sendPut(t *testing.T, c *fakeConn, a wire.Action, data []byte, n int) {
	t.Helper()
	c.act(t, a)
	for len(data) > 0 {
		k := min(n, len(data))
		c.send(t, wire.Frame{Type: wire.TypeChunk, Chunk: &wire.Chunk{ID: a.ID, Data: data[:k]}})
		data = data[k:]
	}
	c.send(t, wire.Frame{Type: wire.TypeChunk, Chunk: &wire.Chunk{ID: a.ID, EOF: true}})
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestPut(t *testing.T) {
	fc := newFakeCoord(t, newTestCA(t))
	startAgent(t, newConfig(t, fc, &syncbuf.Buffer{}))
	c, _ := fc.nextConn(t)

	dir := filepath.Join(t.TempDir(), "srv", "app")
	path := filepath.Join(dir, "release.tar.gz")
	data := make([]byte, 100_000)
	rand.Read(data)
	sendPut(t, c, wire.Action{ID: "p1", Term: 1, Kind: wire.KindPut, Path: path, Mode: 0o640,
		Size: int64(len(data)), SHA256: sha(data)}, data, 30_000)
	if res, _ := c.result(t, "p1"); res.Error != "" {
		t.Fatalf("put failed: %+v", res)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file content differs (err %v)", err)
	}
	if m := permOf(t, path); m != 0o640 {
		t.Errorf("mode %v, want 0640", m)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"release.tar.gz"}) {
		t.Errorf("dir holds %q, want only the file", names)
	}

	// A bad checksum leaves the old file untouched and no temp file.
	bad := []byte("corrupted in transit")
	sendPut(t, c, wire.Action{ID: "p2", Term: 1, Kind: wire.KindPut, Path: path, Mode: 0o644,
		Size: int64(len(bad)), SHA256: sha([]byte("what was meant"))}, bad, 8)
	res, _ := c.result(t, "p2")
	if !strings.Contains(res.Error, "checksum mismatch") {
		t.Errorf("result = %+v, want a checksum mismatch", res)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Error("a failed put changed the file")
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"release.tar.gz"}) {
		t.Errorf("dir holds %q after a failed put, want only the file", names)
	}

	// Too much data is refused as soon as it exceeds the size.
	sendPut(t, c, wire.Action{ID: "p3", Term: 1, Kind: wire.KindPut, Path: path, Size: 3, SHA256: sha([]byte("abc"))},
		[]byte("abcdef"), 2)
	if res, _ := c.result(t, "p3"); !strings.Contains(res.Error, "more data than the announced size") {
		t.Errorf("result = %+v", res)
	}

	c.act(t, wire.Action{ID: "p4", Term: 1, Kind: wire.KindPut, Path: "relative/file", SHA256: sha(nil)})
	if res, _ := c.result(t, "p4"); !strings.Contains(res.Error, "not absolute") {
		t.Errorf("result = %+v", res)
	}
}

func TestCheck(t *testing.T) {
	fc := newFakeCoord(t, newTestCA(t))
	startAgent(t, newConfig(t, fc, &syncbuf.Buffer{}))
	c, _ := fc.nextConn(t)

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			fmt.Fprint(w, "ok")
		case "/hang":
			<-r.Context().Done()
		default:
			http.Error(w, "db down", 500)
		}
	}))
	defer app.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		id       string
		check    wire.Check
		want     string // "" = healthy
		timedOut bool
	}{
		{"healthy", wire.Check{HTTP: app.URL + "/health", Status: 200, BodyContains: "ok"}, "", false},
		{"unhealthy", wire.Check{HTTP: app.URL + "/broken"}, "status 500, want 200", false},
		{"tcp-up", wire.Check{TCP: app.Listener.Addr().String()}, "", false},
		{"tcp-down", wire.Check{TCP: closed}, "connection refused", false},
		{"both", wire.Check{HTTP: app.URL, TCP: closed}, "exactly one of http and tcp", false},
		// The coordinator hands the rest of its window as the timeout and
		// must learn that the time ran out, not that the host failed.
		{"hangs", wire.Check{HTTP: app.URL + "/hang"}, "timeout after 50ms", true},
	} {
		act := wire.Action{ID: tc.id, Term: 1, Kind: wire.KindCheck, Check: &tc.check}
		if tc.timedOut {
			act.Timeout = wire.Duration(50 * time.Millisecond)
		}
		c.act(t, act)
		res, _ := c.result(t, tc.id)
		if tc.want == "" && res.Error != "" || tc.want != "" && !strings.Contains(res.Error, tc.want) {
			t.Errorf("%s: result %+v, want error containing %q", tc.id, res, tc.want)
		}
		if res.TimedOut != tc.timedOut {
			t.Errorf("%s: timed_out = %v, want %v", tc.id, res.TimedOut, tc.timedOut)
		}
	}
}

func TestStaleTermRejectedAcrossRestart(t *testing.T) {
	fc := newFakeCoord(t, newTestCA(t))
	cfg := newConfig(t, fc, &syncbuf.Buffer{})
	ta := startAgent(t, cfg)
	c, _ := fc.nextConn(t)

	c.act(t, wire.Action{ID: "t5", Term: 5, Kind: wire.KindRun, Command: "true"})
	if res, _ := c.result(t, "t5"); res.Error != "" || res.Rejected {
		t.Fatalf("term 5: %+v", res)
	}
	marker := filepath.Join(t.TempDir(), "ran")
	c.act(t, wire.Action{ID: "t3", Term: 3, Kind: wire.KindRun, Command: "touch " + marker})
	res, _ := c.result(t, "t3")
	if !res.Rejected || res.Error != "stale term 3 < 5" {
		t.Errorf("term 3: %+v, want rejected", res)
	}

	if err := ta.stop(t); err != nil {
		t.Fatal(err)
	}
	startAgent(t, cfg)
	c, hello := fc.nextConn(t)
	if hello.MaxTerm != 5 {
		t.Errorf("after a restart hello.MaxTerm = %d, want 5", hello.MaxTerm)
	}
	c.act(t, wire.Action{ID: "t4", Term: 4, Kind: wire.KindRun, Command: "touch " + marker})
	if res, _ := c.result(t, "t4"); !res.Rejected || res.Error != "stale term 4 < 5" {
		t.Errorf("term 4 after restart: %+v, want rejected", res)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Error("a rejected action ran")
	}
	c.act(t, wire.Action{ID: "t6", Term: 6, Kind: wire.KindRun, Command: "true"})
	if res, _ := c.result(t, "t6"); res.Error != "" {
		t.Fatalf("term 6: %+v", res)
	}
	if data, _ := os.ReadFile(cfg.path(termFile)); strings.TrimSpace(string(data)) != "6" {
		t.Errorf("term file holds %q, want 6", data)
	}
}

// expectNoResult reads c until it closes and fails on a Result for id.
func expectNoResult(t *testing.T, c *fakeConn, id string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return
			}
			if f.Type == wire.TypeResult && f.Result.ID == id {
				t.Fatalf("interrupted action %s reported: %+v", id, *f.Result)
			}
		case <-timeout:
			t.Fatal("the connection did not close")
		}
	}
}

func TestActionInterruptedByRestartIsLost(t *testing.T) {
	fc := newFakeCoord(t, newTestCA(t))
	cfg := newConfig(t, fc, &syncbuf.Buffer{})
	ta := startAgent(t, cfg)
	c, _ := fc.nextConn(t)

	c.act(t, wire.Action{ID: "deploy-7", Term: 2, Kind: wire.KindRun, Command: "echo started; sleep 30; echo finished"})
	if f := c.next(t); f.Type != wire.TypeOutput || string(f.Output.Data) != "started\n" {
		t.Fatalf("frame %+v, want the action's first output", f)
	}
	if _, err := os.Stat(filepath.Join(cfg.path(journalDir), "deploy-7")); err != nil {
		t.Fatalf("no journal entry for the running action: %v", err)
	}
	start := time.Now()
	if err := ta.stop(t); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stopping took %s", d)
	}
	expectNoResult(t, c, "deploy-7")

	startAgent(t, cfg)
	c, hello := fc.nextConn(t)
	if !slices.Equal(hello.Lost, []string{"deploy-7"}) {
		t.Fatalf("hello.Lost = %q, want [deploy-7]", hello.Lost)
	}
	// The entry is gone once reported, and the action is not resumed.
	c.act(t, wire.Action{ID: "after", Term: 2, Kind: wire.KindRun, Command: "true"})
	if res, _ := c.result(t, "after"); res.Error != "" {
		t.Fatalf("%+v", res)
	}
	testwait.For(t, "an empty journal", func() bool { return len(dirNames(t, cfg.path(journalDir))) == 0 })
}

func TestReconnectAfterDropReportsLost(t *testing.T) {
	fc := newFakeCoord(t, newTestCA(t))
	startAgent(t, newConfig(t, fc, &syncbuf.Buffer{}))
	c, _ := fc.nextConn(t)

	c.act(t, wire.Action{ID: "long", Term: 1, Kind: wire.KindRun, Command: "echo started; sleep 30"})
	if f := c.next(t); f.Type != wire.TypeOutput {
		t.Fatalf("frame %+v, want output", f)
	}
	c.c.CloseNow() // the coordinator goes away

	c2, hello := fc.nextConn(t)
	if !slices.Equal(hello.Lost, []string{"long"}) {
		t.Errorf("hello.Lost = %q, want [long]", hello.Lost)
	}
	c2.act(t, wire.Action{ID: "r", Term: 1, Kind: wire.KindRun, Command: "echo again"})
	if res, outs := c2.result(t, "r"); res.Error != "" || string(bytes.Join(outs, nil)) != "again\n" {
		t.Errorf("after reconnecting: %+v %q", res, outs)
	}
}

func TestReconnectAfterSilence(t *testing.T) {
	fc := newFakeCoord(t, newTestCA(t))
	tun := defaultTuning
	tun.deadAfter = 300 * time.Millisecond
	tun.pingInterval = time.Hour // the agent's pings are not what is tested
	startAgentTuned(t, newConfig(t, fc, &syncbuf.Buffer{}), tun)
	fc.nextConn(t)
	start := time.Now()
	fc.nextConn(t) // the fake never pings: the agent gives up on it and redials
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("redialled after %s of silence, want about 300ms", d)
	}
}

func TestLeaderRedirect(t *testing.T) {
	ca := newTestCA(t)
	leader := newFakeCoord(t, ca)
	follower := newFakeCoord(t, ca)
	follower.leader = leader.addr
	// Enrollment's token lives on the leader; the agent only knows the follower.
	cfg := newConfig(t, leader, &syncbuf.Buffer{})
	cfg.Coordinators = []string{follower.addr}
	startAgent(t, cfg)

	_, hello := leader.nextConn(t)
	if hello.Name != "web1" {
		t.Errorf("hello = %+v", hello)
	}
	if n := follower.hits.Load(); n != 2 {
		t.Errorf("the follower saw %d requests, want 2 (enroll and connect)", n)
	}
}

func TestCoordinatorFromAnotherCARefused(t *testing.T) {
	ca := newTestCA(t)
	good := newFakeCoord(t, ca)
	impostor := newFakeCoord(t, newTestCA(t))

	logs := &syncbuf.Buffer{}
	cfg := newConfig(t, good, logs)
	cfg.Coordinators = []string{impostor.addr}
	err := Enroll(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("Enroll with an impostor: %v", err)
	}
	if _, err := os.Stat(cfg.TokenFile); err != nil {
		t.Errorf("the token was lost to an impostor: %v", err)
	}

	// Enrolled with the real cluster, the agent never talks to the impostor.
	cfg.Coordinators = []string{good.addr}
	if err := Enroll(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Coordinators = []string{impostor.addr}
	startAgent(t, cfg)
	testwait.For(t, "the refusal to be logged", func() bool {
		return strings.Contains(logs.String(), "certificate signed by unknown authority")
	})
	if n := impostor.hits.Load(); n != 0 {
		t.Errorf("the impostor served %d requests", n)
	}
}

func TestInvalidActions(t *testing.T) {
	fc := newFakeCoord(t, newTestCA(t))
	startAgent(t, newConfig(t, fc, &syncbuf.Buffer{}))
	c, _ := fc.nextConn(t)
	c.act(t, wire.Action{ID: "k", Term: 1, Kind: "reboot"})
	if res, _ := c.result(t, "k"); !strings.Contains(res.Error, `unknown action kind "reboot"`) {
		t.Errorf("%+v", res)
	}
	// An ID that is not a file name is journaled safely.
	c.act(t, wire.Action{ID: "../../etc/x", Term: 1, Kind: wire.KindRun, Command: "exit 0"})
	if res, _ := c.result(t, "../../etc/x"); res.Error != "" {
		t.Errorf("%+v", res)
	}
}

// An action that asks for Streams gets stderr in frames of its own.
func TestRunStreamsApart(t *testing.T) {
	fc := newFakeCoord(t, newTestCA(t))
	startAgent(t, newConfig(t, fc, &syncbuf.Buffer{}))
	c, _ := fc.nextConn(t)

	c.act(t, wire.Action{ID: "s1", Term: 1, Kind: wire.KindRun, Streams: true, Command: "echo out; echo err >&2; exit 2"})
	var out, errOut []byte
	for {
		f := c.next(t)
		if f.Type == wire.TypeOutput && f.Output.ID == "s1" {
			if f.Output.Stderr {
				errOut = append(errOut, f.Output.Data...)
			} else {
				out = append(out, f.Output.Data...)
			}
			continue
		}
		if f.Type == wire.TypeResult && f.Result.ID == "s1" {
			if f.Result.ExitCode != 2 {
				t.Errorf("result = %+v", *f.Result)
			}
			break
		}
	}
	if string(out) != "out\n" || string(errOut) != "err\n" {
		t.Errorf("stdout %q, stderr %q", out, errOut)
	}
}
