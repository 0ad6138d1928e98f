package lab

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/internal/ctxtime"
	"github.com/drover-dev/drover/lb/haproxy"
)

// HAProxyInstance is one HAProxy process of the lab. A lab runs one by
// default; Options.HAProxies: 2 runs a pair, as production does, each
// with its own frontend and runtime API in front of the same web hosts.
type HAProxyInstance struct {
	Name        string `json:"name"`         // "haproxy", "haproxy2", ...
	Socket      string `json:"socket"`       // runtime API, stock settings (stats maxconn 10)
	FrontendURL string `json:"frontend_url"` // where clients send requests
}

// haproxyInstances names the instances of a lab: the first keeps the
// historical names (haproxy.sock, the topology's frontend port), the
// others take the next ports in the same balancer namespace.
func (l *Lab) haproxyInstances(n int) []HAProxyInstance {
	var out []HAProxyInstance
	for i := range n {
		name := "haproxy"
		if i > 0 {
			name = fmt.Sprintf("haproxy%d", i+1)
		}
		out = append(out, HAProxyInstance{
			Name:        name,
			Socket:      filepath.Join(l.Dir, name+".sock"),
			FrontendURL: frontendURLPort(l.topo, l.topo.Balancer.FrontendPort+i),
		})
	}
	return out
}

// haproxyConfig is instance i's configuration. The runtime API keeps
// HAProxy's stock limits (no `stats maxconn`, no `stats timeout`): what a
// production HAProxy has, and what drover must cope with.
func (l *Lab) haproxyConfig(i int) string {
	inst := l.HAProxies[i]
	var b strings.Builder
	fmt.Fprintf(&b, `# drover lab %s: HAProxy %s in namespace %s
global
    stats socket %s mode 600 level admin
    maxconn 4096

defaults
    mode http
    # No retries and no redispatch: a mistake in a rollout must show up as a
    # failed client request, not as latency.
    retries 0
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout check 1s
    timeout http-keep-alive 10s
    option httpchk GET /health

frontend fe
    bind %s:%d
    default_backend %s

backend %s
    balance roundrobin
`, l.ID, inst.Name, l.LBNS, inst.Socket, l.topo.BalancerNode().Address, l.topo.Balancer.FrontendPort+i, l.Backend, l.Backend)
	for _, h := range l.Hosts {
		_, server, _ := strings.Cut(h.LBServer, "/")
		fmt.Fprintf(&b, "    server %s %s:%d check inter 100ms fall 2 rise 1\n", server, h.Address, l.AppPort)
	}
	return b.String()
}

// startHAProxies starts every instance, one after the other.
func (l *Lab) startHAProxies(ctx context.Context) error {
	for i := range l.HAProxies {
		if err := l.startHAProxy(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// startHAProxy starts instance i (`haproxy -f cfg -db`) in the balancer
// namespace, waits for its runtime socket and for every server to be DOWN
// (no app runs yet).
func (l *Lab) startHAProxy(ctx context.Context, i int) error {
	inst := l.HAProxies[i]
	cfg := filepath.Join(l.Dir, inst.Name+".cfg")
	if err := os.WriteFile(cfg, []byte(l.haproxyConfig(i)), 0o644); err != nil {
		return err
	}
	logPath := filepath.Join(l.Dir, inst.Name+".log")
	cmd := exec.Command("ip", "netns", "exec", l.LBNS, "haproxy", "-f", cfg, "-db")
	d, err := startDaemon(inst.Name, logPath, cmd)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.daemons[inst.Name] = d
	l.mu.Unlock()
	// -db (foreground) writes no pidfile; ip netns exec execs haproxy, so the
	// process we started is haproxy itself.
	if err := os.WriteFile(filepath.Join(l.Dir, inst.Name+".pid"), []byte(strconv.Itoa(d.pid())+"\n"), 0o644); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		states, err := l.instanceStates(ctx, inst.Socket)
		if err == nil && len(states) == len(l.Hosts) {
			up := 0
			for _, s := range states {
				if inRotation(s) {
					up++
				}
			}
			if up == 0 {
				return nil
			}
		}
		if d.exited() {
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("%s %w: %s", inst.Name, errDaemonExited, strings.TrimSpace(string(b)))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within 10s (servers %v, last error %v)", inst.Name, states, err)
		}
		if err := ctxtime.Sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
}

// StopHAProxy kills HAProxy instance name ("haproxy2") and waits until it
// is gone: an instance that is down, as when its machine fails.
func (l *Lab) StopHAProxy(name string) error {
	l.mu.Lock()
	d := l.daemons[name]
	l.mu.Unlock()
	if d == nil {
		return fmt.Errorf("lab: no HAProxy instance %q", name)
	}
	_ = d.cmd.Process.Kill()
	<-d.done
	return nil
}

// HAProxy sends one command (or several separated by ";") to the runtime API
// and returns the answer.
func (l *Lab) HAProxy(ctx context.Context, command string) (string, error) {
	return l.haproxyAt(ctx, l.HAProxySocket, command)
}

// haproxyAt is HAProxy on the instance whose runtime socket is socket.
func (l *Lab) haproxyAt(ctx context.Context, socket, command string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	if _, err := io.WriteString(conn, command+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// FrontendRequests is how many HTTP requests the first HAProxy instance's
// frontend has received (req_tot): a test waits on it for a stretch of
// traffic instead of for a stretch of time.
func (l *Lab) FrontendRequests(ctx context.Context) (int64, error) {
	out, err := l.HAProxy(ctx, "show stat -1 1 -1")
	if err != nil {
		return 0, err
	}
	header, body, _ := strings.Cut(out, "\n")
	col := slices.Index(strings.Split(strings.TrimPrefix(header, "# "), ","), "req_tot")
	recs, err := csv.NewReader(strings.NewReader(strings.TrimSpace(body))).ReadAll()
	if col < 0 || err != nil {
		return 0, fmt.Errorf("lab: show stat: no req_tot column (%v): %.200q", err, out)
	}
	for _, r := range recs {
		if len(r) > col && len(r) > 1 && r[1] == "FRONTEND" {
			return strconv.ParseInt(r[col], 10, 64)
		}
	}
	return 0, fmt.Errorf("lab: show stat: no frontend row: %.200q", out)
}

// ServerStates returns the status column of `show stat` (UP, DOWN, DRAIN,
// MAINT, "UP 1/2", ...) of every server of the lab's backend on the first
// HAProxy instance, read with the same runtime-API driver drover uses.
func (l *Lab) ServerStates(ctx context.Context) (map[string]string, error) {
	return l.instanceStates(ctx, l.HAProxySocket)
}

// InstanceStates is ServerStates of every HAProxy instance, by instance name.
func (l *Lab) InstanceStates(ctx context.Context) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, inst := range l.HAProxies {
		states, err := l.instanceStates(ctx, inst.Socket)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", inst.Name, err)
		}
		out[inst.Name] = states
	}
	return out, nil
}

func (l *Lab) instanceStates(ctx context.Context, socket string) (map[string]string, error) {
	d, err := haproxy.New(haproxy.Config{Socket: socket, MaxConns: 1, RetryTimeout: time.Second})
	if err != nil {
		return nil, err
	}
	servers, err := d.Servers(ctx)
	if err != nil {
		return nil, err
	}
	states := map[string]string{}
	for _, s := range servers {
		if s.Backend == l.Backend {
			states[s.Name] = s.Status
		}
	}
	return states, nil
}

// inRotation: HAProxy sends new requests to the server. "UP 1/2" (going
// down) still gets traffic; DOWN, "DOWN 1/2" (going up), DRAIN, MAINT and
// NOLB do not.
func inRotation(status string) bool { return strings.HasPrefix(status, "UP") }

// OutOfRotation reads the runtime API of every HAProxy instance and returns
// how many of the backend's servers take no new requests from at least one
// of them (not UP, or admin state drain/maint) and their names, sorted.
func (l *Lab) OutOfRotation(ctx context.Context) (int, []string, error) {
	out, _, err := l.outOfRotation(ctx)
	return len(out), out, err
}

// outOfRotation is OutOfRotation with the status that put each server out
// (the first instance's that did): MAINT or DRAIN is an operator's or a
// deployment's doing, DOWN the balancer's own health check.
func (l *Lab) outOfRotation(ctx context.Context) ([]string, map[string]string, error) {
	all, err := l.InstanceStates(ctx)
	if err != nil {
		return nil, nil, err
	}
	why := map[string]string{}
	for _, states := range all {
		for s, st := range states {
			if _, seen := why[s]; !seen && !inRotation(st) {
				why[s] = st
			}
		}
	}
	out := make([]string, 0, len(why))
	for s := range why {
		out = append(out, s)
	}
	sort.Strings(out)
	return out, why, nil
}

// WaitInRotation waits until the named HAProxy servers (all of the lab's when
// none are named) are UP on every instance.
func (l *Lab) WaitInRotation(ctx context.Context, servers ...string) error {
	if len(servers) == 0 {
		for _, h := range l.Hosts {
			_, s, _ := strings.Cut(h.LBServer, "/")
			servers = append(servers, s)
		}
	}
	for {
		all, err := l.InstanceStates(ctx)
		if err == nil {
			ok := true
			for _, states := range all {
				for _, s := range servers {
					ok = ok && inRotation(states[s])
				}
			}
			if ok {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %v to be UP (now %v): %w", servers, all, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Sampler polls OutOfRotation in the background; see StartSampler.
type Sampler struct {
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	max     int
	maxAt   time.Time
	maxSet  []string
	samples int
	errors  int
	changes []Sample
}

// Sample is one observation of the servers out of rotation.
type Sample struct {
	At      time.Time
	Out     int
	Servers []string
}

// StartSampler starts polling OutOfRotation every interval (default 20ms)
// until Stop.
func (l *Lab) StartSampler(interval time.Duration) *Sampler {
	if interval <= 0 {
		interval = 20 * time.Millisecond
	}
	s := &Sampler{stop: make(chan struct{}), done: make(chan struct{}), max: -1}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		last := -1
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			names, why, err := l.outOfRotation(ctx)
			n := len(names)
			cancel()
			now := time.Now()
			s.mu.Lock()
			if err != nil {
				s.errors++
			} else {
				s.samples++
				if n > s.max {
					s.max, s.maxAt, s.maxSet = n, now, make([]string, n)
					for i, name := range names {
						s.maxSet[i] = name + " (" + why[name] + ")"
					}
				}
				if n != last {
					s.changes = append(s.changes, Sample{At: now, Out: n, Servers: names})
					last = n
				}
			}
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends sampling and returns the most servers seen out of rotation at
// once (-1 if no sample succeeded) and the number of successful samples.
func (s *Sampler) Stop() (maxOut, samples int) {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max, s.samples
}

// Max returns the maximum so far, when it was first seen and which servers
// ("web3 (MAINT)": each with the status that put it out).
func (s *Sampler) Max() (int, time.Time, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max, s.maxAt, s.maxSet
}

// Changes returns every sample whose count differed from the previous one.
func (s *Sampler) Changes() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sample(nil), s.changes...)
}

// Errors returns how many polls failed to read the runtime API.
func (s *Sampler) Errors() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errors
}
