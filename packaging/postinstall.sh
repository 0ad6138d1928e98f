#!/bin/sh
# drover .deb: after unpacking. Creates the drover system user (the
# coordinator service runs as it) and tells systemd about the units. Starts,
# enables and restarts nothing: see docs/packages.md.
set -e

if ! getent passwd drover >/dev/null 2>&1; then
	useradd --system --user-group --home-dir /var/lib/drover --no-create-home \
		--shell /usr/sbin/nologin --comment "drover coordinator" drover
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
