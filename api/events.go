package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/sse"
)

// The event stream (text/event-stream): one SSE event per deploy.Event,
//
//	id: <seq>
//	event: <kind>
//	data: <the event as JSON>
//
// then, once the deployment is terminal and its events are sent,
// "event: end" (data: {"id":..., "state":...}). A failure after the stream
// began is "event: error" with an error body as data. A comment line every
// heartbeat keeps proxies and the client's idle check content.
const (
	sseEnd   = "end"
	sseError = "error"
)

// A stream's liveness: the server writes a comment line every
// streamHeartbeat, so a client that reads nothing for streamIdle knows the
// stream is dead (its node killed, hung or cut off, which a TCP connection
// may not notice for minutes) and reconnects elsewhere. Short, so that a
// watcher follows a failover within about a second; a false alarm on a
// stalled machine costs one reconnect that resumes where it stopped.
const (
	streamHeartbeat = 300 * time.Millisecond
	streamIdle      = 4 * streamHeartbeat
	// maxWatchPause caps Watch's wait before reconnecting a stream that
	// keeps ending without news.
	maxWatchPause = time.Second
)

// endData is the payload of the end event.
type endData struct {
	ID    string                 `json:"id"`
	State deploy.DeploymentState `json:"state"`
}

func (s *server) events(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" {
		writeError(w, &Error{http.StatusNotFound, codeNotFound, "no deployment id"})
		return
	}
	after, err := eventCursor(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if _, err := s.cfg.Deployments.Get(id); err != nil {
		writeError(w, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if _, err := io.WriteString(w, "retry: 1000\n\n"); err != nil || rc.Flush() != nil {
		return
	}

	tick := time.NewTicker(s.cfg.heartbeat)
	defer tick.Stop()
	// A stream served as the leader's read ends when this node stops
	// leading (deposed, or cut off from its peers, its copy stops moving):
	// the client reconnects and reaches the new leader.
	leaderRead := !stale(r)
	last := after
	// send writes the events after last; it reports false when the client
	// is gone.
	send := func() bool {
		evs, _ := s.cfg.Deployments.Events(id, last)
		if sse.Send(w, evs, &last) != nil {
			return false
		}
		return len(evs) == 0 || rc.Flush() == nil
	}
	for {
		// Take the channel before reading, so that a command applied in
		// between wakes the wait below.
		changed := s.cfg.Deployments.Changed()
		var moved <-chan struct{}
		if leaderRead {
			moved = s.cfg.Node.LeaderChanged()
			if !s.cfg.Node.IsLeader() {
				return
			}
		}
		if !send() {
			return
		}
		d, err := s.cfg.Deployments.Get(id)
		if err != nil {
			e := toError(err)
			b, _ := json.Marshal(errorBody{Error: e.Message, Code: e.Code})
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", sseError, b)
			_ = rc.Flush()
			return
		}
		if d.State.Terminal() {
			// The terminal state's own events were applied before Get saw
			// it: one more read sends them all.
			if !send() {
				return
			}
			b, _ := json.Marshal(endData{ID: d.ID, State: d.State})
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", sseEnd, b)
			_ = rc.Flush()
			return
		}
		select {
		case <-changed:
		case <-tick.C:
			if _, err := io.WriteString(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-moved:
		case <-r.Context().Done():
			return
		}
	}
}

// eventCursor is the seq to resume after: Last-Event-ID (set by a
// reconnecting client) wins over ?after=.
func eventCursor(r *http.Request) (uint64, error) {
	v, from := r.Header.Get("Last-Event-ID"), "Last-Event-ID"
	if v == "" {
		v, from = r.URL.Query().Get("after"), "after"
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q is not an event number", ErrBadRequest, from, v)
	}
	return n, nil
}

// --- client side ----------------------------------------------------------

// errStreamEnded is returned by readStream at "event: end".
var errStreamEnded = errors.New("stream ended")

// callbackError carries the watcher's own error out of readStream.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// readStream hands the stream's events after *last to fn, in order,
// advancing *last. It returns errStreamEnded at "event: end", an *Error
// at "event: error", a callbackError when fn fails, and otherwise the
// reason the stream stopped (io.EOF when it was closed).
func readStream(r io.Reader, last *uint64, fn func(deploy.Event) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var event string
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		if line != "" {
			if strings.HasPrefix(line, ":") {
				continue // comment (heartbeat)
			}
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				event = value
			case "data":
				data = append(data, value)
			}
			continue
		}
		// A blank line dispatches the event.
		kind, payload := event, strings.Join(data, "\n")
		event, data = "", nil
		switch {
		case kind == sseEnd:
			return errStreamEnded
		case kind == sseError:
			var body errorBody
			_ = json.Unmarshal([]byte(payload), &body)
			return &Error{Status: statusOf(body.Code), Code: body.Code, Message: body.Error}
		case payload == "":
			continue // retry: or an empty event
		}
		var ev deploy.Event
		if err := json.Unmarshal([]byte(payload), &ev); err != nil {
			return fmt.Errorf("decoding event: %w", err)
		}
		if ev.Seq <= *last {
			continue
		}
		if err := fn(ev); err != nil {
			return callbackError{err}
		}
		*last = ev.Seq
	}
}
