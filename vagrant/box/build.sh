#!/bin/sh
# Builds the Debian 12 libvirt box of the offline/CI Vagrant fleet
# (docs/vagrant.md), without downloading a box: mmdebstrap on this machine
# (Debian packages from the mirror, nothing else), everything the VMs run
# baked in, so that provisioning needs no network inside the VMs.
#
#   vagrant/box/build.sh [CACHE_DIR]     (root; default /var/cache/drover-vagrant)
#
# Prints the path of the box on stdout (and nothing else: its progress goes
# to stderr), exit status non-zero when it fails:
#   CACHE_DIR/box/drover-bookworm64-<hash>.box
# and leaves the box's kernel and initrd beside it (<same>.vmlinuz,
# <same>.initrd): vagrant/e2e.sh boots the VMs from them directly
# (DROVER_LIBVIRT_KERNEL) and the kernel alone to see whether KVM works.
# <hash> is the sha256 (12 digits) of this script and customize.sh without
# their comments: the box is rebuilt only when they change (its package list, its image layout), and a box
# that exists is reused as is. Idempotent; a half-built box is never left
# under its final name.
#
# How (each step avoids what does not work in a container without loop
# devices, measured on Debian 12):
#   1. mmdebstrap into a directory: systemd, openssh-server, sudo, haproxy,
#      socat, curl, rsync, ifupdown, Debian's cloud kernel (an initrd with only
#      virtio_pci and virtio_blk: ext4 is built in); a `vagrant` user with
#      Vagrant's public insecure key (Vagrant replaces it at the first `up`)
#      and passwordless sudo; SSH host keys made at first boot, not baked in.
#   2. mkfs.ext4 -d: the ext4 file system straight from the directory (no
#      loop mount).
#   3. a disk image with one MBR partition; GRUB (BIOS) written with
#      grub-mkimage + dd (grub-install refuses loop devices and files).
#   4. qemu-img to qcow2 (not compressed: the VMs would inflate every
#      cluster they read, and under software emulation CPU is what is short), packed as a libvirt box: metadata.json
#      and box.img.
# Needs: mmdebstrap, e2fsprogs, fdisk (sfdisk), grub-pc-bin, qemu-utils
# (`scripts/deps.sh vagrant` installs them). Env: DROVER_BOX_MIRROR (default
# http://deb.debian.org/debian), DROVER_BOX_SECURITY_MIRROR.
set -eu

cache=${1:-/var/cache/drover-vagrant}
here=$(cd "$(dirname "$0")" && pwd)
hash=$(cat "$here/build.sh" "$here/customize.sh" | grep -v '^[[:space:]]*#' | sha256sum | cut -c1-12)
name=drover-bookworm64-$hash
out=$cache/box/$name.box

if [ -f "$out" ] && [ -f "${out%.box}.vmlinuz" ] && [ -f "${out%.box}.initrd" ]; then
	echo "box: reusing $out" >&2
	echo "$out"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "box: building the box needs root (mmdebstrap, file ownership in the image)" >&2
	exit 1
fi

# From here on, everything the tools print goes to stderr (mkfs.ext4 talks
# on stdout even with -q); only the box's path goes to stdout, on fd 3.
exec 3>&1 1>&2
mirror=${DROVER_BOX_MIRROR:-http://deb.debian.org/debian}
security=${DROVER_BOX_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
vagrant_pub=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -n1 || true)
if [ -z "$vagrant_pub" ]; then
	echo "box: Vagrant's insecure public key (keys/vagrant.pub of the vagrant package) not found" >&2
	exit 1
fi

# What the VMs of every role run (vagrant/provision-*.sh install nothing
# when these are present).
packages="systemd systemd-sysv udev dbus dbus-user-session libpam-systemd
openssh-server sudo ifupdown isc-dhcp-client iproute2 netbase procps kmod
ca-certificates curl socat haproxy rsync tar less linux-image-cloud-amd64"

work=$cache/box/.build-$hash.$$
trap 'rm -rf "$work"' EXIT INT TERM
rm -rf "$work"
mkdir -p "$work"
start=$(date +%s)

echo "box: mmdebstrap bookworm ($mirror)" >&2
# The .debs are kept in CACHE_DIR/debs for the next build (mmdebstrap's
# sync-in/sync-out): a rebuild downloads only what changed.
mkdir -p "$cache/debs"
mmdebstrap --quiet --variant=apt --include="$(echo $packages | tr ' ' ,)" \
	--dpkgopt=path-exclude=/usr/share/doc/* --dpkgopt=path-exclude=/usr/share/man/* \
	--dpkgopt=path-exclude=/usr/share/locale/* --dpkgopt=path-exclude=/usr/share/info/* \
	--setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
	--essential-hook='mkdir -p "$1"/etc/initramfs-tools/conf.d "$1"/usr/share/initramfs-tools/modules.d' \
	--essential-hook='echo MODULES=list >"$1"/etc/initramfs-tools/conf.d/drover.conf' \
	--essential-hook='printf "virtio_pci\nvirtio_blk\n" >"$1"/usr/share/initramfs-tools/modules.d/drover' \
	--setup-hook="sync-in $cache/debs /var/cache/apt/archives" \
	--customize-hook="sync-out /var/cache/apt/archives $cache/debs" \
	--customize-hook="$here/customize.sh \"\$1\" $vagrant_pub" \
	bookworm "$work/root" \
	"deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security bookworm-security main" >&2

kernel=$(cd "$work/root/boot" && ls vmlinuz-* | sort -V | tail -n1)
initrd=initrd.img-${kernel#vmlinuz-}
[ -f "$work/root/boot/$initrd" ] || { echo "box: no $initrd in the image" >&2; exit 1; }
# The initrd loads only what finds the root file system (MODULES=list):
# the cloud kernel has ext4 built in, virtio as modules.
chroot "$work/root" lsinitramfs "/boot/$initrd" | grep -q '/virtio_blk\.ko' || { echo "box: no virtio_blk in $initrd" >&2; exit 1; }
mkdir -p "$work/root/boot/grub"
cat >"$work/root/boot/grub/grub.cfg" <<EOF
set timeout=0
linux /boot/$kernel root=/dev/vda1 ro net.ifnames=0 biosdevname=0 console=ttyS0,115200 console=tty0 quiet
initrd /boot/$initrd
boot
EOF

cp "$work/root/boot/$kernel" "$work/vmlinuz"
cp "$work/root/boot/$initrd" "$work/initrd"
echo "box: root file system in $(($(date +%s) - start)) s; ext4 image and GRUB" >&2
disk_mib=4096 # the VMs' disk; qcow2 stores what is used
part_start=2048 # sectors: 1 MiB, room for GRUB's core.img after the MBR
fs_mib=$((disk_mib - 1))
mkfs.ext4 -q -L drover-root -d "$work/root" "$work/root.ext4" "${fs_mib}M"
truncate -s "${disk_mib}M" "$work/disk.raw"
echo "start=$part_start, type=83, bootable" | sfdisk --quiet "$work/disk.raw"
grub-mkimage -O i386-pc -o "$work/core.img" -p '(hd0,msdos1)/boot/grub' \
	biosdisk part_msdos ext2 normal linux boot configfile echo
# boot.img's first 440 bytes (the partition table stays), core.img from
# sector 1 (boot.img's default: it loads sector 1; grub-mkimage fills in
# core.img's own length), the file system at the partition.
dd if=/usr/lib/grub/i386-pc/boot.img of="$work/disk.raw" bs=440 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$work/disk.raw" bs=512 seek=1 conv=notrunc status=none
dd if="$work/root.ext4" of="$work/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
rm -rf "$work/root" "$work/root.ext4"

echo "box: disk image in $(($(date +%s) - start)) s; qcow2 and box" >&2
mkdir -p "$work/box"
qemu-img convert -O qcow2 "$work/disk.raw" "$work/box/box.img"
rm -f "$work/disk.raw"
printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %d}\n' $((disk_mib / 1024)) >"$work/box/metadata.json"
tar -C "$work/box" -cf "$work/box.tar" metadata.json box.img
mv -f "$work/vmlinuz" "${out%.box}.vmlinuz"
mv -f "$work/initrd" "${out%.box}.initrd"
mv -f "$work/box.tar" "$out"
# Boxes of older versions of this script: nothing uses them any more.
for old in "$cache"/box/drover-bookworm64-*; do
	case "$old" in "${out%.box}".*) ;; *) rm -f "$old" ;; esac
done
echo "box: built $out ($(du -m "$out" | cut -f1) MB) in $(($(date +%s) - start)) s" >&2
echo "$out" >&3
