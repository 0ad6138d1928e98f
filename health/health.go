// Package health judges whether a freshly activated host serves: one-shot
// checks (HTTP, TCP, a command on the host) and WaitHealthy, which repeats a
// check until it passes a threshold of consecutive times and then watches it
// for a stability period.
//
// A check returns nil when the target is healthy, and otherwise an error
// that says why, in words an operator can act on: the target's answer
// ("GET http://10.200.0.11:8080/health: status 500, want 200") or why the
// probe could not be made ("... connection refused", "... timeout after 2s").
// Both count as a failed probe.
package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/tail"
)

// Checker probes a target once.
type Checker interface {
	// Check returns nil when the target is healthy, else an error saying
	// why it is not, or why the probe could not be made. ctx bounds it.
	Check(ctx context.Context) error
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func(ctx context.Context) error

// Check calls f.
func (f CheckerFunc) Check(ctx context.Context) error { return f(ctx) }

// maxBody is how much of a response body an HTTP check reads.
const maxBody = 64 << 10

// maxOutput is how much of a command's output its error quotes.
const maxOutput = 4 << 10

// HTTP returns a check that GETs url and wants the given status (0 means
// 200) and, when bodyContains is not empty, a body that contains it (only
// the first 64 KiB are read). timeout bounds each probe (0: only ctx).
//
// Every probe opens a fresh connection (no keep-alive), so a restarted app
// is really probed rather than an old connection. Redirects are not
// followed: the status compared is the one the URL itself answers.
// Environment proxies are ignored: hosts are probed directly.
func HTTP(url string, status int, bodyContains string, timeout time.Duration) Checker {
	if status == 0 {
		status = http.StatusOK
	}
	return &httpCheck{
		url:      url,
		status:   status,
		contains: bodyContains,
		timeout:  timeout,
		client: &http.Client{
			Transport: &http.Transport{
				Proxy:             nil,
				DisableKeepAlives: true,
				// A health endpoint answers plainly; asking for gzip
				// would make body_contains see what the app sent anyway.
				DisableCompression: true,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

type httpCheck struct {
	url      string
	status   int
	contains string
	timeout  time.Duration
	client   *http.Client
}

func (c *httpCheck) Check(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", c.url, err)
	}
	req.Header.Set("User-Agent", "drover-health")
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %s", c.url, probeFailure(ctx, unwrapURLError(err)))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode != c.status {
		return fmt.Errorf("GET %s: status %d, want %d%s", c.url, resp.StatusCode, c.status, excerpt(body))
	}
	if err != nil {
		return fmt.Errorf("GET %s: reading body: %s", c.url, probeFailure(ctx, err))
	}
	if c.contains != "" && !bytes.Contains(body, []byte(c.contains)) {
		return fmt.Errorf("GET %s: body does not contain %q%s", c.url, c.contains, excerpt(body))
	}
	return nil
}

// unwrapURLError drops net/http's `Get "url": ` prefix; the check adds its own.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// excerpt quotes the start of a body for an error message.
func excerpt(body []byte) string {
	s := strings.TrimSpace(string(body))
	if s == "" {
		return ""
	}
	const n = 200
	if len(s) > n {
		s = s[:n] + "..."
	}
	return fmt.Sprintf(" (body: %q)", s)
}

// probeFailure describes err, saying "timeout after T" when a probe
// timeout (the check's or the policy's) ended it rather than the caller.
func probeFailure(ctx context.Context, err error) string {
	var tc timeoutCause
	if ctx.Err() != nil && errors.As(context.Cause(ctx), &tc) {
		return tc.Error()
	}
	return err.Error()
}

// timeoutCause is the cancellation cause of a probe's own timeout.
type timeoutCause struct{ d time.Duration }

func (t timeoutCause) Error() string { return fmt.Sprintf("timeout after %s", t.d) }

// withTimeout bounds a probe (d <= 0: only ctx).
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, d, timeoutCause{d})
}

// TCP returns a check that passes when a TCP connection to addr (host:port)
// opens within timeout (0: only ctx). The connection is closed at once.
func TCP(addr string, timeout time.Duration) Checker {
	return CheckerFunc(func(ctx context.Context) error {
		ctx, cancel := withTimeout(ctx, timeout)
		defer cancel()
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			var oe *net.OpError
			if errors.As(err, &oe) && oe.Err != nil {
				err = oe.Err // "connection refused" without "dial tcp addr:"
			}
			return fmt.Errorf("tcp %s: %s", addr, probeFailure(ctx, err))
		}
		return conn.Close()
	})
}

// Command returns a check that runs cmd through run (typically a host's
// Run: the command runs on the host) and passes when it succeeds. Output is
// captured, bounded to its last 4 KiB, and quoted in the error.
func Command(run func(ctx context.Context, cmd string, out io.Writer) error, cmd string, timeout time.Duration) Checker {
	return CheckerFunc(func(ctx context.Context) error {
		ctx, cancel := withTimeout(ctx, timeout)
		defer cancel()
		out := tail.New(maxOutput)
		err := run(ctx, cmd, out)
		if err == nil {
			return nil
		}
		// Keep err in the chain (an exit error, say) unless a timeout ended it.
		if msg := probeFailure(ctx, err); msg != err.Error() {
			err = errors.New(msg)
		}
		if o := out.String(); o != "" {
			return fmt.Errorf("command %q: %w: %s", cmd, err, o)
		}
		return fmt.Errorf("command %q: %w", cmd, err)
	})
}
