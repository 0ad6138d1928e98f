#!/bin/sh
# Prints the agent figures, measured in the lab (root) by
# TestAgents/figures: a real agent's idle memory, the round trip of one
# command through the agent against the same command over an open SSH
# connection, and what a connected agent costs the coordinator's agent hub
# (200 real agents connected to drover-lab agent-probe).
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
if [ "$(id -u)" != 0 ]; then
	echo "bench/agent.sh needs root (the lab uses network namespaces)" >&2
	exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
DROVER_BENCH_REPORT="$tmp/report.tsv" go test -count=1 -timeout 10m -v \
	-run 'TestAgents$/(install_over_SSH|figures)' ./e2e/ > "$tmp/test.txt" 2>&1 || { cat "$tmp/test.txt"; exit 1; }

grep -o 'agent web[0-9]* idle RSS: [0-9]* KiB' "$tmp/test.txt" | awk '{ printf "%-30s %8s KiB\n", "idle RSS, agent " $2, $5 }'
awk -F '\t' '
	$1 == "rtt" { printf "%-30s %8.2f ms (p90 %.2f)\n%-30s %8.2f ms (p90 %.2f)\n", "command round trip, agent", $2, $3, "command round trip, SSH", $4, $5 }
	$1 == "mem" { printf "%-30s %8.1f KiB heap, %.1f KiB RSS\n", "coordinator, per agent", $2, $3 }' "$tmp/report.tsv"
