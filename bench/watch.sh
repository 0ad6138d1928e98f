#!/bin/sh
# Prints how fast a watching `drover deploy --server` follows a failover: a
# three-node cluster in the lab rolls four hosts out (batch 2) while its
# leader is killed (kill -9) at KILLS seeded moments, killed and started
# again at once at RESTARTS more, and its every link cut (packets dropped,
# no RST) at CUTS more. For each run: the time from the deployment's
# recorded end (the coordinators' logs) to the CLI's exit, and from the
# strike to the next host or HAProxy action (the hosts' and HAProxy's own
# records). Needs root (the lab). `make test` runs the same test with 20
# kills, 4 restarts and 4 cuts. DROVER_E2E_SEED picks other moments.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
if [ "$(id -u)" != 0 ]; then
	echo "bench/watch.sh needs root (the lab uses network namespaces)" >&2
	exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
DROVER_WATCH_KILLS="${KILLS:-40}" DROVER_WATCH_RESTARTS="${RESTARTS:-12}" DROVER_WATCH_CUTS="${CUTS:-12}" DROVER_BENCH_REPORT="$tmp/report.tsv" \
	go test -count=1 -timeout 30m -run 'TestWatchThroughFailover$' ./e2e/ > "$tmp/test.txt" 2>&1 || { cat "$tmp/test.txt"; exit 1; }

printf '%-8s %-4s %-16s %16s %16s\n' "kind" "run" "struck at" "end->exit ms" "->next action ms"
awk -F '\t' '{ printf "%-8s %-4s %-16s %16s %16s\n", $1, $2, $3, $4, $5 }' "$tmp/report.tsv"
echo
for kind in kill restart cut; do
	for col in 4 5; do
		# A restarted leader may lead again: the next action by another
		# coordinator is no failover figure then.
		[ "$kind.$col" = restart.5 ] && continue
		grep "^$kind	" "$tmp/report.tsv" | cut -f "$col" | sort -n | awk -v kind="$kind" -v col="$col" '
			{ v[NR] = $1 }
			END {
				if (NR == 0) exit
				what = (col == 4) ? "deployment end -> CLI exit" : kind " -> next host action"
				printf "%-8s %-30s %3d runs: min %7.1f  median %7.1f  p90 %7.1f  max %7.1f ms\n", kind, what, NR,
					v[1], (NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2), v[int(NR * 0.9 + 0.999)], v[NR]
			}'
	done
done
