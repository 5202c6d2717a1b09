#!/bin/bash
# Builds the Debian package of the node, for Debian 12 and Raspberry Pi OS
# (bookworm), with dpkg-deb:
#
#     images/deb.sh [--arch amd64|arm64] [--bin PATH] [--out DIR]
#
# --arch: the package's architecture (default: this machine's, amd64). arm64
#   cross-compiles with Debian's aarch64 gcc (gcc-aarch64-linux-gnu
#   libc6-dev-arm64-cross, installed with apt when run as root).
# --bin: package this ssb-node program instead of building a release one
#   (it must be for --arch; the test suite passes its own build).
# --out: where the .deb goes (default images/out).
# SSB_DEB_COMPRESSION: dpkg-deb's -Z (default xz; the test uses gzip, faster).
#
# The package: /usr/bin/ssb-node; ssb-node.service (the image's unit) enabled
# on install; the udev stick rule and its mount helper; the system user
# ssb-node (sysusers.d, made in postinst, removed on purge); the config
# /etc/ssb-node/ssb-node.toml (a conffile) linked from the data dir
# /var/lib/ssb-node. Prints the path of the .deb as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
# shellcheck source=host-tools.sh
. "$here/host-tools.sh"

arch=$(dpkg --print-architecture)
bin=
out=$here/out
while (($#)); do
    case "$1" in
        --arch) arch=${2:?--arch needs amd64 or arm64}; shift 2 ;;
        --bin) bin=${2:?--bin needs a path}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        *) echo "deb: unknown argument '$1' (see the top of $0)" >&2; exit 2 ;;
    esac
done
case "$arch" in
    amd64) target=x86_64-unknown-linux-gnu strip=strip machine=3e00 ;;
    arm64) target=aarch64-unknown-linux-gnu strip=aarch64-linux-gnu-strip machine=b700 ;;
    *) echo "deb: --arch must be amd64 or arm64, not '$arch'" >&2; exit 2 ;;
esac
command -v dpkg-deb >/dev/null || { echo "deb: dpkg-deb is missing (Debian's dpkg package)" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$src/node/Cargo.toml" | head -n1)
[ -n "$version" ] || { echo "deb: no version in node/Cargo.toml" >&2; exit 1; }

if [ -z "$bin" ]; then
    if [ "$arch" = arm64 ]; then
        if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
            needs_root
            apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross
        fi
        if command -v rustup >/dev/null; then
            rustup target list --installed | grep -qx "$target" || rustup target add "$target"
        fi
        export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
        export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    fi
    cargo build --manifest-path "$src/Cargo.toml" --release --locked --target "$target" -p ssb-node
    target_dir=$(cargo metadata --manifest-path "$src/Cargo.toml" --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    bin=$target_dir/$target/release/ssb-node
fi
[ -f "$bin" ] || { echo "deb: no program at $bin" >&2; exit 1; }
# e_machine at offset 18 of the ELF header: 0x3e x86-64, 0xb7 AArch64.
[ "$(od -An -tx1 -j18 -N2 "$bin" | tr -d ' ')" = "$machine" ] || {
    echo "deb: $bin is not an $arch program" >&2
    exit 1
}

stage=$(mktemp -d "${TMPDIR:-/tmp}/ssb-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
pkg=$stage/pkg
rootfs=$here/rootfs
install -d "$pkg/DEBIAN" "$pkg/usr/bin"
"$strip" -o "$pkg/usr/bin/ssb-node" "$bin"
chmod 0755 "$pkg/usr/bin/ssb-node"
# Only the C libraries every Debian has: libc and libgcc_s.
needed=$(LC_ALL=C objdump -p "$pkg/usr/bin/ssb-node" | sed -n 's/^ *NEEDED *//p' | sort | tr '\n' ' ')
for lib in $needed; do
    case "$lib" in
        libc.so.6 | libm.so.6 | libgcc_s.so.1 | ld-linux-*.so.* | libpthread.so.0 | libdl.so.2) ;;
        *) echo "deb: ssb-node needs $lib, which the package does not depend on" >&2; exit 1 ;;
    esac
done
install -D -m 0644 "$rootfs/usr/lib/systemd/system/ssb-node.service" "$pkg/usr/lib/systemd/system/ssb-node.service"
install -D -m 0644 "$rootfs/usr/lib/udev/rules.d/90-ssb-node-sticks.rules" "$pkg/usr/lib/udev/rules.d/90-ssb-node-sticks.rules"
install -D -m 0755 "$rootfs/usr/libexec/ssb-node/stick-mount" "$pkg/usr/libexec/ssb-node/stick-mount"
install -D -m 0644 "$rootfs/usr/lib/sysusers.d/ssb-node.conf" "$pkg/usr/lib/sysusers.d/ssb-node.conf"
install -D -m 0644 "$here/deb/ssb-node.toml" "$pkg/etc/ssb-node/ssb-node.toml"
install -D -m 0644 "$src/README.md" "$pkg/usr/share/doc/ssb-node/README.md"
cat >"$pkg/usr/share/doc/ssb-node/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ssb-sneakernet

Files: *
License: MIT or Apache-2.0
 On Debian systems the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
for s in postinst prerm postrm; do
    install -m 0755 "$here/deb/$s" "$pkg/DEBIAN/$s"
done
echo /etc/ssb-node/ssb-node.toml >"$pkg/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<EOF
Package: ssb-node
Version: $version
Architecture: $arch
Maintainer: ssb-sneakernet developers <ssb-sneakernet@localhost>
Installed-Size: $size
Depends: libc6 (>= 2.34), libgcc-s1, systemd, init-system-helpers (>= 1.58)
Section: net
Priority: optional
Description: Secure Scuttlebutt node for small hardware, with USB-stick sneakernet
 ssb-node replicates Secure Scuttlebutt feeds and blobs with peers on the
 LAN (the SSB protocol, LAN discovery) and through signed bundles on USB
 sticks, which its udev rule mounts when they are plugged in. It runs as
 the systemd service ssb-node.service, as the user ssb-node, with its data
 in /var/lib/ssb-node and its config in /etc/ssb-node/ssb-node.toml.
 Purging the package deletes /var/lib/ssb-node, the node's identity with it.
EOF
mkdir -p "$out"
deb=$out/ssb-node_${version}_$arch.deb
dpkg-deb --root-owner-group -Z"${SSB_DEB_COMPRESSION:-xz}" --build "$pkg" "$deb" >/dev/null
echo "$deb"
