package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
)

// PlanParams are the parts of a lab plan a caller chooses; WritePlan fills
// in the rest from the lab (hosts, ssh, HAProxy runtime API, release path,
// health).
type PlanParams struct {
	Name           string        // default "web"
	Version        string        // required
	Artifact       string        // required; made absolute
	Batch          string        // "2", "25%"; default "1"
	MaxFailures    string        // "0", "10%"; default "0"
	MinHealthyTime time.Duration // default 0
	// MinInService is strategy.min_in_service ("2", "50%"); default unset.
	MinInService string
	// AllowFullOutage sets strategy.allow_full_outage (a first install in
	// one batch).
	AllowFullOutage bool
	// Restart replaces the release's restart command; HealthPort the port
	// of the health URL (default the app's). Plan mistakes, for tests.
	Restart    string
	HealthPort int
	Hosts      []string // a subset of the lab's web hosts, by name; default all
	// HAProxyTCP: load_balancer.haproxy.address is the audited TCP relay
	// (Lab.HAProxyAddress, reachable from coordinators) instead of socket.
	HAProxyTCP bool
	// AgentHosts are reached through a drover agent (transport: agent)
	// instead of SSH.
	AgentHosts []string
	// Canary is strategy.canary ("hosts", "weight", "duration"); nil: none.
	Canary map[string]string
	// Extra is raw YAML appended to the plan: top-level keys the plan does not
	// already hold (hooks:, ...).
	Extra string
}

// Ordered like DESIGN.md's plan format.
type planDoc struct {
	Name         string      `yaml:"name"`
	Version      string      `yaml:"version"`
	Hosts        []planHost  `yaml:"hosts"`
	SSH          planSSH     `yaml:"ssh"`
	LoadBalancer planLB      `yaml:"load_balancer"`
	Strategy     planStrat   `yaml:"strategy"`
	Release      planRelease `yaml:"release"`
	Health       planHealth  `yaml:"health"`
	Rollback     planRB      `yaml:"rollback"`
}

type planHost struct {
	Name      string `yaml:"name"`
	Address   string `yaml:"address"`
	LBServer  string `yaml:"lb_server"`
	Transport string `yaml:"transport,omitempty"`
}

type planSSH struct {
	User            string `yaml:"user"`
	IdentityFile    string `yaml:"identity_file"`
	KnownHosts      string `yaml:"known_hosts"`
	HostKeyChecking string `yaml:"host_key_checking"`
}

type planLB struct {
	HAProxy      any    `yaml:"haproxy"` // planHAProxy, or []planHAProxy for several instances
	DrainTimeout string `yaml:"drain_timeout"`
}

type planHAProxy struct {
	Socket  string `yaml:"socket,omitempty"`
	Address string `yaml:"address,omitempty"`
}

type planStrat struct {
	Batch           any               `yaml:"batch"`
	MaxFailures     any               `yaml:"max_failures"`
	MinInService    any               `yaml:"min_in_service,omitempty"`
	AllowFullOutage bool              `yaml:"allow_full_outage,omitempty"`
	Canary          map[string]string `yaml:"canary,omitempty"`
}

type planRelease struct {
	Artifact string `yaml:"artifact"`
	Path     string `yaml:"path"`
	Restart  string `yaml:"restart"`
	Keep     int    `yaml:"keep"`
}

type planHealth struct {
	HTTP             planHTTP `yaml:"http"`
	Interval         string   `yaml:"interval"`
	Timeout          string   `yaml:"timeout"`
	HealthyThreshold int      `yaml:"healthy_threshold"`
	Deadline         string   `yaml:"deadline"`
	MinHealthyTime   string   `yaml:"min_healthy_time"`
}

type planHTTP struct {
	URL          string `yaml:"url"`
	Status       int    `yaml:"status"`
	BodyContains string `yaml:"body_contains"`
}

type planRB struct {
	Automatic bool `yaml:"automatic"`
}

// sizeValue renders "2" as the number 2 and "25%" as the string "25%".
func sizeValue(field, s, def string) (any, error) {
	if s == "" {
		s = def
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return n, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		if n, err := strconv.Atoi(p); err == nil && n >= 0 && n <= 100 {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%s %q: want a count or a percentage", field, s)
}

// Plan renders a drover plan (DESIGN.md's format) for this lab.
func (l *Lab) Plan(p PlanParams) ([]byte, error) {
	if p.Version == "" || p.Artifact == "" {
		return nil, errors.New("lab: plan needs a Version and an Artifact")
	}
	if p.Name == "" {
		p.Name = "web"
	}
	artifact, err := filepath.Abs(p.Artifact)
	if err != nil {
		return nil, err
	}
	batch, err := sizeValue("batch", p.Batch, "1")
	if err != nil {
		return nil, err
	}
	maxFail, err := sizeValue("max_failures", p.MaxFailures, "0")
	if err != nil {
		return nil, err
	}
	var minIn any
	if p.MinInService != "" {
		if minIn, err = sizeValue("min_in_service", p.MinInService, ""); err != nil {
			return nil, err
		}
	}
	restart := l.ReleasePath + "/current/bin/restart"
	if p.Restart != "" {
		restart = p.Restart
	}
	healthPort := l.AppPort
	if p.HealthPort != 0 {
		healthPort = p.HealthPort
	}
	hosts := l.Hosts
	if len(p.Hosts) > 0 {
		hosts = nil
		for _, name := range p.Hosts {
			h, err := l.Host(name)
			if err != nil {
				return nil, err
			}
			hosts = append(hosts, h)
		}
	}
	doc := planDoc{
		Name:    p.Name,
		Version: p.Version,
		SSH: planSSH{
			User:            l.User,
			IdentityFile:    l.IdentityFile,
			KnownHosts:      l.KnownHosts,
			HostKeyChecking: "strict",
		},
		LoadBalancer: planLB{HAProxy: planHAProxy{Socket: l.HAProxySocket}, DrainTimeout: "10s"},
		Strategy:     planStrat{Batch: batch, MaxFailures: maxFail, MinInService: minIn, AllowFullOutage: p.AllowFullOutage, Canary: p.Canary},
		Release: planRelease{
			Artifact: artifact,
			Path:     l.ReleasePath,
			Restart:  restart,
			Keep:     3,
		},
		Health: planHealth{
			HTTP: planHTTP{
				URL:          fmt.Sprintf("http://{{.Host}}:%d/health", healthPort),
				Status:       200,
				BodyContains: "ok",
			},
			Interval:         "50ms",
			Timeout:          "1s",
			HealthyThreshold: 2,
			Deadline:         "5s",
			MinHealthyTime:   p.MinHealthyTime.String(),
		},
		Rollback: planRB{Automatic: true},
	}
	if p.HAProxyTCP {
		if l.HAProxyAddress == "" {
			return nil, errors.New("lab: HAProxyTCP, but the lab has no HAProxyAddress")
		}
		doc.LoadBalancer.HAProxy = planHAProxy{Address: l.HAProxyAddress}
	}
	if len(l.HAProxies) > 1 {
		// Every instance, as production lists an HAProxy pair; the first
		// through the relay when asked.
		list := []planHAProxy{doc.LoadBalancer.HAProxy.(planHAProxy)}
		for _, inst := range l.HAProxies[1:] {
			list = append(list, planHAProxy{Socket: inst.Socket})
		}
		doc.LoadBalancer.HAProxy = list
	}
	for _, h := range hosts {
		ph := planHost{Name: h.Name, Address: h.Address, LBServer: h.LBServer}
		if slices.Contains(p.AgentHosts, h.Name) {
			ph.Transport = "agent"
		}
		doc.Hosts = append(doc.Hosts, ph)
	}
	b, err := yaml.MarshalWithOptions(doc, yaml.IndentSequence(true))
	if err != nil {
		return nil, err
	}
	header := fmt.Sprintf("# drover plan for lab %s, written by lab.WritePlan\n", l.ID)
	out := append([]byte(header), b...)
	if extra := strings.TrimSpace(p.Extra); extra != "" {
		out = append(out, '\n')
		out = append(out, extra...)
		out = append(out, '\n')
	}
	// The result must stay one valid YAML mapping (Extra may break it).
	var check map[string]any
	if err := yaml.Unmarshal(out, &check); err != nil {
		return nil, fmt.Errorf("lab: plan with Extra is not valid YAML: %w", err)
	}
	return out, nil
}

// WritePlan writes Plan(p) to path.
func (l *Lab) WritePlan(path string, p PlanParams) error {
	b, err := l.Plan(p)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
