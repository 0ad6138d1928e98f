#!/bin/sh
# drover .deb: after removing. The drover user, /var/lib/drover (the Raft
# log: deployments, tokens) and /etc/drover are kept, even on purge: remove
# them by hand when the node is gone for good (docs/packages.md).
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
