#!/bin/bash
# The fast part of the image checks, run by the test suite (tests/image_check.rs;
# well under a minute once ssb-node is built): stages the image's overlay (images/rootfs) with this
# machine's systemd units and a real ssb-node build, then
#  - systemd-analyze verify on the node's units: any warning fails;
#  - systemd-analyze security on ssb-node.service: exposure at most 1.7 (what it is now);
#  - shellcheck on the image scripts (and the overlay's sh scripts);
#  - the first-boot and stick scripts and the .deb's maintainer scripts
#    parse with sh -n.
# Needs systemd-analyze and shellcheck; where one is missing it fails at once
# with one line naming the Debian packages to install (it installs nothing:
# parallel tests would race for the dpkg lock, and a developer may not be root).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)

missing=()
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v shellcheck >/dev/null || missing+=(shellcheck)
if ((${#missing[@]})); then
    echo "check: FAILED: missing tools: install the Debian packages: apt-get install ${missing[*]}" >&2
    exit 1
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/ssb-image-check.XXXXXX")
trap 'rm -rf "$stage"' EXIT
failed=0
bad() {
    echo "check: FAILED: $*" >&2
    failed=1
}

# The staged root: the units systemd ships (the image runs the same systemd
# 252), the overlay on top, and the node where the unit expects it.
mkdir -p "$stage/usr/lib/systemd/system" "$stage/usr/bin"
cp -a /usr/lib/systemd/system/. "$stage/usr/lib/systemd/system/"
tar -C "$here/rootfs" -cf - . | tar -C "$stage" --keep-directory-symlink -xf -
# SSB_NODE_BIN: a built ssb-node (the test suite passes its own); else build one.
node_bin=${SSB_NODE_BIN:-}
if [ -z "$node_bin" ]; then
    cargo build --manifest-path "$src/Cargo.toml" --locked -p ssb-node 2>&1 | tail -n 1
    target_dir=$(cargo metadata --manifest-path "$src/Cargo.toml" --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    node_bin="$target_dir/debug/ssb-node"
fi
install -m 0755 "$node_bin" "$stage/usr/bin/ssb-node"

units=(ssb-node.service ssb-node-firstboot.service ssb-node-wifi.service)
for u in "${units[@]}"; do
    if ! out=$(systemd-analyze --root="$stage" verify "$stage/usr/lib/systemd/system/$u" 2>&1); then
        bad "systemd-analyze verify $u: $out"
    elif [ -n "$out" ]; then
        bad "systemd-analyze verify $u warns: $out"
    else
        echo "check: $u verifies"
    fi
done

exposure=$(systemd-analyze security --offline=yes --root="$stage" ssb-node.service 2>/dev/null |
    sed -n 's/.*Overall exposure level for ssb-node.service: \([0-9.]*\).*/\1/p')
if [ -z "$exposure" ]; then
    bad "systemd-analyze security gave no exposure level"
elif ! awk -v e="$exposure" 'BEGIN { exit !(e <= 1.7) }'; then
    bad "ssb-node.service exposure $exposure > 1.7 (hardening lost?)"
else
    echo "check: ssb-node.service exposure $exposure (at most 1.7)"
fi

# The shipped wifi.txt: every line a comment, so the box runs its default
# hotspot; and `ssb-node wifi plan` (what the Wi-Fi controller runs) reads it
# without a problem and plans that hotspot.
wifi_txt=$here/rootfs/boot/firmware/wifi.txt
if grep -v $'^\r$' "$wifi_txt" | grep -vq '^#'; then
    bad "the shipped wifi.txt sets something: every line should be a comment"
fi
"$stage/usr/bin/ssb-node" --data "$stage/wifi-node" init >/dev/null
if ! plan=$("$stage/usr/bin/ssb-node" --data "$stage/wifi-node" wifi plan --file "$wifi_txt" \
    --passphrase-file "$stage/wifi-state/pass" --out "$stage/wifi-run" --note "$stage/wifi-note" 2>&1); then
    bad "ssb-node wifi plan on the shipped wifi.txt: $plan"
elif grep -q 'problem' <<<"$plan" || ! grep -q '^wifi: hotspot "ssb-' <<<"$plan"; then
    bad "the shipped wifi.txt does not plan the default hotspot cleanly: $plan"
else
    echo "check: wifi.txt (shipped) plans the default hotspot"
fi

scripts=("$here"/*.sh "$here"/rootfs/usr/libexec/ssb-node/* "$here"/deb/postinst "$here"/deb/prerm "$here"/deb/postrm)
for s in "${scripts[@]}"; do
    case "$(head -n1 "$s")" in
        '#!/bin/sh') sh -n "$s" || bad "sh -n $s" ;;
    esac
done
if shellcheck -x -P SCRIPTDIR "${scripts[@]}"; then
    echo "check: shellcheck clean (${#scripts[@]} scripts)"
else
    bad "shellcheck"
fi

if [ "$failed" = 0 ]; then
    echo "check: image overlay OK"
else
    exit 1
fi
