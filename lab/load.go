package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LoadConfig configures the load generator.
type LoadConfig struct {
	URL         string
	Concurrency int           // parallel clients; default 4
	Duration    time.Duration // 0: until ctx is done
	MaxDuration time.Duration // hard bound; default 10m
	Timeout     time.Duration // per request; default 5s
}

// Result is what a load run saw. A request fails on a transport error or a
// status other than 200.
type Result struct {
	Requests    int            `json:"requests"`
	Failures    int            `json:"failures"`
	ByVersion   map[string]int `json:"by_version"` // successful answers per version
	ByHost      map[string]int `json:"by_host"`    // successful answers per host name
	FirstErrors []string       `json:"first_errors,omitempty"`
	Elapsed     time.Duration  `json:"elapsed_ns"`
}

const maxFirstErrors = 10

// RunLoad sends GET requests to cfg.URL from cfg.Concurrency clients until
// ctx is done or the duration passes. It is what `drover-lab load` runs.
func RunLoad(ctx context.Context, cfg LoadConfig) (Result, error) {
	if cfg.URL == "" {
		return Result{}, errors.New("load: no URL")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = 10 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	d := cfg.MaxDuration
	if cfg.Duration > 0 && cfg.Duration < d {
		d = cfg.Duration
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()

	tr := &http.Transport{
		Proxy:               nil, // never through a proxy from the environment
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
		MaxIdleConnsPerHost: cfg.Concurrency,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout}

	var mu sync.Mutex
	res := Result{ByVersion: map[string]int{}, ByHost: map[string]int{}}
	record := func(version, host string, err error) {
		mu.Lock()
		defer mu.Unlock()
		res.Requests++
		if err != nil {
			res.Failures++
			if len(res.FirstErrors) < maxFirstErrors {
				res.FirstErrors = append(res.FirstErrors, time.Now().Format("15:04:05.000")+" "+err.Error())
			}
			return
		}
		res.ByVersion[version]++
		res.ByHost[host]++
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				// The request is not bound to ctx: once sent it runs to the end
				// (or the timeout), so stopping never counts as a failure.
				v, h, err := get(client, cfg.URL)
				record(v, h, err)
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res, nil
}

// get does one request and parses "<version> <host>".
func get(client *http.Client, url string) (version, host string, err error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", "", fmt.Errorf("reading body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	f := strings.Fields(string(body))
	if len(f) != 2 {
		return "", "", fmt.Errorf("unexpected body %q", body)
	}
	return f[0], f[1], nil
}

// Load is a load generator running in the lab's control namespace.
type Load struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error
	once   sync.Once
	res    Result
	resErr error
}

// StartLoad starts `drover-lab load` against the (first) frontend in the
// control namespace (with no explicit duration; it stops itself after 10
// minutes). Stop it with Stop; cancelling ctx stops it too.
func (l *Lab) StartLoad(ctx context.Context, concurrency int) (*Load, error) {
	return l.StartLoadAt(ctx, l.FrontendURL, concurrency)
}

// StartLoadAt is StartLoad against url, for example the frontend of one of
// the lab's HAProxy instances (HAProxies[i].FrontendURL).
func (l *Lab) StartLoadAt(ctx context.Context, url string, concurrency int) (*Load, error) {
	tool, err := l.Tool(ctx)
	if err != nil {
		return nil, err
	}
	ld := &Load{done: make(chan struct{})}
	ld.cmd = l.Command(ctx, tool, "load", "--url", url, "--concurrency", strconv.Itoa(concurrency))
	ld.cmd.Cancel = func() error { return ld.cmd.Process.Signal(syscall.SIGTERM) }
	ld.cmd.WaitDelay = 15 * time.Second
	ld.cmd.Stdout = &ld.stdout
	ld.cmd.Stderr = &ld.stderr
	if err := ld.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		ld.err = ld.cmd.Wait()
		close(ld.done)
	}()
	return ld, nil
}

// Stop ends the load (SIGTERM: requests in flight complete) and returns what
// it saw. Calling it again returns the same result.
func (ld *Load) Stop() (Result, error) {
	ld.once.Do(func() {
		select {
		case <-ld.done:
		default:
			_ = ld.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-ld.done:
			case <-time.After(20 * time.Second):
				_ = ld.cmd.Process.Kill()
				<-ld.done
			}
		}
		if err := json.Unmarshal(ld.stdout.Bytes(), &ld.res); err != nil {
			ld.resErr = fmt.Errorf("load generator: %v (exit: %v) stderr: %s", err, ld.err, strings.TrimSpace(ld.stderr.String()))
		}
	})
	return ld.res, ld.resErr
}

// Tool returns a drover-lab binary: $DROVER_LAB_BIN, this program when it is
// drover-lab, or else one built into the lab dir.
func (l *Lab) Tool(ctx context.Context) (string, error) {
	l.toolMu.Lock()
	defer l.toolMu.Unlock()
	if l.toolPath != "" {
		return l.toolPath, nil
	}
	if p := os.Getenv("DROVER_LAB_BIN"); p != "" {
		l.toolPath = p
		return p, nil
	}
	if exe, err := os.Executable(); err == nil && filepath.Base(exe) == "drover-lab" {
		l.toolPath = exe
		return exe, nil
	}
	out := filepath.Join(l.Dir, "bin", "drover-lab")
	if err := goBuild(ctx, out, modulePath+"/cmd/drover-lab", "-s -w"); err != nil {
		return "", err
	}
	l.toolPath = out
	return out, nil
}
