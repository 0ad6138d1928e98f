#!/bin/sh
# Prints drover against a bash loop of ssh + runtime-API calls and Ansible,
# side by side, on the same lab: per fleet size (hosts/batch) and with or
# without an rc file costing 50 ms on every host (lab --slow-rc), under HTTP
# load. Root only (the lab). A benchmark: run it on a quiet machine.
#
#   bench/fleet.sh                      # 8/2, 50/10, 200/40 (Ansible skips 200)
#   DROVER_FLEET_SIZES=8/2 DROVER_FLEET_TOOLS=drover,loop bench/fleet.sh
#
# Needs socat and curl (the loop) and ansible (apt-get install ansible socat).
# drover uses HAProxy's stock runtime socket; the loop and Ansible go through a
# relay that retries while the socket (stats maxconn 10) is full.
# Columns: wall seconds; failed requests; most servers out of rotation seen by
# the sampler; SSH sessions, commands run inside drover's shell session, and
# round trips (channel opens, channel requests, in-session commands, SFTP
# operations) per host per deploy, from each host's own audit log; for drover,
# the time outside the batches and the coordinator's peak RSS.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
if [ "$(id -u)" != 0 ]; then
	echo "bench/fleet.sh needs root (the lab uses network namespaces)" >&2
	exit 2
fi
for c in socat curl; do
	command -v $c >/dev/null || { echo "bench/fleet.sh: $c is missing (apt-get install $c)" >&2; exit 2; }
done
command -v ansible-playbook >/dev/null || echo "(ansible-playbook missing: apt-get install ansible; Ansible rows skipped)" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: > "$tmp/report.tsv"
log=${DROVER_FLEET_LOG:-/tmp/drover-fleet-bench.log}
DROVER_FLEET_REPORT="$tmp/report.tsv" go test -count=1 -timeout 90m -v -run '^TestFleetBench$' ./e2e/ > "$log" 2>&1 ||
	echo "(some runs failed: see FAILED rows and $log)" >&2
printf '%-7s %-4s %-8s %8s %6s %7s %9s %11s %9s  %s\n' hosts rc tool seconds failed max-out sessions/h in-session/h trips/h "drover: outside the batches; peak RSS"
awk -F '\t' '{
	rc = ($3 == "true") ? "50ms" : "-"
	extra = ($4 == "drover") ? $11 "; " $12 : ""
	printf "%-7s %-4s %-8s %8.2f %6d %7d %9.1f %11.1f %9.1f  %s\n", $1 "/" $2, rc, $4, $5, $6, $7, $8, $9, $10, extra
}' "$tmp/report.tsv"
