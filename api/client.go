package api

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover-dev/drover/raftstore"
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
func (c *Client) Deployment(ctx context.Context, id string) (raftstore.Deployment, error) {
	var d raftstore.Deployment
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

// Rollback starts a deployment that takes id's hosts back, and returns its ID.
func (c *Client) Rollback(ctx context.Context, id string) (string, error) {
	var out SubmitResponse
	err := c.callOnce(ctx, http.MethodPost, "/v1/deployments/"+url.PathEscape(id)+"/rollback", nil, &out)
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
func (c *Client) Watch(ctx context.Context, id string, after uint64, fn func(raftstore.Event) error) error {
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
		if err := sleep(ctx, pause); err != nil {
			return err
		}
	}
}

// consume reads one event stream, closing it when it goes silent longer
// than c.idle (the server sends a heartbeat every streamHeartbeat).
func (c *Client) consume(resp *http.Response, last *uint64, fn func(raftstore.Event) error) error {
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

// --- transport ------------------------------------------------------------

// request is one API call, which send may try on several addresses.
type request struct {
	method, path string
	query        url.Values
	header       http.Header
	body         []byte                        // JSON
	open         func() (io.ReadCloser, error) // a streamed body, opened per attempt
	stream       bool                          // the answer is long-lived: no timeout once it began
	// retry allows another attempt after the request may have reached a
	// server (idempotent requests).
	retry bool
	// key is the write's Idempotency-Key, the same for every attempt.
	key string
}

// call sends a JSON request and decodes a JSON answer into out.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	return c.exchange(ctx, request{method: method, path: path, retry: method == http.MethodGet}, in, out)
}

// callOnce is call for a write that must not be done twice: it carries a
// request key of its own, which makes a repeat harmless (the leader answers
// it with the first one's result), so it is repeated like a read when its
// answer was lost.
func (c *Client) callOnce(ctx context.Context, method, path string, in, out any) error {
	return c.exchange(ctx, request{method: method, path: path, retry: true, key: newRequestKey()}, in, out)
}

// newRequestKey returns a random Idempotency-Key.
func newRequestKey() string {
	var b [16]byte
	cryptorand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// exchange sends rq with in as its JSON body and decodes the JSON answer
// into out.
func (c *Client) exchange(ctx context.Context, rq request, in, out any) error {
	method, path := rq.method, rq.path
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("api: encoding request: %w", err)
		}
		rq.body = b
	}
	resp, err := c.send(ctx, rq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("api: %s %s: decoding answer: %w", method, path, err)
	}
	return nil
}

// send tries the addresses, starting with the last one that answered,
// until one answers something other than "no leader here", ctx ends, or
// the call has tried for c.timeout. A 2xx answer is returned (its body to
// be closed by the caller); any other answer is an *Error.
func (c *Client) send(ctx context.Context, rq request) (*http.Response, error) {
	if c.stale && (rq.method == http.MethodGet || rq.method == http.MethodHead) {
		if rq.query == nil {
			rq.query = url.Values{}
		}
		rq.query.Set("stale", "true")
	}
	giveUp := time.Now().Add(c.timeout)
	r := &rounds{rq: rq, seen: map[string]bool{}}
	backoff := 50 * time.Millisecond
	for {
		if resp, done, err := c.round(ctx, r); done {
			return resp, err
		}
		wait := backoff
		if r.answered {
			wait = min(wait, electingBackoff)
		}
		if time.Now().Add(wait).After(giveUp) {
			return nil, c.unavailable(r.tried, r.lastErr, nil)
		}
		if err := sleep(ctx, wait+rand.N(wait/2)); err != nil {
			return nil, c.unavailable(r.tried, r.lastErr, err)
		}
		backoff = min(2*backoff, maxRoundBackoff)
	}
}

// rounds is what send's rounds learn.
type rounds struct {
	rq       request
	tried    []string // addresses, in the order first tried
	seen     map[string]bool
	lastErr  error
	answered bool // in the last round, a node answered without a leader to offer
}

// outcome is one attempt's result.
type outcome struct {
	idx  int
	resp *http.Response
	sent bool
	err  error
}

// round tries each address once, in order(), and reports done with the
// answer or error that ends the call. A read that may be repeated goes on
// to the next address when one has not answered within hedgeDelay, while
// still waiting for it: a node that silently drops packets then costs
// hedgeDelay, not a dial timeout. An address that just failed is skipped
// when another one answered: the cluster is up and electing, and it would
// only delay the next round.
func (c *Client) round(ctx context.Context, r *rounds) (*http.Response, bool, error) {
	rq := r.rq
	hedge := rq.retry && rq.open == nil && (rq.method == http.MethodGet || rq.method == http.MethodHead)
	order := c.order()
	results := make(chan outcome, len(order))
	cancels := map[int]context.CancelFunc{}
	inflight := map[int]bool{}
	pending, next := 0, 0
	r.answered = false
	launch := func() {
		for next < len(order) {
			idx := order[next]
			next++
			addr := c.addrs[idx]
			if r.answered && c.failed.cooling(addr) {
				continue
			}
			if !r.seen[addr] {
				r.seen[addr] = true
				r.tried = append(r.tried, addr)
			}
			actx, cancel := context.WithCancel(ctx)
			cancels[idx] = cancel
			inflight[idx] = true
			pending++
			go func() {
				resp, sent, err := c.attempt(actx, addr, rq)
				results <- outcome{idx, resp, sent, err}
			}()
			return
		}
	}
	// finish cancels every attempt but the winner's and closes the answers
	// that arrive after it.
	finish := func(winner int) {
		for idx, cancel := range cancels {
			if idx != winner {
				cancel()
			}
		}
		if pending > 0 {
			go func(n int) {
				for range n {
					if o := <-results; o.resp != nil {
						o.resp.Body.Close()
					}
				}
			}(pending)
		}
	}
	hedgeT := time.NewTimer(hedgeDelay)
	defer hedgeT.Stop()
	launch()
	for pending > 0 {
		var hedgeC <-chan time.Time
		if hedge && (next < len(order) || r.answered) {
			hedgeC = hedgeT.C
		}
		var o outcome
		select {
		case <-hedgeC:
			if next < len(order) {
				launch()
				hedgeT.Reset(hedgeDelay)
				continue
			}
			// Every address is tried, another node answered that it has
			// no leader to offer yet (an election), and the rest have
			// been silent for hedgeDelay: a node cut off would hold this
			// round for a whole dial timeout. Give up on them for now
			// and start the next round, where the live nodes come first.
			for idx := range inflight {
				c.failed.mark(c.addrs[idx])
			}
			finish(-1)
			return nil, false, nil
		case o = <-results:
			pending--
			delete(inflight, o.idx)
		}
		addr := c.addrs[o.idx]
		if o.err != nil {
			if ctx.Err() != nil {
				finish(-1)
				return nil, true, c.unavailable(r.tried, r.lastErr, ctx.Err())
			}
			c.failed.mark(addr)
			r.lastErr = fmt.Errorf("%s: %w", addr, o.err)
			if o.sent && !rq.retry {
				finish(-1)
				return nil, true, fmt.Errorf("api: %s %s on %s: %w (the request may have been applied)",
					rq.method, rq.path, addr, o.err)
			}
			launch()
			hedgeT.Reset(hedgeDelay)
			continue
		}
		c.failed.clear(addr)
		if o.resp.StatusCode >= 200 && o.resp.StatusCode < 300 {
			c.next.Store(int64(o.idx))
			finish(o.idx)
			o.resp.Body = &cancelBody{ReadCloser: o.resp.Body, done: cancels[o.idx]}
			return o.resp, true, nil
		}
		e := readError(o.resp)
		if rq.method == http.MethodHead && e.Code == "" && o.resp.StatusCode == http.StatusNotFound {
			e.Message = "not found"
		}
		o.resp.Body.Close()
		if moveOn(e, rq) {
			r.answered = true
			r.lastErr = fmt.Errorf("%s: %w", addr, e)
			launch()
			hedgeT.Reset(hedgeDelay)
			continue
		}
		c.next.Store(int64(o.idx))
		finish(-1)
		return nil, true, e
	}
	for _, cancel := range cancels {
		cancel()
	}
	return nil, false, nil
}

// order is the order in which send tries the addresses: from the last one
// that answered, those that failed a moment ago last.
func (c *Client) order() []int {
	start := int(c.next.Load())
	n := len(c.addrs)
	out := make([]int, 0, n)
	var cooling []int
	for i := range n {
		idx := (start + i) % n
		if c.failed.cooling(c.addrs[idx]) {
			cooling = append(cooling, idx)
			continue
		}
		out = append(out, idx)
	}
	return append(out, cooling...)
}

// moveOn reports whether an answer invites trying another address: the
// node did not act (503 without a leader) or, for a request that may be
// repeated, could not reach the leader or lost its leadership while
// committing (the write may have been done: only a request that may be
// repeated is sent again).
func moveOn(e *Error, rq request) bool {
	switch {
	case e.Status == http.StatusServiceUnavailable && (e.Code == codeNoLeader || e.Code == codeNotLeader):
		return true
	case (e.Status == http.StatusBadGateway || e.Code == codeOutcomeUnknown) && rq.retry:
		return true
	}
	return false
}

func (c *Client) unavailable(tried []string, last, ctxErr error) error {
	return &unavailableError{tried: tried, last: last, ctx: ctxErr}
}

// attempt sends rq to one address. sent reports whether the request may
// have reached the server (its headers were written).
func (c *Client) attempt(ctx context.Context, addr string, rq request) (resp *http.Response, sent bool, err error) {
	u := url.URL{Scheme: "https", Host: addr, Path: rq.path}
	if len(rq.query) > 0 {
		u.RawQuery = rq.query.Encode()
	}
	actx, cancel := context.WithCancel(ctx)
	var timedOut atomic.Bool
	expire := func() { timedOut.Store(true); cancel() }
	// A streamed upload's clock starts once the body is sent; any other
	// attempt's at once.
	var timer atomic.Pointer[time.Timer]
	if rq.open == nil {
		timer.Store(time.AfterFunc(c.timeout, expire))
	}
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{
		WroteHeaders: func() { wrote.Store(true) },
		WroteRequest: func(httptrace.WroteRequestInfo) {
			if rq.open != nil {
				timer.Store(time.AfterFunc(c.timeout, expire))
			}
		},
	}
	actx = httptrace.WithClientTrace(actx, trace)
	stop := func() {
		if t := timer.Load(); t != nil {
			t.Stop()
		}
	}
	fail := func(err error) (*http.Response, bool, error) {
		stop()
		cancel()
		if timedOut.Load() {
			err = fmt.Errorf("no answer within %v: %w", c.timeout, context.DeadlineExceeded)
		}
		return nil, wrote.Load(), err
	}

	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	if rq.open != nil {
		rc, err := rq.open()
		if err != nil {
			cancel()
			return nil, false, fmt.Errorf("opening the upload: %w", err)
		}
		body = rc
	}
	req, err := http.NewRequestWithContext(actx, rq.method, u.String(), body)
	if err != nil {
		if rc, ok := body.(io.Closer); ok {
			rc.Close()
		}
		return fail(err)
	}
	for k, v := range rq.header {
		req.Header[k] = v
	}
	if rq.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if rq.open != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if rq.key != "" {
		req.Header.Set(HeaderIdempotencyKey, rq.key)
	}
	req.Header.Set("User-Agent", "drover-client")
	resp, err = c.hc.Do(req)
	if err != nil {
		return fail(err)
	}
	if rq.stream {
		stop() // a stream lasts; Watch has its own idle check
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, done: func() { stop(); cancel() }}
	return resp, true, nil
}

// cancelBody releases an attempt's context when its answer is closed.
type cancelBody struct {
	io.ReadCloser
	done func()
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.done()
	return err
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
