#!/bin/sh
# Provisioning shared by every VM of the fleet (run as root by Vagrant).
#
#   DROVER_NODE=NAME provision-common.sh NAME=ADDRESS...    every node of lab/topology.yaml
#
# Sets this VM's hostname (DROVER_NODE) and names every node in /etc/hosts, checks that the host's build
# (`make vagrant-artifacts`) reached /vagrant, lets services bind the private
# address before its interface is up, and installs the Debian packages all
# roles use (none when the box has them). Nothing is downloaded but Debian
# packages.
# Idempotent: `vagrant provision` runs it again.
set -eu

build=${DROVER_BUILD:-/vagrant/vagrant/build}
node=${DROVER_NODE:?DROVER_NODE: the name of this VM in the topology}

if [ ! -f "$build/id_ed25519.pub" ]; then
	cat >&2 <<EOF
provision: $build/id_ed25519.pub is missing.
  Run 'make vagrant-artifacts' on the host first, then 'vagrant reload --provision'
  (the /vagrant folder is synced with rsync when a VM boots; 'vagrant rsync' re-syncs it).
EOF
	exit 1
fi

# The hostname, what Vagrant's config.vm.hostname would set (/etc/hostname,
# and 127.0.1.1 in /etc/hosts), without restarting the network.
echo "$node" >/etc/hostname
hostname "$node"

# /etc/hosts: the topology's names, between markers so that a re-run replaces them.
tmp=$(mktemp)
sed -e '/^# drover-topology begin$/,/^# drover-topology end$/d' -e '/^127\.0\.1\.1[[:space:]]/d' /etc/hosts >"$tmp"
echo "127.0.1.1 $node" >>"$tmp"
{
	echo "# drover-topology begin"
	for pair in "$@"; do
		echo "${pair#*=} ${pair%%=*}"
	done
	echo "# drover-topology end"
} >>"$tmp"
cat "$tmp" >/etc/hosts
rm -f "$tmp"

# HAProxy and drover server bind this VM's private address. At boot the
# provider may bring that interface up after the services start (VirtualBox
# configures it once the VM runs): let them bind it anyway, rather than fail
# and hit systemd's restart limit.
echo "net.ipv4.ip_nonlocal_bind = 1" >/etc/sysctl.d/60-drover-nonlocal-bind.conf
sysctl -q -w net.ipv4.ip_nonlocal_bind=1

sh /vagrant/vagrant/apt-install.sh ca-certificates curl iproute2
