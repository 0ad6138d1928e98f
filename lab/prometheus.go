package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// PrometheusPort is where the lab's Prometheus listens, on the control
// node's address.
const PrometheusPort = 9090

// Prometheus is a Prometheus server started by the lab (Debian's
// `prometheus` package) in the control namespace, with its own config and
// data under the lab dir, scraping the demo app's /metrics on every web
// host with a `host` label (web1, ...).
type Prometheus struct {
	URL  string // http://<control address>:9090, reachable from every lab node
	proc *Proc
}

// prometheusBinary finds Debian's prometheus.
func prometheusBinary() (string, error) {
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p, nil
	}
	return "", errors.New("lab: prometheus is not installed (apt-get install prometheus)")
}

// StartPrometheus starts Prometheus scraping every web host each scrape
// interval (a short one makes gates see a bad release quickly) and waits
// until it answers ready. Down stops it.
func (l *Lab) StartPrometheus(ctx context.Context, scrape time.Duration) (*Prometheus, error) {
	bin, err := prometheusBinary()
	if err != nil {
		return nil, err
	}
	if scrape <= 0 {
		scrape = time.Second
	}
	dir := filepath.Join(l.Dir, "prometheus")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\nscrape_configs:\n  - job_name: demoapp\n    static_configs:\n", promDuration(scrape), promDuration(scrape))
	for _, h := range l.Hosts {
		fmt.Fprintf(&b, "      - targets: [%q]\n        labels: {host: %q}\n", net.JoinHostPort(h.Address, strconv.Itoa(l.AppPort)), h.Name)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(l.topo.Control().Address.String(), strconv.Itoa(PrometheusPort))
	p, err := l.Start(ctx, "ctl", "prometheus", []string{bin,
		"--config.file=" + cfg,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--storage.tsdb.retention.time=2h",
		"--web.listen-address=" + addr,
	}, nil)
	if err != nil {
		return nil, err
	}
	pr := &Prometheus{URL: "http://" + addr, proc: p}
	// Wait for ready (it replays its WAL, then opens the API).
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		if l.Command(wctx, "curl", "-fsS", "--noproxy", "*", "-o", "/dev/null", "--max-time", "2", pr.URL+"/-/ready").Run() == nil {
			return pr, nil
		}
		if p.Exited() {
			return nil, fmt.Errorf("lab: prometheus exited at start; see %s", p.LogPath())
		}
		select {
		case <-wctx.Done():
			_ = p.Kill()
			return nil, fmt.Errorf("lab: prometheus not ready within 60s; see %s", p.LogPath())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Query asks the lab's Prometheus for an instant query, from inside the
// lab, and returns the raw JSON answer.
func (p *Prometheus) Query(ctx context.Context, l *Lab, q string) (string, error) {
	out, err := l.Command(ctx, "curl", "-fsS", "--noproxy", "*", "--max-time", "10", "--get", "--data-urlencode", "query="+q, p.URL+"/api/v1/query").Output()
	if err != nil {
		return "", fmt.Errorf("query %q: %w", q, err)
	}
	return string(out), nil
}

// Stop stops Prometheus.
func (p *Prometheus) Stop() error { return p.proc.Kill() }

// promDuration writes d as Prometheus wants it (no fractions: 1500ms).
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}
