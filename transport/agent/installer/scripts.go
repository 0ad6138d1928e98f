package installer

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/drover-dev/drover/internal/shell"
)

// UnitPath is where the systemd unit is written on hosts with systemd.
const UnitPath = "/etc/systemd/system/drover-agent.service"

// unitName is the systemd unit's name.
const unitName = "drover-agent.service"

// layout is where everything lives on a host.
type layout struct {
	Dir      string // the install dir
	Bin      string // Dir/bin/drover
	Config   string // Dir/agent.yaml
	CA       string // Dir/ca.crt
	Token    string // Dir/join.token
	State    string // Dir/state
	Cert     string // Dir/state/agent.crt: present once the agent enrolled
	Run      string // Dir/run
	Script   string // Dir/run/supervise.sh
	SupPid   string // Dir/run/supervise.pid
	AgentPid string // Dir/run/agent.pid
	Log      string // Dir/run/agent.log
	Unit     string // UnitPath
}

func newLayout(dir string) layout {
	return layout{
		Dir:      dir,
		Bin:      path.Join(dir, "bin", "drover"),
		Config:   path.Join(dir, "agent.yaml"),
		CA:       path.Join(dir, "ca.crt"),
		Token:    path.Join(dir, "join.token"),
		State:    path.Join(dir, "state"),
		Cert:     path.Join(dir, "state", "agent.crt"),
		Run:      path.Join(dir, "run"),
		Script:   path.Join(dir, "run", "supervise.sh"),
		SupPid:   path.Join(dir, "run", "supervise.pid"),
		AgentPid: path.Join(dir, "run", "agent.pid"),
		Log:      path.Join(dir, "run", "agent.log"),
		Unit:     UnitPath,
	}
}

// safeDir is what an install dir may be made of: it ends up in shell
// scripts (quoted), in a systemd ExecStart line (where blanks, quotes and
// '%' have their own meaning) and in YAML.
var safeDir = regexp.MustCompile(`^(/[A-Za-z0-9._+@-]+)+$`)

// checkDir validates an install dir.
func checkDir(dir string) error {
	switch {
	case !path.IsAbs(dir):
		return fmt.Errorf("install dir %q: must be an absolute path", dir)
	case path.Clean(dir) != dir:
		return fmt.Errorf("install dir %q: must be a clean path (try %q)", dir, path.Clean(dir))
	case !safeDir.MatchString(dir):
		return fmt.Errorf("install dir %q: only letters, digits and / . _ + @ - are allowed", dir)
	}
	for _, part := range strings.Split(dir[1:], "/") {
		if part == "." || part == ".." {
			return fmt.Errorf("install dir %q: must be a clean path", dir)
		}
	}
	return nil
}

// Every script starts with a marker line naming its step (the unit tests'
// fake host dispatches on it), then the prelude.
const markerPrefix = "# drover agent install: "

// Steps, as named in the scripts' marker lines.
const (
	stepProbe           = "probe"
	stepPrepare         = "prepare"
	stepStartSystemd    = "start-systemd"
	stepStartSupervisor = "start-supervisor"
	stepRestartAgent    = "restart-agent"
	stepUninstall       = "uninstall"
)

// prelude defines the paths and helpers every script uses.
//
//	running PID PATTERN   the process is alive (not a zombie) and its command
//	                      line contains PATTERN: a PID file left behind by a
//	                      dead process, whose PID was reused, does not count
//	pidfrom FILE PATTERN  prints the PID in FILE if running
//	stop PID PATTERN      SIGTERM, SIGKILL after 10 s; fails if it survives
func prelude(step string, l layout) string {
	return markerPrefix + step + "\n" +
		"D=" + shell.Quote(l.Dir) + "\n" +
		"U=" + shell.Quote(l.Unit) + "\n" +
		`AGENT="$D/bin/drover agent run"
SUP="$D/run/supervise.sh"
nap() { sleep 0.1 2>/dev/null || sleep 1; }
running() {
	kill -0 "$1" 2>/dev/null || return 1
	tr '\000' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}
pidfrom() {
	_p=$(cat "$1" 2>/dev/null) || return 1
	case $_p in '' | *[!0-9]*) return 1 ;; esac
	running "$_p" "$2" || return 1
	echo "$_p"
}
stop() {
	kill -TERM "$1" 2>/dev/null
	_i=0
	while running "$1" "$2"; do
		_i=$((_i + 1))
		if [ "$_i" -eq 100 ]; then kill -KILL "$1" 2>/dev/null; fi
		if [ "$_i" -ge 150 ]; then
			echo "process $1 ($2) survives SIGKILL" >&2
			return 1
		fi
		nap
	done
	return 0
}
has_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }
`
}

// probeScript reports the host's state, one fact per line (see parseProbe).
// It changes nothing.
func probeScript(l layout) string {
	return prelude(stepProbe, l) + `echo "os $(uname -s)"
echo "arch $(uname -m)"
if has_systemd; then
	echo systemd
	if systemctl is-active --quiet ` + unitName + `; then echo running; fi
	if systemctl is-enabled --quiet ` + unitName + ` 2>/dev/null; then echo enabled; fi
elif _p=$(pidfrom "$D/run/supervise.pid" "$SUP"); then
	echo "running $_p"
fi
if [ -f "$D/state/agent.crt" ]; then echo enrolled; fi
if ! command -v sha256sum >/dev/null 2>&1; then
	echo "sha256sum is not installed (coreutils or busybox provides it)" >&2
	exit 3
fi
for f in "$D/bin/drover" "$D/agent.yaml" "$D/ca.crt" "$SUP" "$U"; do
	if [ -f "$f" ]; then
		_s=$(sha256sum <"$f") || exit 1
		echo "sha ${_s%% *} $f"
	fi
done
exit 0
`
}

// probe is what probeScript reported.
type probe struct {
	os, arch string
	systemd  bool
	running  bool // systemd: the unit is active; else: the supervisor is alive
	enabled  bool // systemd only
	enrolled bool
	sums     map[string]string // path -> sha256 (hex) of the files present
}

func parseProbe(out string) (probe, error) {
	p := probe{sums: map[string]string{}}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "os" && len(f) == 2:
			p.os = f[1]
		case f[0] == "arch" && len(f) == 2:
			p.arch = f[1]
		case f[0] == "systemd":
			p.systemd = true
		case f[0] == "running":
			p.running = true
		case f[0] == "enabled":
			p.enabled = true
		case f[0] == "enrolled":
			p.enrolled = true
		case f[0] == "sha" && len(f) == 3 && len(f[1]) == 64:
			p.sums[f[2]] = f[1]
		}
	}
	if p.arch == "" {
		return p, fmt.Errorf("unexpected answer (no machine type): %s", tail(out))
	}
	return p, nil
}

// goarch maps `uname -m` to GOARCH.
func goarch(machine string) (string, error) {
	switch machine {
	case "x86_64", "amd64":
		return "amd64", nil
	case "aarch64", "arm64":
		return "arm64", nil
	case "armv7l":
		return "arm", nil
	}
	return "", fmt.Errorf("unsupported machine type %q: drover's agent runs on x86_64 (amd64), aarch64 (arm64) and armv7l (arm)", machine)
}

// prepareScript makes the install dir's folders; state/ is the agent's,
// private.
func prepareScript(l layout) string {
	return prelude(stepPrepare, l) + `umask 022
mkdir -p "$D/bin" "$D/run" || exit 1
mkdir -p -m 0700 "$D/state" || exit 1
`
}

// startSystemdScript (re)starts the agent's unit.
func startSystemdScript(l layout) string {
	return prelude(stepStartSystemd, l) + `systemctl daemon-reload || exit 1
systemctl enable --quiet ` + unitName + ` || exit 1
systemctl restart ` + unitName + ` || exit 1
`
}

// startSupervisorScript stops a running supervisor and its agent, if any,
// then starts supervise.sh detached from the SSH session (own session,
// stdio to agent.log) and waits until it has written its PID file.
func startSupervisorScript(l layout) string {
	return prelude(stepStartSupervisor, l) + `if _p=$(pidfrom "$D/run/supervise.pid" "$SUP"); then stop "$_p" "$SUP" || exit 1; fi
if _p=$(pidfrom "$D/run/agent.pid" "$AGENT"); then stop "$_p" "$AGENT" || exit 1; fi
rm -f "$D/run/supervise.pid"
cd / || exit 1
if command -v setsid >/dev/null 2>&1; then
	setsid /bin/sh "$SUP" </dev/null >>"$D/run/agent.log" 2>&1 &
else
	nohup /bin/sh "$SUP" </dev/null >>"$D/run/agent.log" 2>&1 &
fi
_i=0
until _p=$(pidfrom "$D/run/supervise.pid" "$SUP"); do
	_i=$((_i + 1))
	if [ "$_i" -ge 50 ]; then
		echo "the supervisor did not start; the end of $D/run/agent.log:" >&2
		tail -n 20 "$D/run/agent.log" >&2
		exit 1
	fi
	nap
done
echo "supervisor $_p"
`
}

// restartAgentScript stops the agent under a live supervisor, which starts
// it again (from the new binary and config) a second later; it waits for
// that.
func restartAgentScript(l layout) string {
	return prelude(stepRestartAgent, l) + `_old=
if _p=$(pidfrom "$D/run/agent.pid" "$AGENT"); then
	_old=$_p
	stop "$_p" "$AGENT" || exit 1
fi
_i=0
while :; do
	if _p=$(pidfrom "$D/run/agent.pid" "$AGENT") && [ "$_p" != "$_old" ]; then
		echo "agent $_p"
		exit 0
	fi
	_i=$((_i + 1))
	if [ "$_i" -ge 100 ]; then
		echo "the supervisor did not start the agent again within 10 s; the end of $D/run/agent.log:" >&2
		tail -n 20 "$D/run/agent.log" >&2
		exit 1
	fi
	nap
done
`
}

// supervisorScript is run/supervise.sh: it runs the agent and starts it
// again a second after it exits. SIGTERM stops it and the agent.
func supervisorScript(l layout) string {
	return `#!/bin/sh
# drover agent supervisor, written by "drover agent install" on a host
# without systemd. It runs the agent and starts it again 1 s after it exits.
# Stop it with "drover agent uninstall" (or SIGTERM to the PID in
# run/supervise.pid: that stops the agent too).
D=` + shell.Quote(l.Dir) + `
echo $$ >"$D/run/supervise.pid"
child=
trap 'if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; fi; exit 0' TERM INT
while :; do
	"$D/bin/drover" agent run --config "$D/agent.yaml" </dev/null &
	child=$!
	echo "$child" >"$D/run/agent.pid"
	wait "$child"
	status=$?
	child=
	echo "supervise.sh: $(date '+%Y-%m-%dT%H:%M:%S%z'): the agent exited with status $status; starting it again in 1 s"
	sleep 1
done
`
}

// unitFile is the systemd unit.
func unitFile(l layout) string {
	return `# Written by "drover agent install"; "drover agent uninstall" removes it.
[Unit]
Description=drover agent
Documentation=https://github.com/drover-dev/drover
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=` + l.Bin + ` agent run --config ` + l.Config + `
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
`
}

// agentConfig is agent.yaml, read by `drover agent run --config`.
func agentConfig(name string, coordinators []string, l layout) string {
	var b strings.Builder
	b.WriteString("# Written by \"drover agent install\"; the next install overwrites changes.\n")
	fmt.Fprintf(&b, "name: %s\n", yamlString(name))
	b.WriteString("coordinators: [")
	for i, c := range coordinators {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(yamlString(c))
	}
	b.WriteString("]\n")
	fmt.Fprintf(&b, "ca: %s\n", yamlString(l.CA))
	fmt.Fprintf(&b, "state_dir: %s\n", yamlString(l.State))
	fmt.Fprintf(&b, "token_file: %s\n", yamlString(l.Token))
	return b.String()
}

// yamlString renders s as a YAML double-quoted scalar (JSON's string
// syntax is a subset of it).
func yamlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// uninstallScript stops the agent and removes the install dir. It refuses
// to remove a dir that does not look like an agent install. Its last line
// says what it found: "found" followed by any of systemd, supervisor, files.
func uninstallScript(l layout) string {
	return prelude(stepUninstall, l) + `found=
if [ -d "$D" ]; then
	if [ ! -e "$D/bin/drover" ] && [ ! -e "$D/agent.yaml" ] && [ ! -e "$D/run/supervise.sh" ]; then
		# Not (or only partly) installed: remove only what install makes.
		for f in "$D"/* "$D"/.[!.]* "$D"/..?*; do
			if [ ! -e "$f" ] && [ ! -L "$f" ]; then continue; fi
			case ${f##*/} in
			bin | run | state | agent.yaml | ca.crt | join.token | .*.drover-tmp-*) ;;
			*)
				echo "$D does not look like a drover agent install (it holds ${f##*/}): not removing it" >&2
				exit 3
				;;
			esac
		done
	fi
elif [ -e "$D" ] || [ -L "$D" ]; then
	echo "$D is not a directory: not removing it" >&2
	exit 3
fi
if [ -f "$U" ] && grep -qF -- "$AGENT" "$U"; then
	found="$found systemd"
	if has_systemd; then systemctl disable --now --quiet ` + unitName + ` || exit 1; fi
	rm -f "$U" || exit 1
	if has_systemd; then systemctl daemon-reload || exit 1; fi
fi
if _p=$(pidfrom "$D/run/supervise.pid" "$SUP"); then
	found="$found supervisor"
	stop "$_p" "$SUP" || exit 1
fi
if _p=$(pidfrom "$D/run/agent.pid" "$AGENT"); then stop "$_p" "$AGENT" || exit 1; fi
if [ -e "$D" ] || [ -L "$D" ]; then
	found="$found files"
	rm -rf "$D" || exit 1
fi
echo "found$found"
`
}

// tail is the end of a command's output, for error messages.
func tail(out string) string {
	out = strings.TrimSpace(out)
	const max = 800
	if len(out) > max {
		out = "..." + out[len(out)-max:]
	}
	if out == "" {
		return "(no output)"
	}
	return out
}
