#!/bin/sh
# The fleet part of `make vagrant-e2e`, run by vagrant/e2e.sh inside its
# network namespace (loopback only) and a private mount namespace, from the
# repository's root. Env: DROVER_E2E_CACHE, DROVER_E2E_STATE (this run's
# state, removed afterwards), DROVER_E2E_BOX (the .box file),
# DROVER_LIBVIRT_DRIVER (kvm or qemu).
#
# libvirtd and virtlogd run here, their state under DROVER_E2E_STATE (libvirt's
# /etc, /run, /var/lib and /var/log are bind-mounted over, so the host's are
# untouched) and the image pool under DROVER_E2E_CACHE/images (the box's base
# volume is reused by the next run). Then, as docs/vagrant.md tells an
# operator: vagrant up (lb, web1, web2), an SSH deploy of 2.0.0 under load
# through the HAProxy VM, the broken 3.0.0 rolled back (exit 3), a
# coordinator on this side of the private network, `drover agent install`
# onto web1 and a deploy of 1.0.0 with web1 through its agent. After each
# deploy: no failed request, every web VM on the expected release and UP in
# HAProxy. `vagrant destroy -f` at the end, also on failure.
set -eu

cache=${DROVER_E2E_CACHE:?}
state=${DROVER_E2E_STATE:?}
box=${DROVER_E2E_BOX:?}
timings=$state/timings

say() { echo "vagrant-e2e: $*"; }
fail() {
	echo "vagrant-e2e: FAIL: $*" >&2
	exit 1
}
now() { date +%s.%N; }
cr=$(printf '\r')
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
timing() { # NAME START
	t=$(since "$2")
	echo "$1 $t" >>"$timings"
	say "$1: $t s"
}

# ---- libvirt, private to this run ----
mkdir -p "$state/etc" "$state/lib" "$state/log" "$cache/images" "$cache/libvirt-cache"
cp -a /etc/libvirt/. "$state/etc/"
# No network or domain of the host's configuration (Debian's "default" NAT
# network would autostart).
rm -f "$state"/etc/qemu/networks/*.xml "$state"/etc/qemu/networks/autostart/* "$state"/etc/qemu/*.xml
cp -a /var/lib/libvirt/. "$state/lib/"
mount -t tmpfs -o mode=755 drover-vagrant-run /run
mkdir -p /run/libvirt /run/lock
mount --bind "$state/etc" /etc/libvirt
mount --bind "$state/lib" /var/lib/libvirt
mount --bind "$cache/images" /var/lib/libvirt/images
mount --bind "$state/log" /var/log/libvirt
mount --bind "$cache/libvirt-cache" /var/cache/libvirt
# A previous run that died left its VMs' disks: keep only the box's base volume.
find /var/lib/libvirt/images -maxdepth 1 -type f ! -name '*_vagrant_box_image_*' -delete

t=$(now)
virtlogd -d -p "$state/virtlogd.pid"
libvirtd -d -p "$state/libvirtd.pid"
i=0
until virsh -q -c qemu:///system version >/dev/null 2>&1; do
	i=$((i + 1))
	[ "$i" -lt 150 ] || fail "libvirtd does not answer (log: $state/log)"
	sleep 0.2
done
virsh -q -c qemu:///system pool-define-as default dir --target /var/lib/libvirt/images >/dev/null
virsh -q -c qemu:///system pool-start default >/dev/null
timing "libvirtd started" "$t"

# ---- Vagrant: its box store in the cache, its machine state in this run ----
export VAGRANT_HOME="$cache/vagrant.d" VAGRANT_DOTFILE_PATH="$state/dot" VAGRANT_CHECKPOINT_DISABLE=1
export VAGRANT_DEFAULT_PROVIDER=libvirt
name=drover/$(basename "$box" .box)
export DROVER_BOX="$name" DROVER_LIBVIRT_ISOLATED=1 DROVER_WEB_HOSTS=2
# Boxes of older versions of vagrant/box/build.sh, and their base volumes.
for old in $(vagrant box list 2>/dev/null | awk '$1 ~ /^drover\/drover-bookworm64-/ {print $1}'); do
	[ "$old" = "$name" ] || vagrant box remove --force --all "$old"
done
find /var/lib/libvirt/images -maxdepth 1 -type f -name 'drover-VAGRANTSLASH-drover-bookworm64-*' ! -name "drover-VAGRANTSLASH-$(basename "$box" .box)_*" -delete
t=$(now)
if ! vagrant box list 2>/dev/null | grep -q "^$name "; then
	vagrant box add --name "$name" "$box"
	timing "vagrant box add" "$t"
else
	timing "vagrant box list (box already added)" "$t"
fi
# Boot the box's kernel and initrd directly (no BIOS disk reads, no GRUB).
export DROVER_LIBVIRT_KERNEL="${box%.box}"

destroy() {
	rc=$?
	trap - EXIT
	[ -z "${load_pid:-}" ] || kill "$load_pid" 2>/dev/null || true
	[ -z "${server_pid:-}" ] || kill "$server_pid" 2>/dev/null || true
	if [ "$rc" != 0 ]; then
		for f in "$state"/log/qemu/*.log; do
			[ -f "$f" ] && { echo "--- $f"; tail -n 5 "$f"; } >&2
		done
	fi
	t=$(now)
	if vagrant destroy -f >"$state/destroy.log" 2>&1; then
		timing "vagrant destroy -f" "$t"
	else
		cat "$state/destroy.log" >&2
		rc=1
	fi
	[ -z "$(virsh -q -c qemu:///system list --all --name | tr -d '\n')" ] || { echo "vagrant-e2e: VMs left after destroy" >&2; rc=1; }
	kill "$(cat "$state/libvirtd.pid")" "$(cat "$state/virtlogd.pid")" 2>/dev/null || true
	[ -f "$timings" ] && { echo "vagrant-e2e: timings (s):"; sed 's/^/  /' "$timings"; }
	exit "$rc"
}
trap destroy EXIT
trap 'exit 130' INT TERM

say "vagrant up: lb, web1, web2 (driver $DROVER_LIBVIRT_DRIVER, box $name)"
t=$(now)
# Each line timestamped (where the minutes go; on a pseudo-terminal, or
# Vagrant's Ruby holds its output back); no progress bars.
{
	rc=0
	script -qefc "vagrant up --provider=libvirt" /dev/null || rc=$?
	echo "$rc" >"$state/up.rc"
} 2>&1 | while IFS= read -r line; do
	# Not `tr -d '\r'` in the pipe: it holds its output back in a buffer,
	# and every line would get the time of the flush.
	line=${line%"$cr"}
	case "$line" in *Progress:*) ;; *) echo "$(date +%T) $line" ;; esac
done
[ "$(cat "$state/up.rc")" = 0 ] || fail "vagrant up exited $(cat "$state/up.rc")"
timing "vagrant up" "$t"

# Where each VM's boot went (kernel, initrd, userspace), from the guests.
vagrant ssh-config >"$state/ssh_config"
for m in lb web1 web2; do
	ssh -F "$state/ssh_config" "$m" \
		'echo "$(hostname): $(systemd-analyze time | head -n1)"; systemd-analyze blame | head -n 6 | sed "s/^/    /"' &
done
wait

# ---- The operator's walkthrough (docs/vagrant.md) ----
curl -fsS --max-time 5 http://10.200.0.2/ || fail "no answer through the HAProxy VM"
curl -fsS --max-time 5 http://10.200.0.11:8080/health || fail "web1's app does not answer"

# DROVER_WEB_HOSTS=2: a copy of the plan with web1 and web2 only, one at a
# time (two at once would empty the backend: drover refuses that plan).
sed -e '/name: web[3-8],/d' -e 's/^  batch: 2$/  batch: 1/' examples/vagrant.yaml >examples/vagrant-2.yaml
rm -f vagrant/build/known_hosts
bin/drover plan validate examples/vagrant-2.yaml

# Load through the HAProxy VM while a deploy runs: drover-lab load until
# SIGTERM, its JSON summary checked afterwards.
load_start() {
	bin/drover-lab load --url http://10.200.0.2/ --concurrency 4 --timeout 10s >"$state/load-$1.json" &
	load_pid=$!
}
load_stop() { # NAME
	kill -TERM "$load_pid"
	wait "$load_pid" || fail "$1: the load generator failed"
	load_pid=
	res=$(cat "$state/load-$1.json")
	requests=$(echo "$res" | sed 's/.*"requests":\([0-9]*\).*/\1/')
	failures=$(echo "$res" | sed 's/.*"failures":\([0-9]*\).*/\1/')
	echo "$1 requests $requests failures $failures" >>"$timings"
	say "$1: $requests requests, $failures failed: $res"
	[ "$requests" -gt 0 ] || fail "$1: no request went through"
	[ "$failures" = 0 ] || fail "$1: $failures failed requests"
}
# Every web VM answers VERSION itself and is UP in HAProxy (runtime API over TCP).
check_fleet() { # VERSION
	for w in 1 2; do
		got=$(curl -fsS --max-time 5 "http://10.200.0.1$w:8080/")
		case "$got" in
		"$1 "*) ;;
		*) fail "web$w answers '$got', want release $1" ;;
		esac
	done
	stat=$(echo "show stat" | socat -t 5 - TCP:10.200.0.2:9999 | awk -F, '$1 == "web" && $2 ~ /^web[0-9]/ {print $2 "=" $18}')
	for w in web1 web2; do
		echo "$stat" | grep -qx "$w=UP" || fail "$w is not UP in HAProxy: $(echo "$stat" | tr '\n' ' ')"
	done
	say "web1, web2 on $1 and UP in HAProxy"
}
deploy() { # NAME WANT_RC PLAN [env...]
	n=$1 want=$2 plan=$3
	shift 3
	load_start "$n"
	t=$(now)
	rc=0
	env "$@" bin/drover deploy "$plan" || rc=$?
	timing "$n" "$t"
	load_stop "$n"
	[ "$rc" = "$want" ] || fail "$n: drover deploy exited $rc, want $want"
}

check_fleet 1.0.0
deploy "deploy 2.0.0 over SSH" 0 examples/vagrant-2.yaml
check_fleet 2.0.0
deploy "deploy 3.0.0 (broken) over SSH, rolled back" 3 examples/vagrant-2.yaml APP_VERSION=3.0.0
check_fleet 2.0.0

# A coordinator on this side of the private network (10.200.0.1, the
# libvirt bridge), allowed to read the key and known_hosts of the plan; then
# the agent on web1.
build=$(pwd)/vagrant/build
bin/drover server --node-id ctl --data-dir "$state/ctl-data" --tls-dir vagrant/build/tls \
	--raft-addr 10.200.0.1:7000 --http-addr 10.200.0.1:7443 --bootstrap \
	--plan-files "$build/id_ed25519" --plan-files "$build/known_hosts" >"$state/server.log" 2>&1 &
server_pid=$!
export DROVER_ADDR=10.200.0.1:7443 DROVER_CA=vagrant/build/tls/ca.crt
export DROVER_CLIENT_CERT=vagrant/build/tls/ops.crt DROVER_CLIENT_KEY=vagrant/build/tls/ops.key
DROVER_TOKEN=$(cat vagrant/build/tls/bootstrap.token)
export DROVER_TOKEN
i=0
until bin/drover cluster members >/dev/null 2>&1; do
	i=$((i + 1))
	[ "$i" -lt 100 ] || { cat "$state/server.log" >&2; fail "drover server on 10.200.0.1:7443 does not answer"; }
	sleep 0.2
done
t=$(now)
bin/drover agent install --plan examples/vagrant-2.yaml --user root web1
timing "drover agent install web1" "$t"
i=0
until bin/drover hosts | grep -q 'web1.*online'; do
	i=$((i + 1))
	[ "$i" -lt 100 ] || { bin/drover hosts >&2; fail "web1's agent is not online"; }
	sleep 0.2
done
bin/drover hosts
# The coordinator reads the plan's files by absolute paths; web1 by its agent.
sed -e "s#\.\./vagrant/build/#$build/#" -e 's#lb_server: web/web1}#lb_server: web/web1, transport: agent}#' \
	examples/vagrant-2.yaml >examples/vagrant-agents.yaml
grep -q 'transport: agent' examples/vagrant-agents.yaml || fail "no host on transport: agent"
deploy "deploy 1.0.0 through the coordinator, web1 by its agent" 0 examples/vagrant-agents.yaml APP_VERSION=1.0.0
check_fleet 1.0.0
say "all steps passed"
