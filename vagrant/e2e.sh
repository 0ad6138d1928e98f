#!/bin/sh
# make vagrant-e2e: the Vagrantfile's VMs booted for real, and drover driven
# through them the way docs/vagrant.md tells an operator (vagrant/e2e-fleet.sh
# does that part). Root, Debian 12.
#
#   1. installs what it needs (scripts/deps.sh vagrant: libvirt, qemu,
#      vagrant-libvirt, mmdebstrap...), builds or reuses the box
#      (vagrant/box/build.sh);
#   2. picks the accelerator: KVM if a guest really runs under it, else qemu's
#      software emulation (CPU model qemu64), and says which;
#   3. makes a network namespace with nothing but loopback (no uplink: the
#      VMs' isolated libvirt networks have no route out) and runs
#      vagrant/e2e-fleet.sh in it, in a private mount namespace where
#      libvirt's state lives under CACHE/run;
#   4. at the end, also on failure or Ctrl-C: every process left in the
#      namespace killed, the namespace deleted, CACHE/run removed.
#
# Everything stays under CACHE (DROVER_VAGRANT_CACHE, default
# /var/cache/drover-vagrant): the box, Vagrant's box store (VAGRANT_HOME),
# libvirt's image pool and capability cache. `rm -rf` it to start over.
# Without root it skips (exit 0) with a message, except under CI=true, where
# it fails: CI must run it.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${DROVER_VAGRANT_CACHE:-/var/cache/drover-vagrant}
ns=drover-vagrant

skip() {
	if [ "${CI:-}" = true ]; then
		echo "vagrant-e2e: FAIL: $1 (CI=true: it must run, not skip)" >&2
		exit 1
	fi
	echo "vagrant-e2e: SKIP: $1" >&2
	exit 0
}
[ "$(id -u)" = 0 ] || skip "needs root (libvirt, a network namespace, the box build): sudo make vagrant-e2e"
case "$(cat /etc/debian_version 2>/dev/null)" in
12.*) ;;
*) skip "needs Debian 12 (apt packages of bookworm)" ;;
esac
[ "$(uname -m)" = x86_64 ] || skip "needs an x86_64 machine (the box is amd64)"

mkdir -p "$cache"
chmod 755 "$cache"
# One run at a time: the VMs use 10.200.0.0/22 and ~1.6 GiB each.
exec 9>"$cache/lock"
if ! flock -w 1800 9; then
	echo "vagrant-e2e: another run holds $cache/lock" >&2
	exit 1
fi

t0=$(date +%s)
sh "$root/scripts/deps.sh" vagrant
t1=$(date +%s)
echo "vagrant-e2e: packages ready in $((t1 - t0)) s"
# Not in a pipe: a failed build must stop the run (sh has no pipefail).
box=$(sh "$root/vagrant/box/build.sh" "$cache")
echo "vagrant-e2e: box ready in $(($(date +%s) - t1)) s"

# /dev/kvm as Debian's udev rules leave it (group kvm, 660): root-only, it
# makes libvirt re-probe qemu's capabilities at every call (4-8 s each).
if [ -c /dev/kvm ] && getent group kvm >/dev/null; then
	chgrp kvm /dev/kvm
	chmod 660 /dev/kvm
fi

# KVM works when the box's own kernel boots under it: without a root file
# system it runs all of its start-up and then panics ("Kernel panic" on the
# serial console), in a second or two. /dev/kvm may be there and still fail:
# under KVM-PVM, `-cpu host` stops with "failed to set MSR 0x10a" and a stock
# kernel hangs (real-mode code, a boot sector, does run there).
kvm_works() {
	[ -c /dev/kvm ] || return 1
	timeout 20 qemu-system-x86_64 -accel kvm -cpu host -m 256 -display none -nodefaults \
		-no-reboot -serial stdio -kernel "${box%.box}.vmlinuz" -append "console=ttyS0 panic=-1" \
		>"$cache/kvm-probe.log" 2>&1 || true
	grep -q "Kernel panic" "$cache/kvm-probe.log"
}
if [ "${DROVER_LIBVIRT_DRIVER:-}" = "" ]; then
	if kvm_works; then
		DROVER_LIBVIRT_DRIVER=kvm
		echo "vagrant-e2e: accelerator: KVM (the box's kernel boots under /dev/kvm)"
	else
		DROVER_LIBVIRT_DRIVER=qemu
		why="no /dev/kvm"
		[ -c /dev/kvm ] && why="/dev/kvm does not boot the box's kernel: $(grep -m1 -i -e error -e fail "$cache/kvm-probe.log" 2>/dev/null || echo 'no panic in 20 s')"
		[ -d /sys/module/kvm_pvm ] && why="$why; the host's KVM is KVM-PVM (module kvm_pvm), which runs only PVM guest kernels"
		echo "vagrant-e2e: accelerator: qemu software emulation, CPU model qemu64 ($why)"
	fi
fi
export DROVER_LIBVIRT_DRIVER

state=$cache/run
# Kill every process in the namespace (libvirtd, qemu, drover, load...),
# delete it, remove the run's state. Idempotent: also clears a previous run
# that died without cleaning up.
clean_ns() {
	if ip netns list | grep -qw "^$ns"; then
		pids=$(ip netns pids "$ns" || true)
		if [ -n "$pids" ]; then
			kill -TERM $pids 2>/dev/null || true
			i=0
			while [ -n "$(ip netns pids "$ns")" ] && [ "$i" -lt 50 ]; do
				sleep 0.2
				i=$((i + 1))
			done
			pids=$(ip netns pids "$ns" || true)
			[ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
			while [ -n "$(ip netns pids "$ns")" ]; do sleep 0.2; done
		fi
		ip netns del "$ns"
	fi
	rm -rf "$state"
}
finish() {
	rc=$?
	trap - EXIT INT TERM
	clean_ns
	if ip netns list | grep -qw "^$ns"; then
		echo "vagrant-e2e: namespace $ns is still there" >&2
		rc=1
	fi
	echo "vagrant-e2e: namespace $ns removed; total $(($(date +%s) - t0)) s"
	exit "$rc"
}
clean_ns
trap finish EXIT
trap 'exit 130' INT TERM
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
mkdir -p "$state"

cd "$root"
ip netns exec "$ns" unshare --mount --propagation private \
	env DROVER_E2E_CACHE="$cache" DROVER_E2E_STATE="$state" DROVER_E2E_BOX="$box" \
	sh "$root/vagrant/e2e-fleet.sh"
echo "vagrant-e2e: PASS"
