#!/bin/bash
# Installs the amd64 .deb into a fresh Debian 12 chroot and checks it, as
# root (tests/deb_package.rs runs it; about 2 minutes, most of it mmdebstrap
# fetching a minimal Debian with systemd from apt's configured mirror):
#
#     sudo images/deb-test.sh [DEB]     (default: images/deb.sh --arch amd64)
#
# An arm64 DEB is tested in an arm64 chroot under qemu-user (slower).
#
#  - `dpkg -i`: the package is installed; ssb-node.service is enabled (the
#    multi-user.target.wants link, `systemctl --root is-enabled`); the user
#    and group ssb-node exist (system ids, no login shell); program, unit,
#    udev rule, mount helper, sysusers file and the conffile are in place;
#    the data dir is the user's, mode 0700, with its config link; the user
#    can make the node's identity there and the program runs;
#  - `dpkg -i` again over an edited config (an upgrade): the edit is kept,
#    the unit stays enabled, the identity stays;
#  - `dpkg --purge`: the chroot holds exactly the paths it held before the
#    install (dpkg's own records aside), with no ssb-node user or group.
#
# SSB_NODE_BIN: package this ssb-node build (deb.sh --bin) instead of a
# release build. Needs mmdebstrap; without it, fails at once naming it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ "$(id -u)" -ne 0 ]; then
    echo "deb-test: needs root (it builds a chroot and runs dpkg in it)" >&2
    exit 1
fi
missing=()
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v dpkg-deb >/dev/null || missing+=(dpkg)
command -v objdump >/dev/null || missing+=(binutils)
if ((${#missing[@]})); then
    echo "deb-test: FAILED: missing tools: install the Debian packages: apt-get install ${missing[*]}" >&2
    exit 1
fi

t0=$(date +%s)
say() { echo "deb-test: [$(($(date +%s) - t0)) s] $*"; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ssb-deb-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() {
    echo "deb-test: FAILED: $*" >&2
    exit 1
}

deb=${1:-}
if [ -z "$deb" ]; then
    args=(--arch amd64 --out "$work")
    [ -z "${SSB_NODE_BIN:-}" ] || args+=(--bin "$SSB_NODE_BIN")
    deb=$(SSB_DEB_COMPRESSION=gzip "$here/deb.sh" "${args[@]}" | tail -n1)
fi
[ -f "$deb" ] || fail "no package at $deb"
say "package $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"

root=$work/root
# A chroot of the package's architecture (arm64 runs under qemu-user, which
# must be set up: images/host-tools.sh's enable_arm64_binfmt).
arch=$(dpkg-deb -f "$deb" Architecture)
# minbase plus systemd (the package depends on it); apt's own mirrors.
mmdebstrap --quiet --arch="$arch" --variant=minbase --include=systemd \
    --aptopt='APT::Install-Recommends "false"' bookworm "$root" ||
    fail "mmdebstrap could not make a bookworm chroot from apt's configured mirror"
say "fresh bookworm $arch chroot"
in_root() { chroot "$root" "$@"; }
# dpkg-query's format fields, e.g. `query Status`.
query() { in_root dpkg-query -W -f="\${$1}" ssb-node; }

# Everything in the chroot but dpkg's and apt's records and logs.
snapshot() {
    (cd "$root" && find . -xdev \
        -path ./var/lib/dpkg -prune -o -path ./var/log -prune -o \
        -path ./var/cache -prune -o -path ./tmp -prune -o -path ./proc -prune -o \
        -path ./var/lib/systemd/deb-systemd-helper-enabled -prune -o \
        -path ./var/lib/systemd/deb-systemd-helper-masked -prune -o \
        -path ./etc/passwd- -prune -o -path ./etc/group- -prune -o \
        -path ./etc/shadow- -prune -o -path ./etc/gshadow- -prune -o \
        -print | sort)
}
snapshot >"$work/before"
cp "$root/etc/passwd" "$work/passwd.before"
cp "$root/etc/group" "$work/group.before"
# deb-systemd-helper's own state, apart from what it had before.
find "$root/var/lib/systemd" -path '*deb-systemd-helper*' 2>/dev/null | sort >"$work/dsh.before"

cp "$deb" "$root/tmp/ssb-node.deb"
out=$(in_root dpkg -i /tmp/ssb-node.deb 2>&1) || fail "dpkg -i: $out"
say "dpkg -i: installed"

status=$(query Status)
[ "$status" = "install ok installed" ] || fail "dpkg says '$status'"
link=$root/etc/systemd/system/multi-user.target.wants/ssb-node.service
[ "$(readlink "$link")" = /lib/systemd/system/ssb-node.service ] ||
    [ "$(readlink "$link")" = /usr/lib/systemd/system/ssb-node.service ] ||
    fail "no enablement link $link (it is '$(readlink "$link" || true)')"
enabled=$(systemctl --root="$root" is-enabled ssb-node.service 2>&1 || true)
[ "$enabled" = enabled ] || fail "systemctl --root is-enabled says '$enabled'"
say "ssb-node.service enabled"

user=$(in_root getent passwd ssb-node) || fail "no user ssb-node"
IFS=: read -r _ _ uid gid _ home shell <<<"$user"
in_root getent group ssb-node >/dev/null || fail "no group ssb-node"
[ "$uid" -lt 1000 ] || fail "ssb-node is not a system user (uid $uid)"
[ "$home" = /var/lib/ssb-node ] || fail "ssb-node's home is $home"
case "$shell" in */nologin | /bin/false) ;; *) fail "ssb-node has a login shell: $shell" ;; esac
say "user ssb-node: uid $uid, gid $gid, home $home, shell $shell"

for f in /usr/bin/ssb-node /usr/lib/systemd/system/ssb-node.service \
    /usr/lib/udev/rules.d/90-ssb-node-sticks.rules /usr/libexec/ssb-node/stick-mount \
    /usr/lib/sysusers.d/ssb-node.conf /etc/ssb-node/ssb-node.toml; do
    [ -f "$root$f" ] || fail "$f is missing"
done
for f in /usr/bin/ssb-node /usr/libexec/ssb-node/stick-mount; do
    [ -x "$root$f" ] || fail "$f is not executable"
done
conffiles=$(query Conffiles)
grep -q '^ /etc/ssb-node/ssb-node.toml [0-9a-f]\{32\}$' <<<"$conffiles" ||
    fail "/etc/ssb-node/ssb-node.toml is not a conffile: '$conffiles'"
owner=$(in_root stat -c '%U:%G %a' /var/lib/ssb-node)
[ "$owner" = "ssb-node:ssb-node 700" ] || fail "data dir is '$owner'"
[ "$(readlink "$root/var/lib/ssb-node/ssb-node.toml")" = /etc/ssb-node/ssb-node.toml ] ||
    fail "the data dir's ssb-node.toml is not a link to /etc/ssb-node/ssb-node.toml"
version=$(in_root /usr/bin/ssb-node --version) || fail "the installed program does not run"
id=$(in_root runuser -u ssb-node -- /usr/bin/ssb-node --data /var/lib/ssb-node init) ||
    fail "user ssb-node cannot make the identity in /var/lib/ssb-node"
say "files in place, conffile registered; $version; identity $id"

# An upgrade (the same package again) over an edited config.
echo 'hops = 1' >>"$root/etc/ssb-node/ssb-node.toml"
out=$(in_root dpkg -i /tmp/ssb-node.deb 2>&1) || fail "dpkg -i again: $out"
grep -qx 'hops = 1' "$root/etc/ssb-node/ssb-node.toml" || fail "the reinstall dropped the config edit"
[ "$(systemctl --root="$root" is-enabled ssb-node.service 2>&1 || true)" = enabled ] ||
    fail "the unit is no longer enabled after the reinstall"
[ "$(in_root runuser -u ssb-node -- /usr/bin/ssb-node --data /var/lib/ssb-node whoami)" = "$id" ] ||
    fail "the identity changed across the reinstall"
say "reinstall: config edit kept, still enabled, same identity"

out=$(in_root dpkg --purge ssb-node 2>&1) || fail "dpkg --purge: $out"
status=$(query Status 2>/dev/null || true)
case "$status" in '' | 'unknown ok not-installed' | 'purge ok not-installed') ;; *) fail "after purge dpkg says '$status'" ;; esac
snapshot >"$work/after"
if ! diff -u "$work/before" "$work/after" >"$work/diff"; then
    fail "purge left or removed paths: $(grep '^[-+]\.' "$work/diff" | tr '\n' ' ')"
fi
cmp -s "$work/passwd.before" "$root/etc/passwd" || fail "purge left /etc/passwd changed: $(diff "$work/passwd.before" "$root/etc/passwd" | tr '\n' ' ')"
cmp -s "$work/group.before" "$root/etc/group" || fail "purge left /etc/group changed: $(diff "$work/group.before" "$root/etc/group" | tr '\n' ' ')"
find "$root/var/lib/systemd" -path '*deb-systemd-helper*' 2>/dev/null | sort >"$work/dsh.after"
leftover=$(comm -13 "$work/dsh.before" "$work/dsh.after" | while read -r p; do
    [ -d "$p" ] || echo "$p"
done)
[ -z "$leftover" ] || fail "purge left deb-systemd-helper state: $leftover"
say "dpkg --purge: no file, link, user or group of the package left"
echo "deb-test: PASSED in $(($(date +%s) - t0)) s"
