#!/bin/sh
# bin/restart of the Vagrant fleet's release artifacts (vagrant/build-artifacts.sh
# packs it; the lab's artifacts carry lab/restart.sh instead).
#
# On the VMs the demo app is a systemd *user* unit of the user owning
# $APP_ROOT (the deploy user, who lingers so that the unit runs without a
# login): ExecStart is $APP_ROOT/current/bin/demoapp, so a restart after
# drover moved `current` starts the new release. No sudo: the deploy user
# manages its own units. Run as root (an agent running as root), it switches
# to that user first.
#
# `systemctl restart` returns once the old process has exited (SIGTERM, in
# flight requests finish, up to TimeoutStopSec) and the new one is started;
# drover's health checks judge the rest. Idempotent: with the app stopped it
# just starts it. Env: APP_ROOT (default /srv/app), APP_UNIT (demoapp.service).
set -eu

root=${APP_ROOT:-/srv/app}
unit=${APP_UNIT:-demoapp.service}

owner=$(stat -c %U "$root")
if [ "$(id -u)" = 0 ] && [ "$owner" != root ]; then
	exec runuser -u "$owner" -- env APP_ROOT="$root" APP_UNIT="$unit" "$0" "$@"
fi

# The user's manager, whatever the caller's environment says (an SSH session
# of the deploy user has it already; an agent's environment may not).
XDG_RUNTIME_DIR=/run/user/$(id -u)
export XDG_RUNTIME_DIR
if [ ! -S "$XDG_RUNTIME_DIR/systemd/private" ]; then
	echo "restart: no systemd user manager for $(id -un) (is lingering enabled? loginctl enable-linger $(id -un))" >&2
	exit 1
fi
systemctl --user restart "$unit"
echo "restart: $unit runs $(readlink -f "$root/current")"
