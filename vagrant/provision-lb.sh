#!/bin/sh
# Provisioning of the balancer (run as root by Vagrant, after provision-common.sh).
#
#   provision-lb.sh LB_ADDRESS FRONTEND_PORT BACKEND APP_PORT SERVER=ADDRESS...
#
# Installs Debian's HAProxy with the topology's frontend and backend and one
# server per web host (SERVER: its lb_server after the '/'), configured in
# the spirit of the lab (lab/haproxy.go): retries 0 and no redispatch (a
# rollout mistake must show up as a failed request), `option httpchk GET
# /health`, and the runtime API at `level admin` on
#   - /run/haproxy/admin.sock (on this VM), and
#   - LB_ADDRESS:9999 (TCP), what drover's plan uses
#     (load_balancer.haproxy.address) from the operator's machine or the
#     coordinators. It has NO authentication: whoever reaches it can take
#     servers out of rotation. It listens on the private network only; never
#     bind it to a public address or forward the port.
# Idempotent: HAProxy is restarted only when its config changed.
#
# For testing the config off a VM: HAPROXY_CFG (default
# /etc/haproxy/haproxy.cfg) and HAPROXY_RENDER_ONLY=1 (write the config,
# check it with `haproxy -c`, change nothing else).
set -eu

lb=${1:?usage: provision-lb.sh LB_ADDRESS FRONTEND_PORT BACKEND APP_PORT SERVER=ADDRESS...}
front=${2:?frontend port}
backend=${3:?backend}
port=${4:?app port}
shift 4
if [ $# -eq 0 ]; then
	echo "provision-lb: no web hosts given" >&2
	exit 1
fi
cfg=${HAPROXY_CFG:-/etc/haproxy/haproxy.cfg}
render_only=${HAPROXY_RENDER_ONLY:-}

if [ -z "$render_only" ]; then
	sh /vagrant/vagrant/apt-install.sh haproxy socat
fi

render() {
	cat <<EOF
# Written by vagrant/provision-lb.sh from lab/topology.yaml: change the
# topology and run 'vagrant provision lb' rather than editing this file.
global
    log /dev/log local0
    chroot /var/lib/haproxy
    user haproxy
    group haproxy
    daemon
    # The runtime API, admin level: on this VM, and on the private network
    # for drover (load_balancer.haproxy.address: $lb:9999). No
    # authentication: keep it on the private network.
    stats socket /run/haproxy/admin.sock mode 660 level admin
    stats socket ipv4@$lb:9999 level admin
    stats timeout 30s
    maxconn 4096

defaults
    mode http
    log global
    option httplog
    # No retries and no redispatch: a mistake in a rollout must show up as
    # a failed client request, not as latency.
    retries 0
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout check 1s
    timeout http-keep-alive 10s
    option httpchk GET /health

frontend fe
    bind $lb:$front
    default_backend $backend

backend $backend
    balance roundrobin
EOF
	for s in "$@"; do
		echo "    server ${s%%=*} ${s#*=}:$port check inter 1s fall 2 rise 1"
	done
}

new=$(mktemp)
render "$@" >"$new"
if ! haproxy -c -q -f "$new"; then
	echo "provision-lb: the generated config is invalid:" >&2
	cat "$new" >&2
	rm -f "$new"
	exit 1
fi
if [ -n "$render_only" ]; then
	mv -f "$new" "$cfg"
	exit 0
fi
changed=yes
if cmp -s "$new" "$cfg"; then
	changed=no
fi
install -m 644 "$new" "$cfg"
rm -f "$new"

systemctl enable haproxy.service >/dev/null 2>&1
if [ "$changed" = yes ]; then
	systemctl restart haproxy.service
else
	systemctl start haproxy.service
fi

i=0
until echo "show info" | socat -t 2 - "TCP:$lb:9999" 2>/dev/null | grep -q '^Name: HAProxy'; do
	i=$((i + 1))
	if [ "$i" -gt 50 ]; then
		echo "provision-lb: the runtime API does not answer on $lb:9999" >&2
		journalctl -u haproxy.service -n 20 --no-pager >&2 || true
		exit 1
	fi
	sleep 0.2
done
echo "lb: HAProxy on http://$lb:$front/, runtime API on $lb:9999 and /run/haproxy/admin.sock"
echo "show stat" | socat -t 2 - /run/haproxy/admin.sock |
	awk -F, '$1 !~ /^#/ && $2 != "FRONTEND" && $2 != "BACKEND" && NF > 17 {print "lb:   " $1 "/" $2 " " $18}'
