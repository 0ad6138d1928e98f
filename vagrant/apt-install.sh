#!/bin/sh
# Installs the Debian packages given that are not installed yet, for the
# provisioning scripts (run on the VMs as root, from /vagrant).
#
#   apt-install.sh PACKAGE...
#
# With every package present (the box vagrant/box/build.sh makes has them
# all) it does nothing at all: no `apt-get update`, no network, so the
# offline fleet provisions without a route out. Otherwise it refreshes the
# package lists (at most once an hour: provisioning is re-run) and installs
# the missing ones.
set -eu
missing=""
for p in "$@"; do
	if [ "$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
		missing="$missing $p"
	fi
done
[ -n "$missing" ] || exit 0
export DEBIAN_FRONTEND=noninteractive
stamp=/var/lib/apt/periodic/drover-update-stamp
if [ -z "$(find "$stamp" -mmin -60 2>/dev/null)" ]; then
	apt-get update -qq
	mkdir -p "$(dirname "$stamp")" && touch "$stamp"
fi
apt-get install -y -qq --no-install-recommends $missing >/dev/null
