#!/bin/sh
# drover .deb: before removing (not upgrading). Stops and disables the units
# if the admin enabled them; an upgrade leaves running services alone (they
# pick the new binary up at their next restart).
set -e

case "${1:-}" in
remove | purge | 0)
	if [ -d /run/systemd/system ]; then
		for u in drover-agent.service drover-server.service; do
			systemctl stop "$u" >/dev/null 2>&1 || true
			systemctl disable "$u" >/dev/null 2>&1 || true
		done
	fi
	;;
esac
exit 0
