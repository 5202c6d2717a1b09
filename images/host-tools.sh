# shellcheck shell=bash
# Sourced by build.sh and boot-test.sh: installs the Debian
# packages a step needs on this (Debian 12, x86_64) machine, and turns on
# arm64 emulation for chroots. Nothing else; no downloads outside apt.

# needs_root: the image steps run apt, chroot and mknod-free mkfs as root.
needs_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "$0: run as root (it installs packages with apt and builds a chroot)" >&2
        exit 1
    fi
}

apt_updated=
# apt_install [-t SUITE] PKG...: installs what is missing, without recommends.
apt_install() {
    local suite=()
    if [ "$1" = -t ]; then
        suite=(-t "$2")
        shift 2
    fi
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    echo "host-tools: apt-get install ${suite[*]} ${missing[*]}"
    if [ -z "$apt_updated" ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${suite[@]}" "${missing[@]}" >/dev/null
}

# The qemu packages come from bookworm-backports: this machine's qemu-utils
# is the backports version, and bookworm's qemu-system-arm would remove it.
backports_source=/etc/apt/sources.list.d/bookworm-backports.sources
ensure_backports() {
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "host-tools: adding $backports_source"
        cat >"$backports_source" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        apt_updated=
    fi
}

# qemu_install PKG...: qemu packages, from backports.
qemu_install() {
    ensure_backports
    apt_install -t bookworm-backports "$@"
}

# enable_arm64_binfmt: lets the kernel run arm64 programs in the chroot
# through qemu-user (binfmt_misc is not even mounted on a fresh machine).
enable_arm64_binfmt() {
    qemu_install qemu-user-static
    apt_install arch-test
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        if [ -e /usr/lib/binfmt.d/qemu-aarch64.conf ]; then
            grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register
        else
            update-binfmts --enable qemu-aarch64
        fi
    fi
    if ! arch-test arm64 >/dev/null; then
        echo "$0: arm64 programs do not run here even with qemu-user (arch-test arm64 failed)" >&2
        exit 1
    fi
}
