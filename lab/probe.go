package lab

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ProbeReport is what `drover-lab agent-probe` prints: a stand-in leader's
// findings about the real agents connected to it.
type ProbeReport struct {
	Agent          string      `json:"agent"`
	Agents         int         `json:"agents"`
	HeapBeforeKiB  uint64      `json:"heap_before_kib"`
	HeapAfterKiB   uint64      `json:"heap_after_kib"`
	RSSBeforeKiB   uint64      `json:"rss_before_kib"`
	RSSAfterKiB    uint64      `json:"rss_after_kib"`
	Terms          []ProbeTerm `json:"terms,omitempty"`
	AgentRoundTrip *RoundTrips `json:"agent_round_trip,omitempty"`
	SSHRoundTrip   *RoundTrips `json:"ssh_round_trip,omitempty"`
}

// ProbeTerm is one command sent under a chosen Raft term.
type ProbeTerm struct {
	Term   uint64 `json:"term"`
	Error  string `json:"error,omitempty"`
	Fenced bool   `json:"fenced,omitempty"`
	Output string `json:"output,omitempty"`
}

// RoundTrips are timed runs of one command.
type RoundTrips struct {
	N        int     `json:"n"`
	MedianMS float64 `json:"median_ms"`
	P90MS    float64 `json:"p90_ms"`
}

// RSSKiB is a process's resident set size (VmRSS), 0 when unknown.
func RSSKiB(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
