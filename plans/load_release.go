package plans

import (
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ---- release ----

func (l *loader) release(top *mapping, p *Plan) {
	p.Release = Release{Keep: DefaultKeep}
	v, present, ok := top.Get("release")
	if !present {
		top.Missing("release", "artifact, path and restart")
		return
	}
	if !ok {
		return
	}
	rm, ok := top.D.Mapping(v, "release", releaseKeys...)
	if !ok {
		return
	}
	if s, sp, ok := rm.NonEmpty("artifact", true, "the release tarball, relative to the plan file"); ok {
		abs, msg := l.localPath(s)
		if fromSet(sp) && msg == "" && !filepath.IsAbs(s) && !strings.HasPrefix(s, "~") {
			// Typed on the command line: relative to where drover runs.
			abs, _ = filepath.Abs(s)
		}
		if msg != "" {
			l.errorf(sp, "release.artifact: %s", msg)
		} else {
			p.Release.Artifact = abs
			l.at("release.artifact", sp)
			l.refs = append(l.refs, fileRef{key: "release.artifact", at: sp, kind: artifactFile, path: p.Release.Artifact})
		}
	}
	if s, sp, ok := rm.NonEmpty("path", true, "where releases live on each host, like /srv/app"); ok {
		switch {
		case strings.ContainsAny(s, "\x00\n\r\t"):
			l.errorf(sp, "release.path: must not contain control characters, got %s", quote(s))
		case !path.IsAbs(s):
			l.errorf(sp, "release.path: must be an absolute path like /srv/app, got %s", quote(s))
		case hasDotDot(s):
			l.errorf(sp, "release.path: must not contain .. elements, got %s", quote(s))
		case path.Clean(s) == "/":
			l.errorf(sp, "release.path: must not be the root directory")
		default:
			p.Release.Path = path.Clean(s)
			l.at("release.path", sp)
		}
	}
	if s, _, ok := rm.NonEmpty("restart", true, "the command that restarts the app after `current` moves"); ok {
		p.Release.Restart = s
	}
	p.Release.Keep, _, _ = rm.Integer("keep", DefaultKeep, 1, maxInt)
	p.Release.StripComponents, _, _ = rm.Integer("strip_components", 0, 0, 64)
}

func hasDotDot(s string) bool {
	for _, e := range strings.Split(s, "/") {
		if e == ".." {
			return true
		}
	}
	return false
}

// ---- health ----

func (l *loader) health(top *mapping, p *Plan) {
	p.Health = Health{
		Interval:         DefaultInterval,
		Timeout:          DefaultTimeout,
		HealthyThreshold: DefaultHealthyThreshold,
		Deadline:         DefaultDeadline,
	}
	v, present, ok := top.Get("health")
	if !present {
		top.Missing("health", "one check: http, tcp or command")
		return
	}
	if !ok {
		return
	}
	hm, ok := top.D.Mapping(v, "health", healthKeys...)
	if !ok {
		return
	}
	var checks []string
	for _, c := range []string{"http", "tcp", "command"} {
		if hm.Has(c) {
			checks = append(checks, c)
		}
	}
	// The first one written wins; the others are the mistake.
	sort.SliceStable(checks, func(i, j int) bool {
		a, b := hm.KeyPos(checks[i]), hm.KeyPos(checks[j])
		return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
	})
	if len(checks) == 0 {
		l.errorf(hm.P, "health: needs exactly one check: http, tcp or command")
	}
	for _, c := range checks[min(1, len(checks)):] {
		l.errorf(hm.KeyPos(c), "health.%s: only one check may be set; %s is already set", c, checks[0])
	}
	if len(checks) > 0 {
		switch checks[0] {
		case "http":
			l.httpCheck(hm, p)
		case "tcp":
			if tm, ok := hm.OptMapping("tcp", tcpKeys...); ok {
				if tm == nil {
					l.errorf(hm.KeyPos("tcp"), "health.tcp: must be a mapping like {port: 8080}, got null")
				} else if !tm.Has("port") {
					tm.Missing("port", "the port to connect to on each host")
				} else if port, pp, ok := tm.Integer("port", 0, 1, 65535); ok {
					p.Health.TCP = &TCPCheck{Port: port}
					l.at("health.tcp.port", pp)
				}
			}
		case "command":
			if s, cp, ok := hm.NonEmpty("command", false, ""); ok {
				p.Health.Command = s
				l.at("health.command", cp)
			}
		}
	}

	h := &p.Health
	var intervalP, timeoutP, deadlineP, thresholdP pos
	var okI, okT, okD, okH bool
	h.Interval, intervalP, okI = hm.Duration("interval", DefaultInterval, positive)
	h.Timeout, timeoutP, okT = hm.Duration("timeout", DefaultTimeout, positive)
	h.Deadline, deadlineP, okD = hm.Duration("deadline", DefaultDeadline, positive)
	h.HealthyThreshold, thresholdP, okH = hm.Integer("healthy_threshold", DefaultHealthyThreshold, 1, maxInt)
	h.MinHealthyTime, _, _ = hm.Duration("min_healthy_time", 0, nonNegative)
	if !okI || !okT || !okD || !okH {
		return
	}
	// Point at whichever of the two settings the operator wrote.
	pick := func(primary string, pp pos, other pos) pos {
		if hm.Has(primary) {
			return pp
		}
		return other
	}
	reported := true
	switch {
	case h.Deadline < h.Interval:
		if hm.Has("deadline") {
			l.errorf(deadlineP, "health.deadline: must be at least health.interval (%s), got %s", fmtDuration(h.Interval), fmtDuration(h.Deadline))
		} else {
			l.errorf(intervalP, "health.interval: must not exceed health.deadline (%s), got %s", fmtDuration(h.Deadline), fmtDuration(h.Interval))
		}
	case time.Duration(h.HealthyThreshold-1) > h.Deadline/h.Interval:
		need := h.Interval * time.Duration(h.HealthyThreshold-1)
		l.errorf(pick("deadline", deadlineP, pick("healthy_threshold", thresholdP, intervalP)),
			"health.deadline: %s cannot fit %d consecutive passes every %s (needs at least %s)",
			fmtDuration(h.Deadline), h.HealthyThreshold, fmtDuration(h.Interval), fmtDuration(need))
	default:
		reported = false
	}
	if !reported && h.Timeout > h.Deadline {
		if hm.Has("timeout") {
			l.errorf(timeoutP, "health.timeout: must not exceed health.deadline (%s), got %s", fmtDuration(h.Deadline), fmtDuration(h.Timeout))
		} else {
			l.errorf(deadlineP, "health.deadline: must be at least health.timeout (%s), got %s", fmtDuration(h.Timeout), fmtDuration(h.Deadline))
		}
	}
}

func (l *loader) httpCheck(hm *mapping, p *Plan) {
	v, _, ok := hm.Get("http")
	if !ok {
		return
	}
	if v.K == kNull {
		l.errorf(hm.KeyPos("http"), "health.http: must be a mapping like {url: \"http://{{.Host}}:8080/health\"}, got null")
		return
	}
	m, ok := hm.D.Mapping(v, "health.http", httpKeys...)
	if !ok {
		return
	}
	c := &HTTPCheck{Status: DefaultHTTPStatus}
	good := true
	if s, sp, ok := m.NonEmpty("url", true, `like "http://{{.Host}}:8080/health"`); ok {
		c.URL = s
		if msg := checkURLTemplate(s); msg != "" {
			l.errorf(sp, "health.http.url: %s", msg)
			good = false
		} else {
			// Rendered for every host by resolve (they may be in the
			// inventory).
			l.at("health.http.url", sp)
		}
	} else {
		good = false
	}
	if st, _, ok := m.Integer("status", DefaultHTTPStatus, 100, 599); ok {
		c.Status = st
	}
	if m.Has("body_contains") {
		if s, _, ok := m.Str("body_contains", false, ""); ok {
			c.BodyContains = s
		}
	}
	if good {
		p.Health.HTTP = c
	}
}
