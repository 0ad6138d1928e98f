package agent

import (
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Enrollment needs no certificate, so anyone who reaches the port may try
// join tokens: each source address may fail enrollBurst attempts at once,
// then enrollRate a second; beyond that it gets 429 until its bucket
// refills. Successful enrollments cost nothing, so that a fleet behind one
// NAT (one address for hundreds of agents) enrolls at full speed.
const (
	enrollBurst = 20
	enrollRate  = rate.Limit(2)
	// sources idle this long are forgotten (their bucket is full again).
	limiterIdle = 10 * time.Minute
)

// sourceLimiter is a token bucket per source IP.
type sourceLimiter struct {
	rate  rate.Limit
	burst int

	mu    sync.Mutex
	per   map[string]*sourceBucket
	swept time.Time
}

type sourceBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newSourceLimiter(r rate.Limit, burst int) *sourceLimiter {
	return &sourceLimiter{rate: r, burst: burst, per: map[string]*sourceBucket{}}
}

// admits reports whether the source of remoteAddr ("ip:port") has a
// failed attempt left.
func (l *sourceLimiter) admits(remoteAddr string, now time.Time) bool {
	return l.bucket(remoteAddr, now).lim.TokensAt(now) >= 1
}

// failed spends one of the source's attempts.
func (l *sourceLimiter) failed(remoteAddr string, now time.Time) {
	l.bucket(remoteAddr, now).lim.AllowN(now, 1)
}

func (l *sourceLimiter) bucket(remoteAddr string, now time.Time) *sourceBucket {
	ip, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		ip = remoteAddr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > limiterIdle {
		for k, b := range l.per {
			if now.Sub(b.seen) > limiterIdle {
				delete(l.per, k)
			}
		}
		l.swept = now
	}
	b := l.per[ip]
	if b == nil {
		b = &sourceBucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.per[ip] = b
	}
	b.seen = now
	return b
}
