package api

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/deploy"
)

// A watcher on a follower sees every event once, in order, across a cut
// connection, until the deployment ends.
func TestWatchThroughFollowerResumes(t *testing.T) {
	p := newPKI(t)
	st := newStore()
	l := startNode(t, p, st, "n1", true)
	f := startNode(t, p, st, "n2", false)
	f.setLeader(false, l.addr)

	st.addDeployment("d1") // seq 1
	st.addDeployment("d2") // seq 2, another deployment's
	st.stage("d1", "web1") // seq 3

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := newTestClient(t, p, tokRead, f.addr)
	var got []uint64
	cut := false
	err := c.Watch(ctx, "d1", 0, func(ev deploy.Event) error {
		if ev.Deployment != "d1" {
			t.Errorf("event of %s", ev.Deployment)
		}
		got = append(got, ev.Seq)
		switch {
		case ev.Seq == 3 && !cut:
			// Drop every connection to the follower, then move on while
			// the watcher is away.
			cut = true
			f.srv.CloseClientConnections()
			st.stage("d2", "web9") // seq 4
			st.stage("d1", "web2") // seq 5
		case ev.Seq == 5:
			// Live: wake the stream that is waiting.
			go func() {
				st.stage("d1", "web3")              // seq 6
				st.finish("d1", deploy.StateFailed) // seq 7
			}()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	if want := []uint64{1, 3, 5, 6, 7}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	// Both streams went through the follower, and the second resumed
	// after seq 3.
	var streams []seenRequest
	for _, r := range l.requests() {
		if strings.HasSuffix(r.path, "/events") {
			streams = append(streams, r)
		}
	}
	if len(streams) != 2 || streams[0].forwardedBy != "n2" || streams[1].forwardedBy != "n2" ||
		streams[0].lastEventID != "" || streams[1].lastEventID != "3" {
		t.Fatalf("leader saw streams %+v", streams)
	}
}

// readSSE reads a raw stream until "event: end", returning the ids and
// whether a heartbeat was seen.
func readSSE(t *testing.T, resp *http.Response) (ids []string, kinds []string, heartbeat bool) {
	t.Helper()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			ids = append(ids, strings.TrimPrefix(line, "id: "))
		case strings.HasPrefix(line, "event: "):
			kinds = append(kinds, strings.TrimPrefix(line, "event: "))
			if line == "event: end" {
				return
			}
		case strings.HasPrefix(line, ": "):
			heartbeat = true
		}
	}
	t.Fatalf("stream ended without end: %v", sc.Err())
	return
}

func TestEventStream(t *testing.T) {
	p := newPKI(t)
	st := newStore()
	l := startNode(t, p, st, "n1", true)
	st.addDeployment("d1")                 // 1
	st.stage("d1", "web1")                 // 2
	st.stage("d1", "web2")                 // 3
	st.finish("d1", deploy.StateSucceeded) // 4

	cases := []struct {
		name   string
		query  string
		header map[string]string
		ids    []string
	}{
		{"from the start", "", nil, []string{"1", "2", "3", "4"}},
		{"after", "?after=2", nil, []string{"3", "4"}},
		{"Last-Event-ID wins over after", "?after=1", map[string]string{"Last-Event-ID": "3"}, []string{"4"}},
		{"nothing left", "?after=4", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "https://"+l.addr+"/v1/deployments/d1/events"+tc.query, nil)
			req.Header.Set("Authorization", "Bearer "+tokRead)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := p.httpClient(&p.client).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
				t.Fatalf("%d %s", resp.StatusCode, ct)
			}
			ids, kinds, _ := readSSE(t, resp)
			if !slices.Equal(ids, tc.ids) {
				t.Fatalf("ids %v, want %v", ids, tc.ids)
			}
			if kinds[len(kinds)-1] != "end" || len(kinds) != len(tc.ids)+1 {
				t.Fatalf("kinds %v", kinds)
			}
		})
	}

	t.Run("heartbeat while running", func(t *testing.T) {
		st.addDeployment("d2") // 5
		req, _ := http.NewRequest("GET", "https://"+l.addr+"/v1/deployments/d2/events", nil)
		req.Header.Set("Authorization", "Bearer "+tokRead)
		resp, err := p.httpClient(&p.client).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		time.AfterFunc(200*time.Millisecond, func() { st.finish("d2", deploy.StateAborted) })
		ids, _, heartbeat := readSSE(t, resp)
		if !slices.Equal(ids, []string{"5", "6"}) || !heartbeat {
			t.Fatalf("ids %v heartbeat %v", ids, heartbeat)
		}
	})

	t.Run("bad cursor", func(t *testing.T) {
		resp, body := rawDo(t, p, "GET", "https://"+l.addr+"/v1/deployments/d1/events?after=x", "", nil)
		wantCode(t, resp, body, 400, "bad_request")
	})

	t.Run("unknown deployment", func(t *testing.T) {
		c := newTestClient(t, p, tokRead, l.addr)
		err := c.Watch(context.Background(), "nope", 0, func(deploy.Event) error { return nil })
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
		resp, body := rawDo(t, p, "GET", "https://"+l.addr+"/v1/deployments//events", "", nil)
		if resp.StatusCode != 404 && resp.StatusCode != 301 {
			t.Fatalf("empty id: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("deployment vanishes mid-stream", func(t *testing.T) {
		st.addDeployment("d3")
		c := newTestClient(t, p, tokRead, l.addr)
		err := c.Watch(context.Background(), "d3", 0, func(deploy.Event) error {
			st.mu.Lock()
			delete(st.deps, "d3")
			st.bump()
			st.mu.Unlock()
			return nil
		})
		var e *Error
		if !errors.Is(err, ErrNotFound) || !errors.As(err, &e) || e.Status != 404 {
			t.Fatalf("got %#v, want ErrNotFound", err)
		}
	})

	t.Run("watcher error stops the watch", func(t *testing.T) {
		c := newTestClient(t, p, tokRead, l.addr)
		stop := errors.New("stop")
		n := 0
		err := c.Watch(context.Background(), "d1", 0, func(deploy.Event) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Fatalf("got %v after %d events", err, n)
		}
	})
}
