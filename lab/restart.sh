#!/bin/sh
# restart: stop the running demo app (if any) and start the one of the release
# that $APP_ROOT/current points to. drover runs it over SSH, as root, on the
# host, after switching `current`. It returns as soon as the new app process
# is started; drover's health checks judge the rest. Idempotent: with no app
# running it just starts one.
#
# Hosts share one PID space (the lab has no PID namespace), so a PID from the
# pidfile only counts when that process is a demoapp in this host's network
# namespace; a zombie counts as exited.
set -u

root=${APP_ROOT:-/srv/app}
port=${APP_PORT:-8080}
pidfile=$root/app.pid
log=$root/app.log
bin=$root/current/bin/demoapp

# running PID: PID is a live (non-zombie) demoapp of this host.
running() {
	[ -r "/proc/$1/stat" ] || return 1
	state=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null)
	case $state in "" | Z | X | x) return 1 ;; esac
	[ "$(cat "/proc/$1/comm" 2>/dev/null)" = demoapp ] || return 1
	[ "$(readlink "/proc/$1/ns/net" 2>/dev/null)" = "$(readlink /proc/self/ns/net)" ]
}

# wait_exit PID TICKS: wait up to TICKS x 50ms for PID to exit.
wait_exit() {
	i=0
	while running "$1"; do
		[ "$i" -ge "$2" ] && return 1
		sleep 0.05
		i=$((i + 1))
	done
	return 0
}

if [ ! -x "$bin" ]; then
	echo "restart: $bin is missing or not executable" >&2
	exit 1
fi

old=$(cat "$pidfile" 2>/dev/null || true)
case $old in *[!0-9]* | "") old= ;; esac
if [ -n "$old" ] && running "$old"; then
	echo "restart: stopping pid $old (SIGTERM)"
	kill -TERM "$old" 2>/dev/null || true
	if ! wait_exit "$old" 200; then
		echo "restart: pid $old still running after 10s, SIGKILL" >&2
		kill -KILL "$old" 2>/dev/null || true
		if ! wait_exit "$old" 100; then
			echo "restart: pid $old survived SIGKILL" >&2
			exit 1
		fi
	fi
fi
rm -f "$pidfile"

# Fully detached: own session, no terminal, stdin from /dev/null, output to
# the log, so the SSH session ends at once. A background child of this
# non-interactive shell is no process group leader, so setsid execs without
# forking and $! is the app's PID.
cd "$root" || exit 1
setsid "$bin" --listen ":$port" --pidfile "$pidfile" </dev/null >>"$log" 2>&1 &
pid=$!
echo "$pid" >"$pidfile.tmp" && mv -f "$pidfile.tmp" "$pidfile"
echo "restart: started $(readlink -f "$bin") pid $pid"
exit 0
