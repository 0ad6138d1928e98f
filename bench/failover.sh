#!/bin/sh
# Prints the failover table: a three-node cluster in the lab rolls six hosts
# out under HTTP load while its leader is killed (kill -9) at ten
# seeded-random stage events; for each run, the time from the kill to the
# new leader's first action on a host or HAProxy, as the host's sshd audit
# or HAProxy's admin endpoint recorded it. Needs root (the lab).
# DROVER_E2E_SEED picks other moments.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
if [ "$(id -u)" != 0 ]; then
	echo "bench/failover.sh needs root (the lab uses network namespaces)" >&2
	exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
DROVER_BENCH_REPORT="$tmp/report.tsv" go test -count=1 -timeout 15m \
	-run 'TestCluster$/leader_killed' ./e2e/ > "$tmp/test.txt" 2>&1 || { cat "$tmp/test.txt"; exit 1; }

printf '%-5s %-8s %-12s %12s %12s\n' "run" "killed" "at stage ev" "elected ms" "failover ms"
awk -F '\t' '{ printf "%-5s %-8s %-12s %12s %12s\n", $1, $2, $3, $5, $4 }' "$tmp/report.tsv"
sort -n -k4 -t "$(printf '\t')" "$tmp/report.tsv" | awk -F '\t' '
	{ v[NR] = $4 }
	END { printf "\n%d runs: median %.0f ms, max %.0f ms\n", NR, (NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2), v[NR] }'
sort -n -k5 -t "$(printf '\t')" "$tmp/report.tsv" | awk -F '\t' '
	{ v[NR] = $5 }
	END { printf "new leader elected: median %.0f ms, max %.0f ms (the rest is catching up and resuming)\n", (NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2), v[NR] }'
