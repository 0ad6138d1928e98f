package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"sync/atomic"
)

// forwarder proxies a request to the leader: method, path, query, body and
// headers (Authorization and Last-Event-ID included) go through unchanged,
// HeaderForwardedBy is added, and the answer streams back as it comes
// (event streams are flushed event by event).
type forwarder struct {
	nodeID string
	rp     *httputil.ReverseProxy
}

type forwardKey struct{}

// forwardState travels in the inbound request's context to the proxy's
// hooks.
type forwardState struct {
	leader string
	wrote  atomic.Bool // the request reached the leader, at least its headers
	gone   atomic.Bool // the target stopped leading while we waited
}

func newForwarder(hc *http.Client, nodeID string, log *slog.Logger) *forwarder {
	tr := hc.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	f := &forwarder{nodeID: nodeID}
	f.rp = &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			st := pr.In.Context().Value(forwardKey{}).(*forwardState)
			pr.Out.URL.Scheme = "https"
			pr.Out.URL.Host = st.leader
			pr.Out.Host = st.leader
			pr.SetXForwarded()
			pr.Out.Header.Set(HeaderForwardedBy, nodeID)
			// The leader authorises the caller, never this node.
			pr.Out.Header.Set(HeaderForwardedCert, encodeCert(pr.In))
			trace := &httptrace.ClientTrace{WroteHeaders: func() { st.wrote.Store(true) }}
			pr.Out = pr.Out.WithContext(httptrace.WithClientTrace(pr.Out.Context(), trace))
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			st := r.Context().Value(forwardKey{}).(*forwardState)
			if r.Context().Err() != nil && !st.gone.Load() {
				return // the caller went away
			}
			var mbe *http.MaxBytesError
			switch {
			case errors.As(err, &mbe):
				writeError(w, err)
			case st.gone.Load() && !st.wrote.Load():
				w.Header().Set("Retry-After", "1")
				writeError(w, &Error{http.StatusServiceUnavailable, codeNotLeader,
					fmt.Sprintf("%s stopped leading before the request reached it", st.leader)})
			case !st.wrote.Load():
				// Nothing reached the leader: the caller may safely try
				// another node.
				log.Warn("leader unreachable", "leader", st.leader, "err", err)
				w.Header().Set("Retry-After", "1")
				writeError(w, &Error{http.StatusServiceUnavailable, codeNoLeader,
					fmt.Sprintf("node %s cannot reach the leader at %s: %v", nodeID, st.leader, err)})
			default:
				// The leader may have acted: say so, do not invite a retry.
				log.Warn("forwarding to the leader failed", "leader", st.leader, "err", err)
				writeError(w, &Error{http.StatusBadGateway, codeBadGateway,
					fmt.Sprintf("node %s lost the leader at %s during the request (it may have been applied): %v",
						nodeID, st.leader, err)})
			}
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return f
}

// serve proxies r to leader. When node learns that leader no longer
// leads, the forwarded request is cancelled: a leader cut off from the
// network would otherwise hold it until TCP gives up, minutes later; the
// caller is told to try again and reaches the new leader.
func (f *forwarder) serve(w http.ResponseWriter, r *http.Request, leader string, node Node) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	st := &forwardState{leader: leader}
	go func() {
		for {
			moved := node.LeaderChanged()
			if node.LeaderHTTP() != leader {
				st.gone.Store(true)
				cancel()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-moved:
			}
		}
	}()
	f.rp.ServeHTTP(w, r.WithContext(context.WithValue(ctx, forwardKey{}, st)))
}
