package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/ctxtime"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// Addrs are the coordinators' API addresses ("host:port"); see ParseAddrs.
	Addrs []string
	// TLS must trust the cluster CA and present a certificate it issued.
	TLS *tls.Config
	// Token is sent as "Authorization: Bearer"; empty sends none (a
	// coordinator joining with its server certificate).
	Token string
	// Socket is the unix socket of an embedded coordinator (a local
	// 'drover deploy'), instead of Addrs and TLS: plain HTTP, the socket's
	// file permissions stand for authentication (Config.Local).
	Socket string
	// Timeout bounds each attempt of a request (for an event stream or an
	// artifact upload: until the answer's headers), and how long a call
	// keeps trying the addresses when none answers. Default 30s.
	Timeout time.Duration
}

const (
	defaultClientTimeout = 30 * time.Second
	maxRoundBackoff      = 2 * time.Second
	// electingBackoff caps the pause between rounds while some node
	// answers "no leader": the cluster is electing one, which takes well
	// under a second, so the next round comes soon after the election.
	electingBackoff = 500 * time.Millisecond
	// dialTimeout and handshakeTimeout bound connecting to one address:
	// an address that silently drops packets must not hold a call (or a
	// watcher's reconnect) longer than that.
	dialTimeout      = 2 * time.Second
	handshakeTimeout = 3 * time.Second
	// failedCooldown is how long an address that just failed (no
	// connection, no answer, a stream gone silent) is tried only after the
	// others.
	failedCooldown = 5 * time.Second
	// hedgeDelay is how long a read waits for one address before it also
	// tries the next.
	hedgeDelay = 300 * time.Millisecond
)

// Client talks to a coordinator cluster. It tries the addresses in turn,
// starting with the last one that answered, and moves on when one cannot
// be reached or has no leader to offer. It is safe for concurrent use.
type Client struct {
	addrs   []string
	token   string
	timeout time.Duration
	hc      *http.Client
	stale   bool
	next    *atomic.Int64 // index into addrs of the last address that answered
	failed  *failures     // addresses that just failed, shared with Stale copies
	idle    time.Duration // Watch drops a stream silent this long
	scheme  string        // https, or http over a unix socket
}

// failures remembers when each address last failed to answer.
type failures struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (f *failures) mark(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.at[addr] = time.Now()
}

func (f *failures) clear(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.at, addr)
}

// cooling reports whether addr failed less than failedCooldown ago.
func (f *failures) cooling(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.at[addr]
	return ok && time.Since(at) < failedCooldown
}

// ParseAddrs splits DROVER_ADDR: comma-separated "host:port" (an https://
// prefix is accepted), duplicates dropped, at least one.
func ParseAddrs(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if strings.Contains(a, "://") {
			u, err := url.Parse(a)
			if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
				return nil, fmt.Errorf("address %q: want host:port or https://host:port", a)
			}
			a = u.Host
		}
		if err := checkAddr(a); err != nil {
			return nil, err
		}
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no coordinator address given")
	}
	return out, nil
}

func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("address %q: %v", a, err)
	}
	if host == "" {
		return fmt.Errorf("address %q: no host", a)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("address %q: bad port", a)
	}
	return nil
}

// NewClient returns a client for the coordinators at cfg.Addrs.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Socket != "" {
		return newSocketClient(cfg)
	}
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("api: no coordinator address")
	}
	for _, a := range cfg.Addrs {
		if err := checkAddr(a); err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
	}
	if cfg.TLS == nil {
		return nil, errors.New("api: a TLS configuration is required (coordinators ask for a client certificate)")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = defaultClientTimeout
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: min(timeout, dialTimeout), KeepAlive: 5 * time.Second}).DialContext,
		TLSClientConfig:     cfg.TLS.Clone(),
		TLSHandshakeTimeout: min(timeout, handshakeTimeout),
		ForceAttemptHTTP2:   true,
		// A connection whose peer went silent (a node cut off, a machine
		// hung) is closed within two seconds rather than holding every
		// request multiplexed on it until TCP gives up.
		HTTP2:               &http.HTTP2Config{SendPingTimeout: time.Second, PingTimeout: time.Second},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Client{
		addrs:   append([]string(nil), cfg.Addrs...),
		token:   cfg.Token,
		timeout: timeout,
		hc:      &http.Client{Transport: tr},
		next:    new(atomic.Int64),
		failed:  &failures{at: map[string]time.Time{}},
		idle:    streamIdle,
		scheme:  "https",
	}, nil
}

// newSocketClient talks to the embedded coordinator at cfg.Socket.
func newSocketClient(cfg ClientConfig) (*Client, error) {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = defaultClientTimeout
	}
	d := &net.Dialer{Timeout: min(timeout, dialTimeout)}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", cfg.Socket)
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Client{
		addrs: []string{"embedded"}, timeout: timeout, hc: &http.Client{Transport: tr},
		next: new(atomic.Int64), failed: &failures{at: map[string]time.Time{}}, idle: streamIdle, scheme: "http",
	}, nil
}

// Stale returns a client whose reads are answered by whichever node
// receives them (?stale=true) instead of the leader: useful when the
// cluster has no leader. It shares c's connections.
func (c *Client) Stale() *Client {
	cc := *c
	cc.stale = true
	return &cc
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Status returns what the node that answers says of itself.
func (c *Client) Status(ctx context.Context) (NodeStatus, error) {
	var st NodeStatus
	err := c.call(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// Members lists the cluster's voters and what each says of itself.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var ms []Member
	err := c.call(ctx, http.MethodGet, "/v1/cluster/members", nil, &ms)
	return ms, err
}

// Join adds (or re-adds) a coordinator to the cluster.
func (c *Client) Join(ctx context.Context, req JoinRequest) error {
	return c.call(ctx, http.MethodPost, "/v1/cluster/join", req, nil)
}

// RemoveMember removes a coordinator from the cluster.
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, "/v1/cluster/members/"+url.PathEscape(id), nil, nil)
}

// Hosts lists the host agents, as the leader knows them.
func (c *Client) Hosts(ctx context.Context) ([]AgentInfo, error) {
	var out []AgentInfo
	err := c.call(ctx, http.MethodGet, "/v1/hosts", nil, &out)
	return out, err
}

// RevokeAgent refuses an agent's certificate from now on.
func (c *Client) RevokeAgent(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodPost, "/v1/agents/"+url.PathEscape(name)+"/revoke", nil, nil)
}

// Backup writes the cluster's whole replicated state to w.
func (c *Client) Backup(ctx context.Context, w io.Writer) error {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/v1/cluster/backup", retry: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("api: reading backup: %w", err)
	}
	return nil
}

// Restore replaces the cluster's state with a backup made by Backup.
func (c *Client) Restore(ctx context.Context, open func() (io.ReadCloser, error)) error {
	resp, err := c.send(ctx, request{method: http.MethodPost, path: "/v1/cluster/restore", open: open})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// UploadArtifact stores a release archive under its SHA-256 unless the
// cluster already has it. open is called for each attempt; the archive
// goes to one coordinator, which replicates it.
func (c *Client) UploadArtifact(ctx context.Context, sha256 string, open func() (io.ReadCloser, error)) error {
	sha256 = strings.ToLower(sha256)
	if !validSHA256(sha256) {
		return fmt.Errorf("%w: %q is not a hex SHA-256", ErrBadRequest, sha256)
	}
	path := "/v1/artifacts/" + sha256
	resp, err := c.send(ctx, request{method: http.MethodHead, path: path, retry: true})
	switch {
	case err == nil:
		resp.Body.Close()
		return nil
	case !errors.Is(err, ErrNotFound):
		return err
	}
	resp, err = c.send(ctx, request{method: http.MethodPut, path: path, open: open, retry: true})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Submit starts a deployment and returns its ID.
func (c *Client) Submit(ctx context.Context, req SubmitRequest) (string, error) {
	var out SubmitResponse
	err := c.callOnce(ctx, http.MethodPost, "/v1/deployments", req, &out)
	return out.ID, err
}

// Deployment returns one deployment.
func (c *Client) Deployment(ctx context.Context, id string) (deploy.Deployment, error) {
	var d deploy.Deployment
	err := c.call(ctx, http.MethodGet, "/v1/deployments/"+url.PathEscape(id), nil, &d)
	return d, err
}

// Act asks a running deployment to pause, resume or abort.
func (c *Client) Act(ctx context.Context, id string, a Action) error {
	switch a {
	case ActionPause, ActionResume, ActionAbort:
	default:
		return fmt.Errorf("%w: unknown action %q", ErrBadRequest, a)
	}
	return c.callOnce(ctx, http.MethodPost, "/v1/deployments/"+url.PathEscape(id)+"/"+string(a), nil, nil)
}

// Rollback starts a deployment that takes id's hosts back (to release
// `to`, or each to its previous release when to is ""), and returns its ID.
func (c *Client) Rollback(ctx context.Context, id, to string) (string, error) {
	var out SubmitResponse
	var body any
	if to != "" {
		body = RollbackRequest{To: to}
	}
	err := c.callOnce(ctx, http.MethodPost, "/v1/deployments/"+url.PathEscape(id)+"/rollback", body, &out)
	return out.ID, err
}

// Repair starts a repair deployment (see RepairRequest).
func (c *Client) Repair(ctx context.Context, req RepairRequest) (RepairResponse, error) {
	var out RepairResponse
	err := c.callOnce(ctx, http.MethodPost, "/v1/repairs", req, &out)
	return out, err
}

// CreateToken creates an API token; the answer holds its only clear copy.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (TokenResponse, error) {
	var out TokenResponse
	err := c.callOnce(ctx, http.MethodPost, "/v1/tokens", req, &out)
	return out, err
}

// Tokens lists the API tokens (never their secrets).
func (c *Client) Tokens(ctx context.Context) ([]TokenInfo, error) {
	var out []TokenInfo
	err := c.call(ctx, http.MethodGet, "/v1/tokens", nil, &out)
	return out, err
}

// DeleteToken revokes a token by name.
func (c *Client) DeleteToken(ctx context.Context, name string) error {
	return c.callOnce(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(name), nil, nil)
}

// Watch hands the events of deployment id after seq `after` to fn, in
// order, as they are applied. A dropped stream is resumed, on any address,
// after the last event seen (no event twice, none missed). It returns nil
// once the deployment has ended and all its events were handed over, fn's
// error when fn fails, or the error that stopped it (ctx, an answer such as
// ErrNotFound, or ErrUnavailable).
func (c *Client) Watch(ctx context.Context, id string, after uint64, fn func(deploy.Event) error) error {
	if id == "" {
		return fmt.Errorf("%w: no deployment id", ErrBadRequest)
	}
	path := "/v1/deployments/" + url.PathEscape(id) + "/events"
	last := after
	pause := 100 * time.Millisecond
	for {
		q := url.Values{"after": {strconv.FormatUint(last, 10)}}
		h := http.Header{"Accept": {"text/event-stream"}}
		if last > 0 {
			h.Set("Last-Event-ID", strconv.FormatUint(last, 10))
		}
		resp, err := c.send(ctx, request{method: http.MethodGet, path: path, query: q, header: h, stream: true, retry: true})
		if err != nil {
			return err
		}
		before := last
		err = c.consume(resp, &last, fn)
		var cb callbackError
		var apiErr *Error
		switch {
		case errors.Is(err, errStreamEnded):
			return nil
		case errors.As(err, &cb):
			return cb.err
		case errors.As(err, &apiErr):
			return apiErr
		case ctx.Err() != nil:
			return ctx.Err()
		}
		// The stream dropped (its node died, went silent, or stopped
		// leading): resume after last, starting elsewhere.
		c.failed.mark(resp.Request.URL.Host)
		if last > before {
			pause = 100 * time.Millisecond
		} else {
			pause = min(2*pause, maxWatchPause)
		}
		if err := ctxtime.Sleep(ctx, pause); err != nil {
			return err
		}
	}
}

// consume reads one event stream, closing it when it goes silent longer
// than c.idle (the server sends a heartbeat every streamHeartbeat).
func (c *Client) consume(resp *http.Response, last *uint64, fn func(deploy.Event) error) error {
	defer resp.Body.Close()
	t := time.AfterFunc(c.idle, func() { resp.Body.Close() })
	defer t.Stop()
	return readStream(&idleReader{r: resp.Body, t: t, d: c.idle}, last, fn)
}

type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.Reset(r.d)
	}
	return n, err
}

// Logs returns the recorded output of the remote commands q selects: the
// lines after q.After, and the Seq to ask after next.
func (c *Client) Logs(ctx context.Context, q deploy.LogQuery) (deploy.LogPage, error) {
	v := url.Values{}
	if q.Host != "" {
		v.Set("host", q.Host)
	}
	if q.Stage != "" {
		v.Set("stage", string(q.Stage))
	}
	if q.After > 0 {
		v.Set("after", strconv.FormatUint(q.After, 10))
	}
	path := "/v1/deployments/" + url.PathEscape(q.ID) + "/logs"
	var p deploy.LogPage
	err := c.exchange(ctx, request{method: http.MethodGet, path: path, query: v, retry: true}, nil, &p)
	return p, err
}
