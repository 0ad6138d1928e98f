#!/bin/sh
# Provisioning of a web host (run as root by Vagrant, after provision-common.sh).
#
#   provision-web.sh NAME ADDRESS APP_PORT RELEASE_PATH
#
# env: DEPLOY_USER (default deploy), FIRST_RELEASE (default 1.0.0),
#      DROVER_BUILD (default /vagrant/vagrant/build: `make vagrant-artifacts`)
#
# Makes the host look like what drover expects (README's plan):
#   - the deploy user, logging in with the operator's key (build/id_ed25519.pub),
#     no password and no sudo;
#   - the same key for root, for `drover agent install` (it writes
#     /opt/drover-agent and a systemd unit, so it must log in as root). It
#     grants nothing `vagrant ssh` (passwordless sudo) does not already;
#     PROVISION_ROOT_KEY=0 leaves root alone;
#   - RELEASE_PATH owned by it, with the first release unpacked the way drover
#     does (releases/<v>, .drover-release marker, `current` -> releases/<v>),
#     so that HAProxy has a healthy server before any deploy;
#   - the demo app as a systemd user unit of the deploy user (lingering, so
#     it runs without a login), ExecStart=RELEASE_PATH/current/bin/demoapp.
#     The artifacts' bin/restart (vagrant/restart.sh) restarts that unit
#     with `systemctl --user`: no sudo anywhere.
# Idempotent: a re-run leaves `current` (drover's business) and a running
# app alone, unless the unit file changed.
set -eu

name=${1:?usage: provision-web.sh NAME ADDRESS APP_PORT RELEASE_PATH}
addr=${2:?address}
port=${3:?app port}
root=${4:?release path}
user=${DEPLOY_USER:-deploy}
first=${FIRST_RELEASE:-1.0.0}
build=${DROVER_BUILD:-/vagrant/vagrant/build}
artifact=$build/app-$first.tar.gz

if [ ! -f "$artifact" ]; then
	echo "provision: $artifact is missing: run 'make vagrant-artifacts' on the host, then 'vagrant reload --provision $name'" >&2
	exit 1
fi

# dbus-user-session + libpam-systemd: the deploy user's systemd manager and
# its environment in SSH sessions. tar, coreutils: what drover's install runs.
sh /vagrant/vagrant/apt-install.sh openssh-server libpam-systemd dbus-user-session tar

# 1. The deploy user. '*' is "no password" without being "locked": sshd
#    still accepts its key.
if ! id -u "$user" >/dev/null 2>&1; then
	useradd --create-home --shell /bin/bash "$user"
fi
usermod -p '*' "$user"
uid=$(id -u "$user")
group=$(id -gn "$user")
home=$(getent passwd "$user" | cut -d: -f6)
install -d -m 700 -o "$user" -g "$group" "$home/.ssh"
install -m 600 -o "$user" -g "$group" "$build/id_ed25519.pub" "$home/.ssh/authorized_keys"

if [ "${PROVISION_ROOT_KEY:-1}" = 1 ]; then
	install -d -m 700 /root/.ssh
	touch /root/.ssh/authorized_keys
	chmod 600 /root/.ssh/authorized_keys
	key=$(cat "$build/id_ed25519.pub")
	grep -qxF "$key" /root/.ssh/authorized_keys || echo "$key" >>/root/.ssh/authorized_keys
fi

# 2. The release path and the first release, unpacked as drover would.
install -d -m 755 -o "$user" -g "$group" "$root" "$root/releases"
if [ ! -e "$root/current" ]; then
	runuser -u "$user" -- sh -eu -c '
		root=$1 v=$2 artifact=$3
		tmp=$root/releases/.$v.tmp
		rm -rf "$tmp" && mkdir -p "$tmp"
		tar -xzf "$artifact" -C "$tmp" --no-same-owner
		sha256sum "$artifact" | cut -d" " -f1 >"$tmp/.drover-release"
		rm -rf "$root/releases/$v" && mv "$tmp" "$root/releases/$v"
		ln -sfn "releases/$v" "$root/.current.tmp" && mv -Tf "$root/.current.tmp" "$root/current"
	' sh "$root" "$first" "$artifact"
	echo "$name: installed release $first in $root"
fi

# 3. The demo app as a user unit, and the user's manager kept running.
unitdir=$home/.config/systemd/user
unit=$unitdir/demoapp.service
new=$(mktemp)
cat >"$new" <<EOF
# Written by vagrant/provision-web.sh. The demo app of the release that
# $root/current points to; bin/restart of each release restarts this unit.
[Unit]
Description=drover demo app ($root/current)

[Service]
Type=simple
WorkingDirectory=$root
Environment=APP_ROOT=$root APP_PORT=$port
ExecStart=$root/current/bin/demoapp --listen :$port --pidfile $root/app.pid
# SIGTERM: the app stops accepting and lets in-flight requests finish.
KillSignal=SIGTERM
TimeoutStopSec=15
Restart=on-failure
RestartSec=1
StandardOutput=append:$root/app.log
StandardError=inherit

[Install]
WantedBy=default.target
EOF
changed=yes
if cmp -s "$new" "$unit"; then
	changed=no
fi
runuser -u "$user" -- mkdir -p "$unitdir"
install -m 644 -o "$user" -g "$group" "$new" "$unit"
rm -f "$new"

loginctl enable-linger "$user"
i=0
while [ ! -S "/run/user/$uid/systemd/private" ]; do
	i=$((i + 1))
	if [ "$i" -gt 300 ]; then
		echo "provision: the systemd user manager of $user did not start (systemctl status user@$uid)" >&2
		exit 1
	fi
	sleep 0.1
done
as_user() { runuser -u "$user" -- env XDG_RUNTIME_DIR="/run/user/$uid" "$@"; }
as_user systemctl --user daemon-reload
as_user systemctl --user enable demoapp.service
if [ "$changed" = yes ]; then
	as_user systemctl --user restart demoapp.service
else
	as_user systemctl --user start demoapp.service
fi

# 4. Healthy before we say so.
i=0
until curl -fsS -o /dev/null --max-time 1 "http://$addr:$port/health"; do
	i=$((i + 1))
	if [ "$i" -gt 50 ]; then
		echo "provision: the demo app does not answer http://$addr:$port/health; its log:" >&2
		tail -n 20 "$root/app.log" >&2 || true
		exit 1
	fi
	sleep 0.2
done
echo "$name: demo app $(curl -fsS --max-time 1 "http://$addr:$port/") on http://$addr:$port/ (ssh $user@$addr)"
echo "$name: host key $(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)"
