// Package connlimit caps how many connections one source address may hold
// open at once on a listener, so that a single client (a slow-loris, a
// leaking script) cannot use up a server's file descriptors and memory.
package connlimit

import (
	"net"
	"sync"
)

// Listener accepts at most Max connections per source IP at once; beyond
// that it closes new ones as soon as they are accepted (before any TLS
// handshake), and goes on accepting.
type Listener struct {
	net.Listener
	max int
	// Refused, when set, is told of each connection closed for the cap.
	refused func(remote net.Addr)

	mu  sync.Mutex
	per map[string]int
}

// New wraps l; max <= 0 means no cap (l is returned as is). refused may be
// nil.
func New(l net.Listener, max int, refused func(remote net.Addr)) net.Listener {
	if max <= 0 {
		return l
	}
	return &Listener{Listener: l, max: max, refused: refused, per: map[string]int{}}
}

// Accept returns the next connection whose source is under the cap.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := sourceIP(c.RemoteAddr())
		l.mu.Lock()
		ok := l.per[ip] < l.max
		if ok {
			l.per[ip]++
		}
		l.mu.Unlock()
		if ok {
			return &conn{Conn: c, release: func() { l.release(ip) }}, nil
		}
		if l.refused != nil {
			l.refused(c.RemoteAddr())
		}
		c.Close()
	}
}

// Open returns how many connections from ip are open.
func (l *Listener) Open(ip string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.per[ip]
}

func (l *Listener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.per[ip]--; l.per[ip] <= 0 {
		delete(l.per, ip)
	}
}

func sourceIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// conn gives its slot back once, at the first Close.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
