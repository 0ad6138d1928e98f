#!/bin/sh
# Installs the Debian packages drover's lab and tests need, when missing
# (the lab's, and vagrant for checking the Vagrantfile).
#
#   scripts/deps.sh           the lab's and `make test`'s
#   scripts/deps.sh vagrant   also what `make vagrant-e2e` needs (vagrant/e2e.sh):
#                             libvirt, qemu, vagrant-libvirt, and what
#                             vagrant/box/build.sh builds the box with
set -eu
need=""
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need="$need openssh-server"
command -v ssh >/dev/null 2>&1 || need="$need openssh-client"
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need="$need haproxy"
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need="$need iproute2"
command -v unshare >/dev/null 2>&1 || need="$need util-linux"
command -v curl >/dev/null 2>&1 || need="$need curl"
command -v pgrep >/dev/null 2>&1 || need="$need procps"
# The live view's test runs it in a real terminal (tmux, 80x24).
command -v tmux >/dev/null 2>&1 || need="$need tmux"
# The lab's Prometheus (metric gates).
command -v prometheus >/dev/null 2>&1 || need="$need prometheus"
# The dashboard's end-to-end test (e2e/dashboard_test.go) drives headless
# Chromium; fonts-dejavu-core gives its screenshots readable text.
command -v chromium >/dev/null 2>&1 || need="$need chromium fonts-dejavu-core"
# `make vagrant-validate` (part of `make test`): `vagrant validate` on the
# Vagrantfile; Debian's vagrant brings its Ruby. No provider is needed.
command -v vagrant >/dev/null 2>&1 || need="$need vagrant"
if [ "${1:-}" = vagrant ]; then
	for p in vagrant-libvirt libvirt-daemon-system qemu-system-x86 qemu-utils mmdebstrap \
		dnsmasq-base fdisk grub-pc-bin e2fsprogs rsync socat; do
		if [ "$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
			need="$need $p"
		fi
	done
fi
if [ -z "$need" ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "drover: missing packages:$need (run as root, or: sudo apt-get install$need)" >&2
	exit 1
fi
echo "installing:$need"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $need >/dev/null
