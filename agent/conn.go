package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/drover-dev/drover/internal/ctxtime"
	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/transport/agent/wire"
)

// tuning holds the timings of the connection. Production uses
// defaultTuning; tests shorten them rather than wait for real minutes.
type tuning struct {
	pingInterval time.Duration // how often we ping
	deadAfter    time.Duration // silence after which the coordinator is gone
	backoffMin   time.Duration // first reconnect delay
	backoffMax   time.Duration // cap of the reconnect delay
	dialTimeout  time.Duration // bound of one WebSocket handshake
}

var defaultTuning = tuning{
	pingInterval: wire.PingInterval,
	deadAfter:    wire.DeadAfter,
	backoffMin:   100 * time.Millisecond,
	backoffMax:   10 * time.Second,
	dialTimeout:  10 * time.Second,
}

// Run is the daemon: it enrolls when the state dir has no certificate yet,
// then stays connected until ctx ends, redialling with jittered
// exponential backoff (100ms doubling to 10s, ±50%) after any drop. It
// returns nil when ctx ends, and an error only when the agent cannot work
// without an operator: a bad config, a refused enrollment, a corrupt
// state dir.
func Run(ctx context.Context, cfg Config) error {
	return run(ctx, cfg, defaultTuning)
}

func run(ctx context.Context, cfg Config, tun tuning) error {
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	log := cfg.logger().With("agent", cfg.Name)
	jdir := cfg.path(journalDir)
	if err := os.MkdirAll(jdir, stateMode); err != nil {
		return fmt.Errorf("agent: state dir: %w", err)
	}
	bo := backoff{min: tun.backoffMin, max: tun.backoffMax}
	for {
		if _, err := os.Stat(cfg.path(certFile)); err == nil {
			break
		}
		err := Enroll(ctx, cfg)
		if err == nil {
			break
		}
		if errors.Is(err, ErrRefused) || errors.Is(err, ErrNotEnrolled) || ctx.Err() != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		d := bo.next()
		log.Error("enrollment failed; retrying", "err", err, "retry_in", d.Round(time.Millisecond))
		if ctxtime.Sleep(ctx, d) != nil {
			return nil
		}
	}
	a, err := newAgent(cfg, tun, log)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	bo.reset()
	for {
		start := time.Now()
		err := a.connectOnce(ctx)
		if ctx.Err() != nil {
			log.Info("agent stopped")
			return nil
		}
		// A connection that lived a while proves the path works: start
		// over at the shortest delay. One that dies at once (a flapping
		// coordinator) keeps growing the delay, so we never hammer it.
		if time.Since(start) >= tun.pingInterval {
			bo.reset()
		}
		d := bo.next()
		log.Warn("disconnected from the coordinators; reconnecting", "err", err, "retry_in", d.Round(time.Millisecond))
		if ctxtime.Sleep(ctx, d) != nil {
			log.Info("agent stopped")
			return nil
		}
	}
}

// agent is the state of a running daemon, across connections.
type agent struct {
	cfg     Config
	tun     tuning
	log     *slog.Logger
	term    *termStore
	journal journal
	client  *http.Client
	last    string // the address of the last coordinator we were connected to
}

func newAgent(cfg Config, tun tuning, log *slog.Logger) (*agent, error) {
	term, err := loadTerm(cfg.path(termFile))
	if err != nil {
		return nil, err
	}
	tlsCfg, err := pki.ClientConfig(pki.Paths{CA: cfg.CA, Cert: cfg.path(certFile), Key: cfg.path(keyFile)})
	if err != nil {
		return nil, fmt.Errorf("%w (if the cluster's CA changed, remove %s and enroll again with a new join token)", err, cfg.path(certFile))
	}
	leaf := tlsCfg.Certificates[0].Leaf
	if got := pki.CommonName(leaf); got != cfg.Name {
		return nil, fmt.Errorf("certificate %s is for %q but the config names this agent %q (remove it and enroll again with a new join token)",
			cfg.path(certFile), got, cfg.Name)
	}
	// The WebSocket upgrade is an HTTP/1.1 request: advertise nothing else.
	tlsCfg.NextProtos = []string{"http/1.1"}
	dialer := &net.Dialer{Timeout: tun.dialTimeout, KeepAlive: 30 * time.Second}
	client := &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:     tlsCfg,
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: tun.dialTimeout,
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // no HTTP/2
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	j := journal{dir: cfg.path(journalDir)}
	j.cleanTemps()
	return &agent{cfg: cfg, tun: tun, log: log, term: term, journal: j, client: client}, nil
}

// connectOnce dials a coordinator and serves the connection until it ends.
func (a *agent) connectOnce(ctx context.Context) error {
	conn, addr, err := a.dial(ctx)
	if err != nil {
		return err
	}
	a.last = addr
	return a.serve(ctx, conn, addr)
}

// dial tries the last coordinator that worked, then every configured
// address in order, following a follower's 503 straight to the leader.
func (a *agent) dial(ctx context.Context) (*websocket.Conn, string, error) {
	addrs := a.cfg.Coordinators
	if a.last != "" {
		addrs = append([]string{a.last}, addrs...)
	}
	tried := map[string]bool{}
	var errs []error
	for _, addr := range addrs {
		if tried[addr] {
			continue
		}
		tried[addr] = true
		conn, got, err := a.dialAddr(ctx, addr, 0)
		if err == nil {
			return conn, got, nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		a.log.Debug("dial failed", "coordinator", addr, "err", err)
		errs = append(errs, err)
	}
	return nil, "", errors.Join(errs...)
}

func (a *agent) dialAddr(ctx context.Context, addr string, hops int) (*websocket.Conn, string, error) {
	dctx, cancel := context.WithTimeout(ctx, a.tun.dialTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, "wss://"+addr+wire.ConnectPath, &websocket.DialOptions{HTTPClient: a.client})
	if err == nil {
		return conn, addr, nil
	}
	if resp == nil {
		return nil, "", fmt.Errorf("%s: %w", addr, unwrapURLError(err))
	}
	body := readBody(resp)
	if resp.StatusCode == http.StatusServiceUnavailable {
		leader := leaderOf(resp)
		if leader != "" && leader != addr && hops < maxRedirects {
			a.log.Info("following the leader", "from", addr, "leader", leader)
			return a.dialAddr(ctx, leader, hops+1)
		}
		return nil, "", fmt.Errorf("%s: not the leader, and no leader known (%s)", addr, describeBody(body))
	}
	return nil, "", fmt.Errorf("%s: connection refused with HTTP %d: %s", addr, resp.StatusCode, describeBody(body))
}

func readBody(resp *http.Response) []byte {
	if resp.Body == nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return b
}

// unwrapURLError drops net/http's `Post "url": ` prefix: the caller names
// the coordinator already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// session is one connection to a coordinator.
type session struct {
	a    *agent
	conn *websocket.Conn
	ctx  context.Context // ends with the connection: actions and writes use it
	log  *slog.Logger

	wmu sync.Mutex // one frame at a time on the socket

	mu      sync.Mutex
	running map[string]bool       // actions in flight, by ID
	puts    map[string]*putStream // puts waiting for chunks, by ID
	wg      sync.WaitGroup        // action goroutines
}

// serve sends the Hello and then reads frames until the connection ends.
// When it returns, every action of this connection has ended, so the
// journal holds exactly the actions whose results were not delivered.
func (a *agent) serve(ctx context.Context, conn *websocket.Conn, addr string) error {
	defer conn.CloseNow()
	conn.SetReadLimit(wire.MaxFrame)
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s := &session{
		a: a, conn: conn, ctx: sctx,
		log:     a.log.With("coordinator", addr),
		running: map[string]bool{},
		puts:    map[string]*putStream{},
	}

	lost, err := a.journal.list()
	if err != nil {
		return err
	}
	hello := a.hello(lost)
	if err := s.send(wire.Frame{Type: wire.TypeHello, Hello: &hello}); err != nil {
		return fmt.Errorf("%s: send hello: %w", addr, err)
	}
	for _, l := range lost {
		if err := os.Remove(l.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("could not remove a reported journal entry", "id", l.id, "err", err)
		}
	}
	if len(lost) > 0 {
		s.log.Warn("reported actions lost to a restart or a dropped connection", "ids", hello.Lost)
	}
	s.log.Info("connected", "max_term", hello.MaxTerm)

	// Closing politely on shutdown lets the coordinator tell a stop from a
	// crash.
	stop := context.AfterFunc(ctx, func() { conn.Close(websocket.StatusGoingAway, "agent stopping") })
	defer stop()
	go s.pinger()

	err = s.readLoop()
	cancel(err)
	s.wg.Wait()
	return err
}

func (a *agent) hello(lost []journalFile) wire.Hello {
	host, _ := os.Hostname()
	h := wire.Hello{
		Name:      a.cfg.Name,
		Version:   a.cfg.Version,
		OS:        runtime.GOOS,
		Arch:      runtime.GOARCH,
		Hostname:  host,
		Addresses: localAddresses(),
		MaxTerm:   a.term.current(),
	}
	for _, l := range lost {
		h.Lost = append(h.Lost, l.id)
	}
	return h
}

// localAddresses lists the host's addresses other than loopback and
// link-local ones, which no coordinator could use to reach it.
func localAddresses() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, ad := range addrs {
		ipn, ok := ad.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsUnspecified() {
			continue
		}
		out = append(out, ipn.IP.String())
	}
	return out
}

// readLoop reads frames until the connection fails or stays silent for
// deadAfter (the coordinator's pings keep it alive).
func (s *session) readLoop() error {
	for {
		// Not s.ctx: on shutdown the connection is closed politely (see
		// serve), and the read must live to see the coordinator's answer.
		rctx, cancel := context.WithTimeout(context.Background(), s.a.tun.deadAfter)
		typ, data, err := s.conn.Read(rctx)
		timedOut := errors.Is(rctx.Err(), context.DeadlineExceeded)
		cancel()
		if timedOut {
			return fmt.Errorf("coordinator silent for %s", s.a.tun.deadAfter)
		}
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			s.log.Warn("ignoring a binary message: frames are JSON text")
			continue
		}
		f, err := wire.Decode(data)
		if err != nil {
			s.log.Warn("ignoring a malformed frame", "err", err)
			continue
		}
		switch f.Type {
		case wire.TypePing:
		case wire.TypeAction:
			s.action(f.Action)
		case wire.TypeChunk:
			s.chunk(f.Chunk)
		default:
			s.log.Warn("ignoring an unexpected frame", "type", f.Type)
		}
	}
}

// pinger keeps the coordinator from declaring us dead while idle.
func (s *session) pinger() {
	t := time.NewTicker(s.a.tun.pingInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			if err := s.send(wire.Frame{Type: wire.TypePing}); err != nil {
				return // the reader sees the broken connection too
			}
		}
	}
}

// send writes one frame. Writes are serialised so that frames never
// interleave and an action's output precedes its result.
func (s *session) send(f wire.Frame) error {
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	wctx, cancel := context.WithTimeout(s.ctx, s.a.tun.deadAfter)
	defer cancel()
	return s.conn.Write(wctx, websocket.MessageText, data)
}

// backoff is the reconnect delay: doubling from min to max, each delay
// jittered ±50% so that agents cut off together do not return together.
type backoff struct{ min, max, cur time.Duration }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return time.Duration(float64(b.cur) * (0.5 + rand.Float64()))
}

func (b *backoff) reset() { b.cur = 0 }
