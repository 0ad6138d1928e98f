package plans

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Canary is strategy.canary: a few hosts get the release first, then a
// small share of the traffic (HAProxy server weights) for a while, judged
// by the analysis gates all along, before the batches start.
type Canary struct {
	// Hosts is how many hosts (the plan's first ones) form the canary.
	Hosts Size `json:"hosts"`
	// Weight is the share of their backend's traffic the canary hosts get
	// together, in percent (0 < Weight < 100).
	Weight float64 `json:"weight"`
	// Duration is how long the canary is watched at that share.
	Duration time.Duration `json:"duration"`
}

// DefaultCanaryDuration is how long a canary is watched when its plan does
// not say.
const DefaultCanaryDuration = 10 * time.Minute

var (
	canaryKeys = []string{"hosts", "weight", "duration"}
	weightRE   = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*$`)
)

// CanaryHosts is how many hosts the canary takes (0 without one).
func (p *Plan) CanaryHosts() int {
	c := p.Strategy.Canary
	if c == nil {
		return 0
	}
	return max(1, min(c.Hosts.Of(len(p.Hosts)), len(p.Hosts)))
}

// canary decodes strategy.canary. It returns where the canary's host count
// is written (the outage check reports there), and false without a canary.
func (l *loader) canary(sm *mapping, p *Plan) (sizeAt, bool) {
	cm, ok := sm.OptMapping("canary", canaryKeys...)
	if !ok || cm == nil {
		return sizeAt{}, false
	}
	c := &Canary{Duration: DefaultCanaryDuration}
	good := true
	at := sizeAt{cm.P, "strategy.canary.hosts"}
	if v, present, ok := cm.Get("hosts"); !present {
		cm.Missing("hosts", `how many hosts get the release first: a count or a percentage like "10%"`)
		good = false
	} else if !ok {
		good = false
	} else if s, ok := l.size(cm.D, v, "strategy.canary.hosts", true); !ok {
		good = false
	} else {
		c.Hosts, at.p, l.canaryPos.hosts = s, v.P, v.P // against the hosts in checkCanary
	}
	if v, present, ok := cm.Get("weight"); !present {
		cm.Missing("weight", `the canary's share of the traffic, e.g. "5%"`)
		good = false
	} else if ok {
		m := weightRE.FindStringSubmatch(v.Text)
		var w float64
		if m != nil && (v.K == kString) {
			w, _ = strconv.ParseFloat(m[1], 64)
		}
		if m == nil || v.K != kString || !(w > 0 && w < 100) {
			l.errorf(v.P, `strategy.canary.weight: must be a share of the traffic above 0%% and below 100%%, like "5%%", got %s`, v)
			good = false
		} else {
			c.Weight = w
		}
	} else {
		good = false
	}
	var durOK bool
	c.Duration, l.canaryPos.duration, durOK = cm.Duration("duration", DefaultCanaryDuration, positive)
	if !cm.Has("duration") {
		l.canaryPos.duration = cm.KeyPos("hosts")
	}
	good = good && durOK
	if len(p.LoadBalancer.HAProxy) == 0 {
		l.errorf(sm.KeyPos("canary"), "strategy.canary: a canary's share of the traffic is set by HAProxy server weights, and the plan sets no load_balancer.haproxy")
		good = false
	}
	if good {
		p.Strategy.Canary = c
	}
	return at, good
}

// canaryAt is where strategy.canary's keys are written, for checkCanary.
type canaryAt struct {
	hosts, duration pos
}

// checkCanary refuses, once the hosts are known (they may be in the
// inventory), a canary that takes every host, and one too short for a
// sample of the gates.
func (l *loader) checkCanary(p *Plan) {
	c := p.Strategy.Canary
	if c == nil {
		return
	}
	if n := len(p.Hosts); n > 0 && c.Hosts.Of(n) >= n {
		l.errorf(l.canaryPos.hosts, "strategy.canary.hosts: the canary must leave hosts on the old release to take the rest of the traffic, but %s takes all %d", c.Hosts, n)
	}
	if p.HasGates() && c.Duration < p.Analysis.Interval {
		l.errorf(l.canaryPos.duration, "strategy.canary.duration (%s) must be at least analysis.interval (%s): the gates watch the canary at least once",
			fmtDuration(c.Duration), fmtDuration(p.Analysis.Interval))
	}
}

// describeCanary prints the canary in plan show's summary.
func (p *Plan) describeCanary(pf func(string, ...any)) {
	c := p.Strategy.Canary
	if c == nil {
		return
	}
	pf("  canary:         %s (strategy.canary), as batch 1, before the other batches\n", c)
}

// describeCanaryStep prints what happens to the canary batch once its
// hosts are back in rotation.
func (p *Plan) describeCanaryStep(pf func(string, ...any), hosts []string) {
	c := p.Strategy.Canary
	get := "gets"
	if len(hosts) > 1 {
		get = "together get"
	}
	pf("  canary: record every server's weight, then set HAProxy weights so that %s %s %s%% of their backend's traffic\n",
		strings.Join(hosts, ", "), get, FormatShare(c.Weight))
	if p.HasGates() {
		pf("  canary: sample gates %s every %s for %s; a failed gate fails the canary hosts\n",
			strings.Join(p.gateNames(), ", "), fmtDuration(p.Analysis.Interval), fmtDuration(c.Duration))
	} else {
		pf("  canary: wait %s at that share (no analysis gates: only the health checks judge it)\n", fmtDuration(c.Duration))
	}
	pf("  canary: set every server back to its recorded weight (also when the deployment fails, is aborted or rolls back)\n")
}

// FormatShare writes a share of the traffic in percent as a plan does,
// without the sign: 10, 2.5.
func FormatShare(percent float64) string { return strconv.FormatFloat(percent, 'f', -1, 64) }

// String renders the canary the way plan show prints it.
func (c Canary) String() string {
	return fmt.Sprintf("%s host(s) at %s%% of the traffic for %s", c.Hosts, FormatShare(c.Weight), fmtDuration(c.Duration))
}
