#!/bin/bash
# Builds the flashable 64-bit Raspberry Pi image (Pi 3, 3+, 4, 400, Zero 2 W)
# from a clean checkout, on Debian 12 x86_64, as root:
#
#     sudo images/build.sh
#
# Steps: install the host tools with apt; cross-compile ssb-node for aarch64;
# mmdebstrap an arm64 Debian 12 (second stage under qemu-user) with
# raspi-firmware and linux-image-arm64 and the overlay in images/rootfs;
# assemble boot (FAT32, mtools) and root (ext4, mkfs.ext4 -d) partitions into
# one image with sfdisk, with no loop device or mount; compress.
#
# Output in images/out/: ssb-node-pi-arm64.img.xz, its .sha256, and
# ssb-node-pi-arm64.img.bmap (for bmaptool). The uncompressed .img stays too,
# for images/boot-test.sh. Environment: SSB_IMAGE_MIRROR (default
# http://deb.debian.org/debian), SSB_IMAGE_KEEP_WORK=1 keeps the root tree.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
# shellcheck source=host-tools.sh
. "$here/host-tools.sh"
needs_root

out=$here/out
work=$out/work
name=ssb-node-pi-arm64
mirror=${SSB_IMAGE_MIRROR:-http://deb.debian.org/debian}
security=${SSB_IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
boot_mib=256   # boot partition (firmware, kernel, initrd, DTBs: ~90 MiB used)
start_mib=4    # where the first partition starts (erase-block aligned)

t0=$(date +%s)
step() { echo "build: [$(($(date +%s) - t0)) s] $*"; }

step "host tools"
apt_install mmdebstrap dosfstools mtools fdisk e2fsprogs xz-utils bmap-tools \
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross
enable_arm64_binfmt

step "cross-compiling ssb-node for aarch64"
target=aarch64-unknown-linux-gnu
if command -v rustup >/dev/null; then
    rustup target list --installed | grep -qx "$target" || rustup target add "$target" || {
        echo "build: 'rustup target add $target' failed: the aarch64 standard library is needed" >&2
        exit 1
    }
fi
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
cargo build --manifest-path "$src/Cargo.toml" --release --locked --target "$target" -p ssb-node
target_dir=$(cargo metadata --manifest-path "$src/Cargo.toml" --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
node_bin=$target_dir/$target/release/ssb-node
# e_machine 0xb7 (AArch64) at offset 18 of the ELF header.
[ "$(od -An -tx1 -j18 -N2 "$node_bin" | tr -d ' ')" = b700 ] || {
    echo "build: $node_bin is not an aarch64 program" >&2
    exit 1
}

step "arm64 root file system (mmdebstrap)"
rm -rf "$work"
mkdir -p "$work"
# The release profile keeps debug info; the card gets the stripped program.
aarch64-linux-gnu-strip -o "$work/ssb-node" "$node_bin"
packages=(
    systemd systemd-sysv udev kmod
    systemd-resolved systemd-timesyncd
    linux-image-arm64 raspi-firmware initramfs-tools zstd
    fdisk e2fsprogs dosfstools
    iproute2 procps openssh-server
    avahi-daemon
    hostapd wpasupplicant iw wireless-regdb firmware-brcm80211
)
export SSB_IMAGE_NODE_BIN=$work/ssb-node SSB_IMAGE_SRC=$src
mmdebstrap --arch=arm64 --variant=minbase \
    --aptopt='APT::Install-Recommends "false"' \
    --include="$(
        IFS=,
        echo "${packages[*]}"
    )" \
    --essential-hook="tar -C '$here/rootfs' --owner=0 --group=0 -cf - etc/initramfs-tools usr/share/initramfs-tools | tar -C \"\$1\" --no-overwrite-dir --keep-directory-symlink -xf -" \
    --customize-hook="$here/customize-rootfs.sh" \
    bookworm "$work/root" \
    "deb $mirror bookworm main non-free-firmware" \
    "deb $mirror bookworm-updates main non-free-firmware" \
    "deb $security bookworm-security main non-free-firmware"
{
    echo "commit=$(git -C "$src" rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$work/root/etc/ssb-node-image"

step "boot partition (FAT32, mtools)"
boot=$work/boot.img
mkfs.vfat -C -F 32 -n RASPIFIRM "$boot" $((boot_mib * 1024)) >/dev/null
mcopy -s -m -Q -i "$boot" "$work/root/boot/firmware/"* ::/
used_kib=$(du -sk "$work/root/boot/firmware" | cut -f1)
find "$work/root/boot/firmware" -mindepth 1 -delete

step "root partition (ext4, mkfs.ext4 -d)"
root_img=$work/root.img
# What the tree holds plus a quarter, at least 256 MiB free; the first boot
# grows it to fill the card.
tree_mib=$(($(du -sk "$work/root" | cut -f1) / 1024))
root_mib=$((tree_mib + tree_mib / 4 + 256))
rm -f "$root_img"
mkfs.ext4 -q -L RASPIROOT -d "$work/root" "$root_img" "${root_mib}M"

step "image (sfdisk)"
img=$out/$name.img
rm -f "$img" "$img.xz" "$img.xz.sha256" "$img.bmap"
total_mib=$((start_mib + boot_mib + root_mib))
truncate -s "${total_mib}M" "$img"
sfdisk --quiet "$img" <<EOF
label: dos
unit: sectors
$((start_mib * 2048)), $((boot_mib * 2048)), c
$(((start_mib + boot_mib) * 2048)), $((root_mib * 2048)), 83
EOF
dd if="$boot" of="$img" bs=1M seek="$start_mib" conv=notrunc,sparse status=none
dd if="$root_img" of="$img" bs=1M seek=$((start_mib + boot_mib)) conv=notrunc,sparse status=none
[ "${SSB_IMAGE_KEEP_WORK:-}" = 1 ] || rm -rf "$work"

step "bmap, xz, sha256"
bmaptool -q create -o "$img.bmap" "$img"
xz -T0 -6 -k -f "$img"
(cd "$out" && sha256sum "$name.img.xz" >"$name.img.xz.sha256")

step "done"
ls -l "$out"
echo "build: boot partition: ${used_kib} KiB used of ${boot_mib} MiB; root: ${tree_mib} MiB in ${root_mib} MiB"
echo "build: $(($(date +%s) - t0)) s in all"
