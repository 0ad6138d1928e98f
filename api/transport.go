package api

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/drover-dev/drover/internal/ctxtime"
)

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
		if err := ctxtime.Sleep(ctx, wait+rand.N(wait/2)); err != nil {
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
	u := url.URL{Scheme: c.scheme, Host: addr, Path: rq.path}
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
