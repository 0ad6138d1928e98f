#!/bin/sh
# mmdebstrap's customize hook for vagrant/box/build.sh: run as root outside
# the chroot, on the finished tree.
#
#   customize.sh ROOT VAGRANT_PUB
#
# A `vagrant` user with Vagrant's public insecure key (Vagrant swaps it for
# a key of its own at the first `vagrant up`) and passwordless sudo, what
# every Vagrant box has; eth0 on DHCP (Vagrant's management network;
# net.ifnames=0 on the kernel command line); the root file system on
# /dev/vda1; no SSH host keys and no machine-id in the image: every VM makes
# its own at first boot.
set -eu
root=${1:?usage: customize.sh ROOT VAGRANT_PUB}
pub=${2:?vagrant.pub}

chroot "$root" useradd --create-home --shell /bin/bash --user-group vagrant
chroot "$root" usermod -p '*' vagrant
install -d -m 700 "$root/home/vagrant/.ssh"
install -m 600 "$pub" "$root/home/vagrant/.ssh/authorized_keys"
chroot "$root" chown -R vagrant:vagrant /home/vagrant/.ssh
echo "vagrant ALL=(ALL) NOPASSWD: ALL" >"$root/etc/sudoers.d/vagrant"
chmod 440 "$root/etc/sudoers.d/vagrant"

echo drover-box >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 drover-box\n' >"$root/etc/hosts"
echo "/dev/vda1 / ext4 errors=remount-ro 0 1" >"$root/etc/fstab"
printf 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n' >"$root/etc/network/interfaces"

# One host key, ed25519: `ssh-keygen -A` would also make a 3072-bit RSA key,
# slow to make under software emulation, and sshd waits for it at first boot.
printf 'UseDNS no\nHostKey /etc/ssh/ssh_host_ed25519_key\n' >"$root/etc/ssh/sshd_config.d/vagrant.conf"
rm -f "$root"/etc/ssh/ssh_host_*
cat >"$root/etc/systemd/system/ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=SSH host key of this VM (the box has none)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/ssh-hostkeys.service "$root/etc/systemd/system/multi-user.target.wants/ssh-hostkeys.service"

# Under software emulation every unit at boot costs seconds: no periodic
# jobs (the VMs live minutes), and HAProxy only where provisioning enables
# it (the balancer).
for unit in getty@tty1.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer dpkg-db-backup.timer; do
	ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
rm -f "$root/etc/systemd/system/multi-user.target.wants/haproxy.service"

: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
