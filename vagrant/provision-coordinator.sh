#!/bin/sh
# Provisioning of a coordinator (run as root by Vagrant, after
# provision-common.sh), only with DROVER_COORDINATORS=1 or 3.
#
#   provision-coordinator.sh NODE_ID ADDRESS [JOIN_ADDR]
#
# Without JOIN_ADDR the node bootstraps the cluster (the first coordinator);
# with it (host:port of the first node's API) it joins. Installs, from the
# host's build (`make vagrant-artifacts`, through /vagrant):
#   /usr/local/bin/drover                 build/drover-linux-<arch>
#   /etc/drover/tls/                      ca.crt, NODE.crt, NODE.key,
#                                         bootstrap.token on the first node,
#                                         and ca.key: coordinators sign the
#                                         certificates of enrolling agents
#                                         (docs/agents.md); a lab CA only
#   /etc/drover/server.env                this node's id and addresses
#   drover-server.service                 examples/systemd's unit, ExecStart
#                                         pointed at /usr/local/bin
#   /etc/drover/ssh/id_ed25519            the operator's key, for plans run by
#   /var/lib/drover/known_hosts           the cluster over SSH (the paths a
#                                         cluster plan names: docs/vagrant.md)
# Raft on ADDRESS:7000, the HTTPS API on ADDRESS:7443.
# env: DROVER_BUILD (default /vagrant/vagrant/build), DROVER_ARCH (amd64).
set -eu

node=${1:?usage: provision-coordinator.sh NODE_ID ADDRESS [JOIN_ADDR]}
addr=${2:?address}
join=${3:-}
build=${DROVER_BUILD:-/vagrant/vagrant/build}
arch=${DROVER_ARCH:-amd64}
src=/vagrant

for f in "$build/drover-linux-$arch" "$build/tls/ca.crt" "$build/tls/ca.key" "$build/tls/$node.crt" "$build/tls/$node.key"; do
	if [ ! -f "$f" ]; then
		echo "provision: $f is missing: run 'make vagrant-artifacts' on the host, then 'vagrant reload --provision $node'" >&2
		exit 1
	fi
done

# 1. The binary and the service user.
install -m 755 "$build/drover-linux-$arch" /usr/local/bin/drover.new
mv -f /usr/local/bin/drover.new /usr/local/bin/drover
if ! id -u drover >/dev/null 2>&1; then
	useradd --system --user-group --home-dir /var/lib/drover --no-create-home --shell /usr/sbin/nologin drover
fi
install -d -m 700 -o drover -g drover /var/lib/drover

# 2. TLS. The CA key too: without it the cluster cannot enroll agents.
install -d -m 755 /etc/drover
install -d -m 750 -o root -g drover /etc/drover/tls
install -m 644 "$build/tls/ca.crt" "$build/tls/$node.crt" /etc/drover/tls/
install -m 600 -o drover -g drover "$build/tls/$node.key" "/etc/drover/tls/$node.key"
install -m 600 -o drover -g drover "$build/tls/ca.key" /etc/drover/tls/ca.key
if [ -z "$join" ]; then
	install -m 600 -o drover -g drover "$build/tls/bootstrap.token" /etc/drover/tls/bootstrap.token
	cluster_args=--bootstrap
else
	cluster_args="--join $join"
fi

# 3. What plans run by the cluster read on the coordinators (over SSH).
install -d -m 750 -o root -g drover /etc/drover/ssh
install -m 640 -o root -g drover "$build/id_ed25519" /etc/drover/ssh/id_ed25519
touch /var/lib/drover/known_hosts
chown drover:drover /var/lib/drover/known_hosts
chmod 600 /var/lib/drover/known_hosts

# 4. The service: examples/systemd's unit and env file, for this node.
cat >/etc/drover/server.env.new <<EOF
# Written by vagrant/provision-coordinator.sh.
DROVER_NODE_ID=$node
DROVER_RAFT_ADDR=$addr:7000
DROVER_HTTP_ADDR=$addr:7443
DROVER_CLUSTER_ARGS=$cluster_args
DROVER_PLAN_FILES=--plan-files /etc/drover/ssh --plan-files /var/lib/drover/known_hosts
EOF
mv -f /etc/drover/server.env.new /etc/drover/server.env
sed 's#/usr/bin/drover #/usr/local/bin/drover #' "$src/examples/systemd/drover-server.service" \
	>/etc/systemd/system/drover-server.service
systemctl daemon-reload
systemctl enable drover-server.service >/dev/null 2>&1
systemctl restart drover-server.service

# 5. Up: the API port listens. A joining node may wait for the first one
#    (the unit restarts until the join succeeds), so it only warns.
i=0
until ss -Hltn "( sport = :7443 )" | grep -q .; do
	i=$((i + 1))
	if [ "$i" -gt 300 ]; then
		if [ -n "$join" ]; then
			echo "provision: warning: drover server $node does not listen on $addr:7443 yet (it retries joining $join): 'vagrant ssh $node -c \"journalctl -u drover-server\"'" >&2
			exit 0
		fi
		echo "provision: drover server $node does not listen on $addr:7443; its log:" >&2
		journalctl -u drover-server.service -n 30 --no-pager >&2 || true
		exit 1
	fi
	sleep 0.2
done
echo "$node: drover server up: raft $addr:7000, API https://$addr:7443 ($cluster_args)"
