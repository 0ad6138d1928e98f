package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/oneline"
)

// --- plumbing -------------------------------------------------------------

// decodeJSON reads exactly one JSON value with no unknown fields.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON value")
		}
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return fmt.Errorf("%w: request body: %v", ErrBadRequest, err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, fmt.Errorf("encoding the answer: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Error headers, for answers without a body.
const (
	headerErrorCode = "X-Drover-Error-Code"
	headerError     = "X-Drover-Error"
)

func writeError(w http.ResponseWriter, err error) {
	e := toError(err)
	b, _ := json.Marshal(errorBody{Error: e.Message, Code: e.Code})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// A HEAD answer has no body: the code and the message's first line
	// travel in headers too.
	w.Header().Set(headerErrorCode, e.Code)
	w.Header().Set(headerError, oneline.First(e.Message, 200))
	w.WriteHeader(e.Status)
	_, _ = w.Write(append(b, '\n'))
}

// readError turns a non-2xx answer into an *Error.
func readError(resp *http.Response) *Error {
	e := &Error{Status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body errorBody
	if json.Unmarshal(b, &body) == nil && (body.Error != "" || body.Code != "") {
		e.Code, e.Message = body.Code, body.Error
	} else if c := resp.Header.Get(headerErrorCode); c != "" {
		e.Code, e.Message = c, resp.Header.Get(headerError)
	} else if msg := strings.TrimSpace(string(b)); msg != "" {
		e.Message = fmt.Sprintf("%d %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), msg)
	}
	return e
}

// logRequests writes one line per request: never a header, token or body.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			level := slog.LevelDebug
			switch {
			case sw.status >= 500:
				level = slog.LevelWarn
			case r.Method != http.MethodGet && r.Method != http.MethodHead, sw.status >= 400:
				level = slog.LevelInfo
			}
			attrs := []any{"method", r.Method, "path", r.URL.Path, "status", sw.status,
				"dur", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr}
			if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
				attrs = append(attrs, "peer", r.TLS.PeerCertificates[0].Subject.CommonName)
			}
			if by := r.Header.Get(HeaderForwardedBy); by != "" {
				attrs = append(attrs, "forwarded_by", by)
			}
			s.log.Log(r.Context(), level, "api request", attrs...)
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status; Unwrap keeps http.ResponseController
// (flushes, deadlines) working through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps the underlying writer's sendfile path for artifact downloads.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return io.Copy(w.ResponseWriter, r)
}

func (w *statusWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
