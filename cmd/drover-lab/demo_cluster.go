package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/api"
	"github.com/drover-dev/drover/lab"
)

// runClusterDeploy is the demo's last act: three `drover server`
// processes, one per coordinator namespace, Raft and the API over mutual
// TLS; `drover deploy --server` of v4 under the same load; the leader is
// killed (kill -9) when the second batch starts, and another coordinator
// finishes the rollout.
func runClusterDeploy(ctx context.Context, l *lab.Lab, drover string, s *deployStep, stdout io.Writer) error {
	dc, err := l.NewDroverCluster(ctx, drover)
	if err != nil {
		return err
	}
	env := append(os.Environ(), dc.Env()...)
	var addrs []string
	for i, c := range l.Coordinators {
		addrs = append(addrs, lab.APIAddr(c))
		if _, err := dc.Start(ctx, c.Name, i == 0); err != nil {
			return err
		}
	}
	leader := func() (string, error) {
		cmd := l.Command(ctx, drover, "cluster", "members", "--output", "json")
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			return "", err
		}
		var ms []api.Member
		if err := json.Unmarshal(out, &ms); err != nil {
			return "", err
		}
		up, lead := 0, ""
		for _, m := range ms {
			if m.Reachable {
				up++
			}
			if m.Leader {
				lead = m.ID
			}
		}
		if up != len(l.Coordinators) || lead == "" {
			return "", errors.New("cluster not formed yet")
		}
		return lead, nil
	}
	start := time.Now()
	for {
		if _, err := leader(); err == nil {
			break
		}
		if time.Since(start) > 30*time.Second {
			return errors.New("the coordinator cluster did not form within 30s")
		}
		pause(ctx, 100*time.Millisecond)
	}
	fmt.Fprintf(stdout, "== coordinator cluster c1 c2 c3 up in %v (Raft and API over mutual TLS)\n", time.Since(start).Round(time.Millisecond))

	fmt.Fprintf(stdout, "== DROVER_ADDR=%s drover deploy %s  (%s; want exit %d)\n", strings.Join(addrs, ","), filepath.Base(s.plan), s.title, s.wantExit)
	dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := l.Command(dctx, drover, "deploy", s.plan, "--output", "text")
	cmd.Env = env
	// Kill the leader when the second batch starts.
	batch2 := make(chan struct{})
	var once sync.Once
	pw := &prefixWriter{w: stdout, prefix: "   | "}
	cmd.Stdout = watchWriter{w: pw, match: "batch 2/", hit: func() { once.Do(func() { close(batch2) }) }}
	cmd.Stderr = pw
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	killed := make(chan error, 1)
	go func() {
		select {
		case <-batch2:
		case <-dctx.Done():
			killed <- dctx.Err()
			return
		}
		lead, err := leader()
		if err != nil {
			killed <- err
			return
		}
		err = dc.Procs[lead].Kill()
		pw.Write([]byte(fmt.Sprintf("== demo: killed the leader %s (kill -9) while batch 2 was in flight\n", lead)))
		killed <- err
	}()
	s.finished(dctx, t0, cmd.Wait())
	pw.flush()
	select {
	case kerr := <-killed:
		if kerr != nil {
			return fmt.Errorf("killing the leader: %w", kerr)
		}
	default:
		return errors.New("the deploy ended before its second batch: the leader was not killed")
	}
	fmt.Fprintf(stdout, "== exit %d after %v\n", s.exit, s.duration.Round(time.Millisecond))
	return nil
}

// watchWriter passes output on and calls hit when a line holds match.
type watchWriter struct {
	w     io.Writer
	match string
	hit   func()
}

func (ww watchWriter) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte(ww.match)) {
		ww.hit()
	}
	return ww.w.Write(b)
}
