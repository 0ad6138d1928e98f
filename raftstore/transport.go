package raftstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Transport settings for the TCP transport.
const (
	// transportMaxPool is how many idle connections to each peer are kept.
	transportMaxPool = 3
	// transportTimeout bounds every RPC's I/O (scaled up by raft for
	// snapshot installs), every dial and every TLS handshake.
	transportTimeout = 5 * time.Second
)

// tlsStream is a raft.StreamLayer over mutual TLS. Both directions finish
// the TLS handshake before raft sees the connection, under a deadline, so
// a peer with the wrong certificate (or one that never speaks) is refused
// at once instead of surfacing later as an RPC decoding error. Inbound
// handshakes run in their own goroutines so that one slow peer cannot
// hold up Accept for the others.
type tlsStream struct {
	ln        net.Listener // raw TCP; TLS is layered per connection
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	timeout   time.Duration // handshake deadline
	logger    hclog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	conns  chan net.Conn // handshaken inbound connections
	errs   chan error    // accept errors, passed on to raft (which backs off)
	wg     sync.WaitGroup
	once   sync.Once

	// Handshake failures, counted for tests and diagnostics.
	acceptFailures atomic.Int64
	dialFailures   atomic.Int64
}

// listenTLS binds bind and serves TLS with server; it dials peers with
// client. advertise is the address peers dial ("" = the bound address);
// a port of 0 in advertise takes the bound port.
func listenTLS(bind, advertise string, server, client *tls.Config, timeout time.Duration, logger hclog.Logger) (*tlsStream, error) {
	if server == nil || client == nil {
		return nil, errors.New("raft transport needs both ServerTLS and ClientTLS")
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", bind, err)
	}
	adv, err := advertiseAddr(advertise, ln.Addr())
	if err != nil {
		ln.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &tlsStream{
		ln:        ln,
		advertise: adv,
		server:    server.Clone(),
		client:    client.Clone(),
		timeout:   timeout,
		logger:    logger,
		ctx:       ctx,
		cancel:    cancel,
		conns:     make(chan net.Conn),
		errs:      make(chan error),
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// advertiseAddr resolves the address peers dial: adv, or the bound address
// when adv is empty, with a port of 0 replaced by the bound port. It must
// name a host: 0.0.0.0 and :: cannot be dialled by a peer.
func advertiseAddr(adv string, bound net.Addr) (net.Addr, error) {
	if adv == "" {
		adv = bound.String()
	}
	host, port, err := net.SplitHostPort(adv)
	if err != nil {
		return nil, fmt.Errorf("raft advertise address %q: %w", adv, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return nil, fmt.Errorf("raft advertise address %q: not a dialable address (set Advertise)", adv)
	}
	if port == "0" {
		_, boundPort, err := net.SplitHostPort(bound.String())
		if err != nil {
			return nil, fmt.Errorf("raft bound address %q: %w", bound, err)
		}
		port = boundPort
	}
	return tcpAddr(net.JoinHostPort(host, port)), nil
}

// tcpAddr is an address kept exactly as configured (no DNS lookup): it is
// the node's identity in the raft configuration.
type tcpAddr string

func (tcpAddr) Network() string  { return "tcp" }
func (a tcpAddr) String() string { return string(a) }

func (s *tlsStream) acceptLoop() {
	defer s.wg.Done()
	for {
		raw, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			select {
			case s.errs <- err:
				continue
			case <-s.ctx.Done():
				return
			}
		}
		s.wg.Add(1)
		go s.handshake(raw)
	}
}

func (s *tlsStream) handshake(raw net.Conn) {
	defer s.wg.Done()
	conn := tls.Server(raw, s.server)
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	err := conn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.acceptFailures.Add(1)
		if s.ctx.Err() == nil {
			// The error names the peer and what was wrong with its
			// certificate; it carries no key material.
			s.logger.Warn("refused raft peer: TLS handshake failed", "remote", raw.RemoteAddr().String(), "error", err)
		}
		conn.Close()
		return
	}
	select {
	case s.conns <- conn:
	case <-s.ctx.Done():
		conn.Close()
	}
}

// Accept implements net.Listener: it returns connections whose TLS
// handshake has succeeded.
func (s *tlsStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case err := <-s.errs:
		return nil, fmt.Errorf("accept raft connection: %w", err)
	case <-s.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener. It stops accepting, abandons handshakes in
// progress and waits for its goroutines.
func (s *tlsStream) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		err = s.ln.Close()
		s.wg.Wait()
	})
	return err
}

// Addr implements net.Listener: the advertised address, which raft takes
// as this node's address.
func (s *tlsStream) Addr() net.Addr { return s.advertise }

// Dial implements raft.StreamLayer: a TCP connection to address with the
// TLS handshake done, verifying the peer's certificate for the host part of
// address, all within timeout.
func (s *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	host, _, err := net.SplitHostPort(string(address))
	if err != nil {
		return nil, fmt.Errorf("dial raft peer %q: %w", address, err)
	}
	if timeout <= 0 {
		timeout = s.timeout
	}
	cfg := s.client.Clone()
	cfg.ServerName = host
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		s.dialFailures.Add(1)
		return nil, fmt.Errorf("dial raft peer %s: %w", address, err)
	}
	return conn, nil
}

// newNetworkTransport builds raft's transport on a TLS stream layer.
func newNetworkTransport(stream *tlsStream, logger hclog.Logger) *raft.NetworkTransport {
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: transportMaxPool,
		Timeout: transportTimeout,
		Logger:  logger,
	})
}
