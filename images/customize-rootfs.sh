#!/bin/bash
# mmdebstrap customize hook (see build.sh): turns the fresh arm64 Debian in
# "$1" into the ssb-node appliance. Runs on the host; commands inside the
# target go through chroot (and so qemu-user). Expects SSB_IMAGE_NODE_BIN (the
# aarch64 ssb-node) and SSB_IMAGE_SRC (the checkout) in the environment.
set -euo pipefail
root=$1
: "${SSB_IMAGE_NODE_BIN:?}" "${SSB_IMAGE_SRC:?}"

# The overlay: units, udev rule, first-boot script, config template.
tar -C "$SSB_IMAGE_SRC/images/rootfs" --owner=0 --group=0 -cf - . |
    tar -C "$root" --no-overwrite-dir --keep-directory-symlink -xf -
install -m 0755 "$SSB_IMAGE_NODE_BIN" "$root/usr/bin/ssb-node"
install -D -m 0644 "$SSB_IMAGE_SRC/README.md" "$root/usr/share/doc/ssb-node/README.md"
install -D -m 0644 "$SSB_IMAGE_SRC/images/README.md" "$root/usr/share/doc/ssb-node/IMAGE.md"

# The node's user and data dir. The config in the data dir is a link to the
# boot partition's file; while that file is absent the node uses defaults.
chroot "$root" systemd-sysusers
install -d -m 0700 "$root/var/lib/ssb-node"
ln -sfn /boot/firmware/ssb-node.toml "$root/var/lib/ssb-node/ssb-node.toml"
chroot "$root" chown -h ssb-node:ssb-node /var/lib/ssb-node /var/lib/ssb-node/ssb-node.toml

# Services: the node, its first boot, the network; ssh stays enabled but its
# drop-in keeps it off unless the boot partition has authorized_keys.
chroot "$root" systemctl enable ssb-node.service ssb-node-firstboot.service \
    systemd-networkd.service systemd-resolved.service systemd-timesyncd.service >/dev/null
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
# Wi-Fi: ssb-node-wifi.service starts when wlan0 appears and runs hostapd or
# wpa_supplicant itself; Debian's own units for them stay off (the D-Bus
# wpa_supplicant.service would fail: the image has no D-Bus).
chroot "$root" systemctl enable ssb-node-wifi.service >/dev/null
chroot "$root" systemctl disable wpa_supplicant.service hostapd.service >/dev/null 2>&1 || true
chroot "$root" systemctl mask wpa_supplicant.service hostapd.service >/dev/null

# Nothing machine-specific in the image: systemd makes the machine id on the
# first boot, ssh its host keys when it is first enabled.
echo uninitialized >"$root/etc/machine-id"
rm -f "$root"/etc/ssh/ssh_host_*_key "$root"/etc/ssh/ssh_host_*_key.pub

# The root file system by label, so one image boots as mmcblk0 or mmcblk1
# (and as vda under qemu); cmdline.txt is regenerated from this on every
# kernel update.
sed -i -e 's|^#\?ROOTPART=.*|ROOTPART=LABEL=RASPIROOT|' "$root/etc/default/raspi-firmware"
grep -q '^ROOTPART=LABEL=RASPIROOT' "$root/etc/default/raspi-firmware"
kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sort -V | tail -n1)
DEB_MAINT_PARAMS=configure chroot "$root" /etc/kernel/postinst.d/z50-raspi-firmware "${kernel#vmlinuz-}"
grep -q 'root=LABEL=RASPIROOT' "$root/boot/firmware/cmdline.txt" || {
    echo "customize: cmdline.txt still names another root: $(cat "$root/boot/firmware/cmdline.txt")" >&2
    exit 1
}
