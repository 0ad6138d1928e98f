#!/bin/sh
# Builds, on the operator's machine, everything the Vagrant fleet needs, into
# vagrant/build/ (what `make vagrant-artifacts` runs). The VMs download
# nothing but Debian packages: they get these files through /vagrant.
#
#   id_ed25519, id_ed25519.pub   the operator's SSH key; provisioning puts the
#                                .pub in the deploy user's authorized_keys
#   drover-linux-<arch>          drover for the VMs (coordinators; `drover
#                                agent install --bin-dir vagrant/build`)
#   app-1.0.0.tar.gz             release artifacts of the demo app, laid out
#   app-2.0.0.tar.gz             like the lab's (bin/demoapp, bin/restart,
#   app-3.0.0.tar.gz             VERSION); 1.0.0 is installed by provisioning,
#                                2.0.0 is what examples/vagrant.yaml deploys,
#                                3.0.0 is the broken build (/health answers 500)
#   tls/                         the cluster CA, bootstrap token, a server
#                                certificate per coordinator of the topology
#                                and for the host (ctl), a client cert (ops)
#
# Existing keys and certificates are kept (re-running never invalidates what
# the VMs already trust); binaries and artifacts are rebuilt every time.
#
# Usage: vagrant/build-artifacts.sh DROVER   (DROVER: a drover binary that runs
# here, for `drover tls`). Env: GO (default go), VAGRANT_GOARCH (default
# amd64, the architecture of the debian/bookworm64 box), VERSION, COMMIT and
# BUILD_DATE (what `drover version` reports; the Makefile passes its own).
set -eu

drover=${1:?usage: build-artifacts.sh PATH-TO-DROVER}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/vagrant/build
go=${GO:-go}
arch=${VAGRANT_GOARCH:-amd64}
version=${VERSION:-dev}
commit=${COMMIT:-$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || true)}
build_date=${BUILD_DATE:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}
topology=$root/lab/topology.yaml

mkdir -p "$out"
cd "$root"

# The topology's nodes of one role, as "name address" lines. The file keeps
# one node per line ({name: ..., address: ..., role: ...}); the Vagrantfile
# reads the same file with a real YAML parser.
nodes() {
	sed -n "s/^ *- *{\(.*role: *$1[ ,}].*\)$/\1/p" "$topology" |
		sed 's/.*name: *\([^, }]*\).*address: *\([^, }]*\).*/\1 \2/'
}

# 1. The operator's SSH key (no passphrase: it only opens these VMs).
if [ ! -f "$out/id_ed25519" ]; then
	ssh-keygen -q -t ed25519 -N '' -C "drover-vagrant" -f "$out/id_ed25519"
	echo "made $out/id_ed25519"
fi
chmod 600 "$out/id_ed25519"

# 2. Binaries for the VMs: static, linux/$arch.
echo "building drover and the demo app for linux/$arch"
export CGO_ENABLED=0
GOOS=linux GOARCH=$arch "$go" build -trimpath -ldflags "-s -w -X main.version=$version -X main.commit=$commit -X main.buildDate=$build_date" \
	-o "$out/drover-linux-$arch" ./cmd/drover
stage=$out/.stage
rm -rf "$stage"
mkdir -p "$stage"
GOOS=linux GOARCH=$arch "$go" build -trimpath -ldflags "-s -w" -o "$stage/demoapp" ./cmd/demoapp
GOOS=linux GOARCH=$arch "$go" build -trimpath -ldflags "-s -w -X main.broken=true" -o "$stage/demoapp-broken" ./cmd/demoapp

# 3. Release artifacts: bin/demoapp, bin/restart (the fleet's: it restarts the
#    systemd unit), VERSION. Packed at the archive's root (strip_components 0).
artifact() { # VERSION BINARY
	d=$stage/app-$1
	mkdir -p "$d/bin"
	cp "$2" "$d/bin/demoapp"
	cp vagrant/restart.sh "$d/bin/restart"
	chmod 755 "$d/bin/demoapp" "$d/bin/restart"
	echo "$1" >"$d/VERSION"
	tar -C "$d" -czf "$out/app-$1.tar.gz.tmp" bin VERSION
	mv -f "$out/app-$1.tar.gz.tmp" "$out/app-$1.tar.gz"
	echo "made $out/app-$1.tar.gz"
}
artifact 1.0.0 "$stage/demoapp"
artifact 2.0.0 "$stage/demoapp"
artifact 3.0.0 "$stage/demoapp-broken"
rm -rf "$stage"

# 4. TLS for coordinators (VMs c1..c3, or `drover server` on the host as ctl).
tls=$out/tls
if [ ! -f "$tls/ca.crt" ]; then
	"$drover" tls init --dir "$tls" >/dev/null
	echo "made the cluster CA in $tls"
fi
issue() { # KIND NAME [FLAGS...]
	kind=$1 name=$2
	shift 2
	if [ ! -f "$tls/$name.crt" ]; then
		"$drover" tls issue "$kind" "$name" --dir "$tls" "$@" >/dev/null
		echo "issued $tls/$name.crt ($kind)"
	fi
}
nodes coordinator | while read -r name addr; do
	issue server "$name" --ip "$addr"
done
nodes control | while read -r name addr; do
	issue server "$name" --ip "$addr" --ip 127.0.0.1
done
issue client ops

echo "vagrant/build is ready: next, vagrant up (see docs/vagrant.md)"
