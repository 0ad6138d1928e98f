#!/bin/sh
# Prints drover's benchmark table: the engine's own overhead per host (fakes
# at the seams, real Raft on disk) and a real rollout in the lab (root).
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go test -run '^$' -bench 'EngineOverheadPerHost' -benchtime 10x ./orchestrator/ > "$tmp/engine.txt"
if [ "$(id -u)" = 0 ]; then
	go test -run '^$' -bench 'LabDeploy' -benchtime 5x -timeout 10m ./e2e/ > "$tmp/lab.txt"
else
	echo "(not root: skipping the lab benchmark)" > "$tmp/lab.txt"
fi

printf '%-44s %10s %10s\n' "engine overhead (fake hosts, real Raft)" "ms/host" "ms/batch"
awk '/^BenchmarkEngine/ {
	for (i = 1; i <= NF; i++) { if ($(i+1) == "ms/host") h = $i; if ($(i+1) == "ms/batch") b = $i }
	printf "  %-42s %10s %10s\n", $1, h, b
}' "$tmp/engine.txt"
echo
printf '%-28s %10s %14s %10s %10s\n' "lab: 8 hosts, batch 2" "s/deploy" "handshakes/h" "requests" "failed"
awk '/^BenchmarkLab/ {
	for (i = 1; i <= NF; i++) {
		if ($(i+1) == "s/deploy") s = $i
		if ($(i+1) == "handshakes/host/deploy") h = $i
		if ($(i+1) == "requests") r = $i
		if ($(i+1) == "failed-requests") f = $i
	}
	printf "  %-26s %10s %14s %10s %10s\n", $1, s, h, r, f
}' "$tmp/lab.txt"
grep -h 'skipping' "$tmp/lab.txt" || true
