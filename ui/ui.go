// Package ui is the web dashboard every coordinator serves under /ui/ (and
// `drover ui` for the embedded one): the deployments, the live progress of
// a running one, history, hosts and agents. It is read-only.
//
// Browsers cannot easily present the operator's client certificate, so the
// dashboard authenticates with an API token alone: a read (or manage) token
// is posted once to /ui/login, from the login form or from the URL's
// fragment (#token=..., which never reaches a server log), and kept in an
// HttpOnly, SameSite=Strict cookie scoped to /ui/. Only the read-only
// routes below accept that cookie; the API under /v1/ still requires a
// certificate and a bearer token.
//
// The data is this node's copy of the replicated state (a follower may be
// a moment behind the leader), so any coordinator serves it without
// forwarding; the live view follows the same event log as the API's stream.
package ui

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/drover-dev/drover/deploy"
	"github.com/drover-dev/drover/internal/sse"
)

//go:embed static
var static embed.FS

// Cookie holds the dashboard's token.
const Cookie = "drover_ui"

// Prefix is where the dashboard is served.
const Prefix = "/ui/"

// heartbeat is the pause between SSE comment lines on an idle stream.
const heartbeat = 5 * time.Second

// Source is the replicated state the dashboard shows (a raftstore.Store).
type Source interface {
	Deployments() []deploy.Deployment
	Deployment(id string) (deploy.Deployment, error)
	Events(id string, after uint64) ([]deploy.Event, uint64)
	Changed() <-chan struct{}
}

// Config wires a dashboard.
type Config struct {
	Source Source
	// Authenticate reports whether token may read: a read or manage token.
	Authenticate func(token string) bool
	// Lists are further read-only JSON documents, by name, served at
	// /ui/api/NAME: "node" (this node), "members", "agents".
	Lists map[string]func(ctx context.Context) (any, error)
	Log   *slog.Logger
}

type handler struct {
	cfg   Config
	files http.Handler
	mux   *http.ServeMux
}

// New returns the dashboard's handler, to serve at Prefix (and, for "/",
// a redirect to it: Redirect).
func New(cfg Config) http.Handler {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	h := &handler{cfg: cfg, files: http.StripPrefix(Prefix, http.FileServerFS(sub))}
	m := http.NewServeMux()
	m.HandleFunc("POST /ui/login", h.login)
	m.HandleFunc("POST /ui/logout", h.logout)
	m.HandleFunc("GET /ui/api/deployments", h.authed(h.deployments))
	m.HandleFunc("GET /ui/api/deployments/{id}", h.authed(h.deployment))
	m.HandleFunc("GET /ui/api/deployments/{id}/events", h.authed(h.events))
	m.HandleFunc("GET /ui/api/{list}", h.authed(h.list))
	m.HandleFunc("GET /ui/", h.static)
	h.mux = m
	return h
}

// Redirect sends GET / to the dashboard.
func Redirect() http.Handler {
	return http.RedirectHandler(Prefix, http.StatusFound)
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// Everything the pages load comes from here; no inline script, no
	// framing (clickjacking), no sniffing, no referrer carrying a path.
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	h.mux.ServeHTTP(w, r)
}

func (h *handler) static(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	h.files.ServeHTTP(w, r)
}

// token is the cookie's token, "" without one.
func token(r *http.Request) string {
	c, err := r.Cookie(Cookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// authed serves fn to a caller whose cookie holds a read token.
func (h *handler) authed(fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if t := token(r); t == "" || !h.cfg.Authenticate(t) {
			writeError(w, http.StatusUnauthorized, "unauthorized", "sign in with a read token")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		fn(w, r)
	}
}

// login checks a token and keeps it in the cookie. It takes a form
// (token=...) or JSON ({"token": "..."}).
func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	var tok string
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body struct {
			Token string `json:"token"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "want {\"token\": \"...\"}")
			return
		}
		tok = body.Token
	} else {
		tok = r.PostFormValue("token")
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || !h.cfg.Authenticate(tok) {
		h.cfg.Log.Info("dashboard sign-in refused", "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, "unauthorized", "this is not a valid read or manage token")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: Cookie, Value: tok, Path: Prefix, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: Cookie, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) deployments(w http.ResponseWriter, r *http.Request) {
	ds := h.cfg.Source.Deployments()
	out := make([]deploy.Deployment, 0, len(ds))
	for _, d := range ds {
		d.Plan = nil // the list needs no plans; one deployment's page has it
		out = append(out, d)
	}
	writeJSON(w, out)
}

func (h *handler) deployment(w http.ResponseWriter, r *http.Request) {
	d, err := h.cfg.Source.Deployment(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found", err.Error())
		return
	}
	writeJSON(w, d)
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	fn, ok := h.cfg.Lists[r.PathValue("list")]
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no such list: "+r.PathValue("list"))
		return
	}
	v, err := fn(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	writeJSON(w, v)
}

// events streams a deployment's events (text/event-stream, as the API's
// stream: id is the event's Seq, so EventSource resumes with
// Last-Event-ID), then "event: end" once it is over.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := h.cfg.Source.Deployment(id); err != nil {
		writeError(w, http.StatusNotFound, "not_found", err.Error())
		return
	}
	var last uint64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		last, _ = strconv.ParseUint(v, 10, 64)
	}
	rc := http.NewResponseController(w)
	// A stream outlives the server's request deadlines.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, "retry: 1000\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		changed := h.cfg.Source.Changed()
		evs, _ := h.cfg.Source.Events(id, last)
		if sse.Send(w, evs, &last) != nil || (len(evs) > 0 && rc.Flush() != nil) {
			return
		}
		if d, err := h.cfg.Source.Deployment(id); err != nil || d.State.Terminal() {
			// Events applied with the terminal state were read above
			// (Get saw the state after they were applied).
			if evs, _ := h.cfg.Source.Events(id, last); len(evs) == 0 {
				fmt.Fprintf(w, "event: end\ndata: {}\n\n")
				_ = rc.Flush()
				return
			}
			continue
		}
		select {
		case <-changed:
		case <-tick.C:
			if _, err := io.WriteString(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg, "code": code})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
