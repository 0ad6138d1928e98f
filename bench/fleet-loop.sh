#!/bin/bash
# The baseline drover is measured against (bench/fleet.sh): a bash loop doing
# drover's protocol with one ssh per host, batch by batch, hosts of a batch in
# parallel:
#   drain on HAProxy (runtime API over its socket, socat), wait for 0 sessions,
#   maint; one ssh that uploads (stdin), checks the sha256, unpacks, switches
#   `current` and restarts; wait for the health check twice; ready, and wait
#   for plain UP.
# No preflight, no rollback, no state, no prune: a floor, not a tool.
#
#   fleet-loop.sh HOSTS BATCH ARTIFACT VERSION SOCKET RELEASE_PATH APP_PORT SSH_OPTS...
# HOSTS: a file of "name address backend/server" lines. Run it where the hosts
# are reachable (the lab's control namespace).
set -u
hosts=$1 batch=$2 art=$3 version=$4 sock=$5 rel=$6 port=$7
shift 7
ssh_opts=("$@")
sha=$(sha256sum "$art" | cut -d' ' -f1)
errs=$(mktemp -d)
trap 'rm -rf "$errs"' EXIT

# trace STEP: with DROVER_LOOP_TRACE set, append "MS HOST STEP" (a step's end).
trace() { [ -z "${DROVER_LOOP_TRACE:-}" ] || echo "$(date +%s%3N) $name $1" >> "$DROVER_LOOP_TRACE"; }

api() { printf '%s\n' "$1" | socat -t 5 - "UNIX-CONNECT:$sock"; }

# field N of the server's `show stat` line (1-based, CSV): 5 scur, 18 status
stat_field() {
	local be=${1%/*} sv=${1#*/}
	api "show stat" | awk -F, -v be="$be" -v sv="$sv" -v f="$2" '$1 == be && $2 == sv { print $f }'
}

deploy_host() {
	local name=$1 addr=$2 server=$3 i
	trace start
	api "set server $server state drain" >/dev/null
	for i in $(seq 200); do [ "$(stat_field "$server" 5)" = 0 ] && break; sleep 0.05; done
	api "set server $server state maint" >/dev/null
	trace drain
	# LogLevel INFO first (ssh keeps the first value): a connection sshd
	# closes (LoginGraceTime on a loaded machine) says so.
	ssh -o LogLevel=INFO "${ssh_opts[@]}" "root@$addr" "set -e
		up=$rel/.upload-$version.tar.gz; tmp=$rel/releases/.$version.tmp
		mkdir -p $rel/releases; cat > \$up
		echo '$sha  '\$up | sha256sum -c --quiet -
		rm -rf \$tmp; mkdir -p \$tmp; tar -xf \$up -C \$tmp --no-same-owner
		rm -rf $rel/releases/$version; mv \$tmp $rel/releases/$version; rm -f \$up
		ln -sfn releases/$version $rel/.current.tmp; mv -Tf $rel/.current.tmp $rel/current
		cd $rel/current; $rel/current/bin/restart" < "$art" 2>"$errs/$name" || {
		echo "$name: ssh exit $?: $(cat "$errs/$name")" >&2
		return 1
	}
	trace install+restart
	local ok=0
	for i in $(seq 200); do
		if curl -fsS -m 1 "http://$addr:$port/health" 2>/dev/null | grep -q ok; then
			ok=$((ok + 1)); [ $ok -ge 2 ] && break
		else
			ok=0
		fi
		sleep 0.05
	done
	trace healthy
	api "set server $server state ready" >/dev/null
	for i in $(seq 400); do case $(stat_field "$server" 18) in UP) trace enable; return 0 ;; esac; sleep 0.05; done
	echo "$name: not UP" >&2
	return 1
}

mapfile -t lines < "$hosts"
fail=0
for ((b = 0; b < ${#lines[@]}; b += batch)); do
	pids=()
	for l in "${lines[@]:b:batch}"; do
		read -r name addr server <<< "$l"
		deploy_host "$name" "$addr" "$server" & pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || fail=1; done
	[ $fail = 0 ] || exit 1
done
