package hub

import (
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Enrollment needs no certificate, so anyone who reaches the port may try
// join tokens: each source address gets enrollBurst attempts at once, then
// enrollRate a second. Agents behind one NAT share an address; they retry
// a 429 with backoff (agent.Run), so a large fleet enrolls, only slower.
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

// allow spends one attempt of the source of remoteAddr ("ip:port").
func (l *sourceLimiter) allow(remoteAddr string, now time.Time) bool {
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
	return b.lim.AllowN(now, 1)
}
