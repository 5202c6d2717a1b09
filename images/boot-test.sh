#!/bin/bash
# Boots a copy of the built image under qemu-system-aarch64 -M virt (Debian's
# arm64 kernel and initrd from the image's own boot partition; no KVM, so
# everything is emulated) and checks it from this host:
#
#  boot 1 (first boot): the first-boot unit grows the root file system and
#    makes an identity (read from the console); ssb-node.service starts
#    (Type=notify, so only after READY=1); SSH is off (no banner); the node
#    answers on the forwarded SSB port: `ssb-node sync` sends it 20 messages
#    of a host feed that the boot partition's ssb-node.toml tells it to
#    replicate. Then Ctrl-Alt-Del: a clean reboot (qemu exits on it).
#  boot 2: authorized_keys on the boot partition turns SSH on; through it:
#    the service is active with no restart (the watchdog is fed), no first
#    boot again, the same identity; a fresh host node syncs the 20 messages
#    back from it (they survived the reboot, and so did the identity); the
#    node's status shows the heartbeat (`led: idle`); a FAT stick plugged
#    into the emulated USB controller is mounted under /media/SSBSTICK with
#    `flush`, visible inside the node's mount namespace, synced by the node
#    with no command typed (status: done, safe to pull; LED stick-done), and
#    unmounted when pulled (status back to idle); the stick's bundles then
#    give a fresh host node the 20 messages; idle RSS and CPU of the node
#    over 60 s.
#    Then `systemctl poweroff`, checked to stop the node cleanly.
#
#     sudo images/boot-test.sh [IMAGE]     (default images/out/ssb-node-pi-arm64.img)
#
# Takes about 10 minutes here (2 cores, software emulation). Prints the
# figures; exits non-zero at the first failed check, with the console log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
# shellcheck source=host-tools.sh
. "$here/host-tools.sh"
image=${1:-$here/out/ssb-node-pi-arm64.img}
[ -f "$image" ] || {
    echo "boot-test: no image at $image (build one with images/build.sh)" >&2
    exit 1
}
boot_timeout=${SSB_BOOT_TIMEOUT:-900}
messages=20

if ! command -v qemu-system-aarch64 >/dev/null || ! command -v mcopy >/dev/null ||
    ! command -v ssh >/dev/null || ! command -v mkfs.vfat >/dev/null; then
    needs_root
    qemu_install qemu-system-arm
    apt_install mtools openssh-client dosfstools fdisk
fi

t0=$(date +%s)
say() { echo "boot-test: [$(($(date +%s) - t0)) s] $*"; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ssb-boot-test.XXXXXX")
qemu_pid=
console=
cleanup() {
    if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
    fi
    if [ "${SSB_BOOT_KEEP:-}" = 1 ]; then
        echo "boot-test: work dir kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
fail() {
    echo "boot-test: FAILED: $*" >&2
    if [ -n "$console" ] && [ -f "$console" ]; then
        echo "---- last 80 console lines ($console) ----" >&2
        plain "$console" | tail -n 80 >&2
    fi
    exit 1
}
# The console without colour codes and carriage returns.
plain() { sed -e 's/\x1b\[[0-9;]*[A-Za-z]//g' -e 's/\r//g' "$1"; }

# SSB_BOOT_RASPI_ONLY=1: only the raspi3b boot (no host node needed).
# SSB_HOST_NODE: a host ssb-node build to use instead of building one.
ssb=${SSB_HOST_NODE:-}
if [ "${SSB_BOOT_RASPI_ONLY:-}" != 1 ] && [ -z "$ssb" ]; then
    say "host ssb-node"
    cargo build --manifest-path "$src/Cargo.toml" --release --locked -p ssb-node 2>&1 | tail -n 1
    target_dir=$(cargo metadata --manifest-path "$src/Cargo.toml" --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    ssb="$target_dir/release/ssb-node"
fi

say "disk: a copy of $(basename "$image"), 1 GiB larger (for the first boot to grow into)"
disk=$work/disk.img
cp --sparse=always "$image" "$disk"
truncate -s +1G "$disk"
boot_start=$(sfdisk -d "$disk" | sed -n 's/^.*1 : start= *\([0-9]*\),.*/\1/p')
[ -n "$boot_start" ] || fail "no boot partition in $image"
bootfs="$disk@@$((boot_start * 512))"
# The kernel and initrd the Pi firmware would load (config.txt names them).
config_txt=$(mtype -i "$bootfs" ::config.txt | tr -d '\r')
kernel=$(sed -n 's/^kernel=//p' <<<"$config_txt" | tail -n1)
initrd=$(sed -n 's/^initramfs \([^ ]*\).*/\1/p' <<<"$config_txt" | tail -n1)
{ [ -n "$kernel" ] && [ -n "$initrd" ]; } || fail "config.txt names no kernel or initramfs"
mcopy -n -i "$bootfs" "::$kernel" "$work/vmlinuz"
mcopy -n -i "$bootfs" "::$initrd" "$work/initrd.img"
cmdline=$(mtype -i "$bootfs" ::cmdline.txt | tr -d '\r\n')
# The Pi's serial console is ttyS1/ttyAMA0 and the root is by label: keep
# the root, use qemu's PL011 as the console.
root_arg=$(tr ' ' '\n' <<<"$cmdline" | grep '^root=' || true)
[ "$root_arg" = "root=LABEL=RASPIROOT" ] || fail "cmdline.txt has '$root_arg', not root=LABEL=RASPIROOT: $cmdline"

if [ "${SSB_BOOT_RASPI_ONLY:-}" != 1 ]; then
    say "host feed: $messages messages"
    h1=$work/host1
    feed=$("$ssb" --data "$h1" init)
    for i in $(seq 1 "$messages"); do
        printf '{"type":"post","text":"boot test %d"}\n' "$i"
    done | "$ssb" --data "$h1" publish --stdin >/dev/null
    # The node on the card replicates the host feed: the shipped config on the
    # boot partition (which turns the ACT LED on) plus one line, as a user would
    # write it.
    mtype -i "$bootfs" ::ssb-node.toml | tr -d '\r' >"$work/ssb-node.toml"
    grep -qx 'led = "sysfs:ACT"' "$work/ssb-node.toml" ||
        fail "the shipped ssb-node.toml does not set led = \"sysfs:ACT\""
    printf 'replicate = ["%s"]\n' "$feed" >>"$work/ssb-node.toml"
    mcopy -o -i "$bootfs" "$work/ssb-node.toml" ::ssb-node.toml
fi

free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 20000))
        [ -n "$(ss -Htln "sport = :$p")" ] || {
            echo "$p"
            return
        }
    done
}
# Two simulated radios in the guest (mac80211_hwsim, from Debian's kernel):
# wlan0 is the box's, wlan1 the test's phone or network, moved into its own
# network namespace so the traffic goes over the simulated air.
radios="modules-load=mac80211_hwsim mac80211_hwsim.radios=2"
ssb_port=$(free_port)
ssh_port=$(free_port)
monitor=$work/monitor.sock

# boot N: starts qemu on the disk; the console goes to $work/console-N.log.
boot() {
    console=$work/console-$1.log
    rm -f "$monitor"
    qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 \
        -kernel "$work/vmlinuz" -initrd "$work/initrd.img" \
        -append "console=ttyAMA0 $root_arg rw rootwait systemd.journald.forward_to_console=1 $radios" \
        -drive "file=$disk,format=raw,if=none,id=hd,cache=unsafe" -device virtio-blk-pci,drive=hd \
        -netdev "user,id=net,hostfwd=tcp:127.0.0.1:$ssb_port-:8008,hostfwd=tcp:127.0.0.1:$ssh_port-:22" \
        -device virtio-net-pci,netdev=net,romfile= \
        -device qemu-xhci,id=xhci -device virtio-keyboard-pci \
        -display none -serial "file:$console" -monitor "unix:$monitor,server,nowait" \
        -no-reboot &
    qemu_pid=$!
    boot_t0=$(date +%s)
}

# wait_console REGEX: until the console shows REGEX; prints the seconds
# since power-on.
wait_console() {
    local deadline=$(($(date +%s) + boot_timeout))
    # (grep without -q: with pipefail, -q's early exit would fail the pipe)
    until plain "$console" 2>/dev/null | grep -E "$1" >/dev/null; do
        kill -0 "$qemu_pid" 2>/dev/null || fail "qemu exited before the console showed /$1/"
        [ "$(date +%s)" -lt "$deadline" ] || fail "no /$1/ on the console within $boot_timeout s"
        sleep 1
    done
    echo $(($(date +%s) - boot_t0))
}

monitor_cmd() {
    python3 - "$monitor" "$1" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
time.sleep(0.3)
s.recv(65536)
s.sendall((sys.argv[2] + "\n").encode())
time.sleep(0.5)
print(s.recv(65536).decode(errors="replace"), end="")
EOF
}

wait_qemu_exit() {
    local deadline=$(($(date +%s) + $1))
    while kill -0 "$qemu_pid" 2>/dev/null; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "qemu still running $1 s after the shutdown request"
        sleep 1
    done
    wait "$qemu_pid" || true
    qemu_pid=
}

started='systemd\[1\]: Started ssb-node\.service'

# guest COMMAND…: runs it on the booted box over SSH (from boot 2 on).
guest() {
    ssh -q -p "$ssh_port" -i "$work/id" -o BatchMode=yes -o ConnectTimeout=30 \
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1 "$@"
}
# node_status: what `ssb-node status` says on the box.
node_status() { guest runuser -u ssb-node -- ssb-node --data /var/lib/ssb-node status; }
# wait_status SECONDS REGEX: until the node's status matches; prints it.
wait_status() {
    local deadline=$(($(date +%s) + $1)) st=
    while :; do
        st=$(node_status 2>&1 || true)
        grep -E "$2" <<<"$st" >/dev/null && break
        [ "$(date +%s)" -lt "$deadline" ] || fail "the node's status never matched /$2/ in $1 s: $st"
        sleep 2
    done
    printf '%s\n' "$st"
}

# Boot 3: a wifi.txt that sets both a network to join and the box's own
# hotspot (saved with CRLF, one bad line). "Farm" is not on the air yet:
# the box tries it, falls back to its hotspot, and says what is wrong in
# the file. Then "Farm" comes up on the second radio: the box finds it in
# its next scan, leaves the hotspot and joins it; no DHCP server there, so
# it takes an IPv4 link-local address, as on a cable with no router, and a
# node on "Farm" syncs with it.
# (SSH: the boot partition's authorized_keys, written by boot 2 or here.)
wifi_fallback_boot() {
    if [ ! -f "$work/id" ]; then
        ssh-keygen -q -t ed25519 -N '' -f "$work/id"
        mcopy -o -i "$bootfs" "$work/id.pub" ::authorized_keys
    fi
    say "boot 3: wifi.txt: join \"Farm\" when in range, else the hotspot \"Village box\"; one bad line"
    printf '%s\r\n' '# boot test' 'country = DE' 'join_ssid = Farm' 'join_passphrase = farmland 42' \
        'hotspot_ssid = Village box' 'hotspot_passphrase = village 42' 'hotspot_channel = 14' >"$work/wifi.txt"
    mcopy -o -i "$bootfs" "$work/wifi.txt" ::wifi.txt
    boot 3
    t_ready3=$(wait_console "$started") || exit 1
    # shellcheck disable=SC2016 # (backquotes of the message, not a command)
    bad_line='wifi problem: wifi.txt: line 7: `hotspot_channel` must be 1 to 13, not `14`'
    wait_console "ssb-node-wifi: $bad_line" >/dev/null || exit 1
    t_fallback3=$(wait_console 'ssb-node-wifi: hotspot "Village box" up on wlan0.*"Farm" not in range') || exit 1
    say "boot 3: READY=1 $t_ready3 s, the bad line named on the console, fallback hotspot up $t_fallback3 s after power-on"
    for _ in $(seq 1 60); do
        guest true 2>/dev/null && break
        sleep 5
    done
    st=$(node_status)
    grep -qF "$bad_line" <<<"$st" ||
        fail "the node's status does not name the bad line: $st"
    grep -qF 'wifi: hotspot "Village box" up on wlan0' <<<"$st" || fail "the node's status shows no fallback hotspot: $st"
    say "boot 3: status: $(grep '^wifi' <<<"$st" | tr '\n' ';')"
    if [ -z "${key:-}" ]; then
        node_id=$(guest runuser -u ssb-node -- ssb-node --data /var/lib/ssb-node whoami)
        key=${node_id#@}
        key=${key%.ed25519}
    fi
    guest sh -s <<'EOF_FARM' || fail "could not start the network \"Farm\" on the second radio"
set -eu
phy=$(cat /sys/class/net/wlan1/phy80211/name)
ip netns add farm
iw phy "$phy" set netns name farm
inf() { ip netns exec farm "$@"; }
inf ip link set lo up
cat >/tmp/farm.conf <<EOC
interface=wlan1
driver=nl80211
ctrl_interface=/run/farm-hostapd
ssid=Farm
country_code=DE
hw_mode=g
channel=1
wpa=2
wpa_key_mgmt=WPA-PSK
rsn_pairwise=CCMP
wpa_passphrase=farmland 42
EOC
inf hostapd -B /tmp/farm.conf >/dev/null
inf ip addr add 169.254.77.1/16 dev wlan1
EOF_FARM
    farm_t0=$(date +%s)
    say "boot 3: \"Farm\" is on the air (second radio, its own namespace)"
    st=$(wait_status 300 '^wifi: joined "Farm" on wlan0$')
    t_join3=$(($(date +%s) - farm_t0))
    box_ll=
    for _ in $(seq 1 60); do
        box_ll=$(guest ip -4 -o addr show dev wlan0 | awk '$4 ~ /^169\.254\./ {sub("/.*", "", $4); print $4}' | head -n1)
        [ -n "$box_ll" ] && break
        sleep 2
    done
    [ -n "$box_ll" ] || fail "the box has no link-local address on \"Farm\": $(guest ip -4 -o addr show dev wlan0)"
    say "boot 3: the box joined \"Farm\" $t_join3 s after it came up; its address there: $box_ll"
    farm=$(guest sh -s -- "$box_ll" "$key" <<'EOF_SYNC'
set -eu
ssb() { ip netns exec farm /usr/bin/ssb-node --data /tmp/farm "$@"; }
ssb init >/dev/null
for i in 1 2 3; do printf '{"type":"post","text":"farm %d"}\n' "$i"; done | ssb publish --stdin >/dev/null
ssb sync "net:$1:8008~shs:$2" --timeout 120
EOF_SYNC
    ) || fail "sync over \"Farm\" failed: $farm"
    grep -q 'sent 3 messages' <<<"$farm" || fail "the node on \"Farm\" did not send its 3 messages: $farm"
    say "boot 3: a node on \"Farm\" synced with the box: $farm"
    say "boot 3: poweroff"
    guest systemctl poweroff || true
    wait_qemu_exit 300
}

# Boot under qemu's raspi3b machine: a fresh copy of the image (first boot),
# grown to a power of two (qemu's SD card needs one); the Pi 3 B device
# tree, kernel and initrd from its boot partition and its cmdline.txt, as
# the Pi firmware hands them over. What qemu cannot run is the firmware
# itself (bootcode.bin, start.elf: VideoCore GPU code reading config.txt),
# so qemu loads those three files the way config.txt names them. The
# console is the mini UART (ttyS1, qemu's second serial port), added to the
# card's `console=tty0`; the device timeout is raised from 90 s because
# emulating four Cortex-A53 cores on a busy host can take longer than that
# to start udev, and the boot partition's mount would time out; no Wi-Fi
# (the Pi's SDIO Wi-Fi chip is not emulated).
raspi_boot() {
    say "raspi3b: a fresh copy of $(basename "$image")"
    rdisk=$work/raspi.img
    cp --sparse=always "$image" "$rdisk"
    local size p=1
    size=$(stat -c %s "$rdisk")
    while [ "$p" -lt "$size" ]; do p=$((p * 2)); done
    truncate -s "$p" "$rdisk"
    local rboot="$rdisk@@$((boot_start * 512))"
    mcopy -n -i "$rboot" ::bcm2837-rpi-3-b.dtb "$work/rpi3b.dtb" || fail "no bcm2837-rpi-3-b.dtb on the boot partition"
    console=$work/console-raspi.log
    qemu-system-aarch64 -M raspi3b -m 1024 \
        -kernel "$work/vmlinuz" -initrd "$work/initrd.img" -dtb "$work/rpi3b.dtb" \
        -append "$cmdline console=ttyS1,115200 systemd.journald.forward_to_console=1 systemd.default_device_timeout_sec=900" \
        -drive "file=$rdisk,format=raw,if=sd,cache=unsafe" \
        -display none -serial null -serial "file:$console" -no-reboot &
    qemu_pid=$!
    boot_t0=$(date +%s)
    local t_id t_ready
    t_id=$(wait_console 'ssb-node-firstboot: identity @') || exit 1
    t_ready=$(wait_console "$started") || exit 1
    local sd
    sd=$(plain "$console" | grep -oE 'mmcblk[0-9]+: mmc[0-9]+:[0-9a-f]+ [^ ]+ [0-9.]+ [GM]iB' | sed -n 1p || true)
    say "raspi3b: identity $t_id s, ssb-node.service started (READY=1) $t_ready s after power-on (card: ${sd:-?})"
    plain "$console" | grep -E 'Failed to start|ssb-node\.service: (Failed|Watchdog)' >/dev/null &&
        fail "a unit failed under raspi3b: $(plain "$console" | grep -E 'Failed to start' | head -n3)"
    t_raspi=$t_ready
    kill "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
    qemu_pid=
    rm -f "$rdisk"
}
if [ "${SSB_BOOT_RASPI_ONLY:-}" = 1 ]; then
    raspi_boot
    echo "boot-test: figures: power-on to READY=1 under -M raspi3b (first boot): $t_raspi s"
    exit 0
fi
# SSB_BOOT_FROM=3: only boot 3 (Wi-Fi fallback and client; a first boot
# then) and the raspi3b boot.
if [ "${SSB_BOOT_FROM:-1}" = 3 ]; then
    wifi_fallback_boot
    raspi_boot
    echo "boot-test: figures: power-on to the fallback hotspot (boot 3): $t_fallback3 s; READY=1 $t_ready3 s"
    echo "boot-test: figures: \"Farm\" on the air to the box joined (boot 3): $t_join3 s"
    echo "boot-test: figures: power-on to READY=1 under -M raspi3b (first boot): $t_raspi s"
    exit 0
fi

say "boot 1 (first boot)"
boot 1
id_line=$(wait_console 'ssb-node-firstboot: identity @') || exit 1
node_id=$(plain "$console" | sed -n 's/.*ssb-node-firstboot: identity \(@[A-Za-z0-9+/=]*\.ed25519\).*/\1/p' | sed -n 1p)
[ -n "$node_id" ] || fail "no identity on the console"
t_ready1=$(wait_console "$started") || exit 1
say "boot 1: identity $node_id after $id_line s; ssb-node.service started (READY=1) $t_ready1 s after power-on"
# The shipped config turns on the ACT LED, which qemu's virt machine lacks:
# the node says so and runs on without it.
wait_console 'status LED unavailable, running without it: opening LED sysfs:ACT' >/dev/null || exit 1
say "boot 1: the node read led = \"sysfs:ACT\" from the boot partition (no such LED under qemu: it runs without)"
# Wi-Fi with no wifi.txt: the default hotspot on the first simulated radio,
# its generated passphrase on the console.
t_hotspot1=$(wait_console 'ssb-node-wifi: hotspot "ssb-[^"]*" up on wlan0') || exit 1
hotspot_line=$(plain "$console" | grep -o 'ssb-node-wifi: wifi: hotspot .*' | sed -n 1p)
grep -qE 'passphrase [a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4} ' <<<"$hotspot_line" ||
    fail "the console shows no generated hotspot passphrase: '$hotspot_line'"
say "boot 1: Wi-Fi hotspot up $t_hotspot1 s after power-on; console: $hotspot_line"
grown=$(plain "$console" | grep -o 'ssb-node-firstboot: root partition .*' | sed -n 1p)
grep -qE 'MiB -> [0-9]+ MiB' <<<"$grown" || fail "the first boot did not report growing the root: '$grown'"
say "boot 1: $grown"

# SSH is off: nothing answers with an SSH banner on the forwarded port.
banner=$(timeout 15 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ssh_port && head -c 4 <&3" 2>/dev/null || true)
[ "$banner" != "SSH-" ] || fail "SSH answers on a fresh image"
say "boot 1: SSH is off (no banner)"

key=${node_id#@}
key=${key%.ed25519}
addr="net:127.0.0.1:$ssb_port~shs:$key"
out=$("$ssb" --data "$h1" sync "$addr" --timeout 300) || fail "sync with the booted node failed"
say "boot 1: $out"
grep -q "sent $messages messages" <<<"$out" || fail "the node did not take the $messages messages: $out"

say "boot 1: Ctrl-Alt-Del (clean reboot)"
monitor_cmd "sendkey ctrl-alt-delete" >/dev/null
wait_qemu_exit 300
plain "$console" | grep -E 'ssb-node\.service: Deactivated successfully' >/dev/null || fail "ssb-node.service was not stopped cleanly on reboot"
plain "$console" | grep -E 'Failed .*ssb-node|ssb-node\.service: (Failed|Watchdog)' >/dev/null && fail "ssb-node.service failed"
say "boot 1: ssb-node.service stopped cleanly"

# Boot 2 with SSH: the boot partition's authorized_keys turns it on.
ssh-keygen -q -t ed25519 -N '' -f "$work/id"
mcopy -o -i "$bootfs" "$work/id.pub" ::authorized_keys

say "boot 2"
boot 2
t_ready2=$(wait_console "$started") || exit 1
say "boot 2: ssb-node.service started $t_ready2 s after power-on"
for _ in $(seq 1 60); do
    guest true 2>/dev/null && break
    sleep 5
done
guest true || fail "SSH with the boot partition's authorized_keys does not work"
plain "$console" | grep 'ssb-node-firstboot: identity' >/dev/null && fail "the first boot ran again"
state=$(guest systemctl is-active ssb-node.service || true)
[ "$state" = active ] || fail "ssb-node.service is '$state'"
# The keeper's web page on port 80, and the box announced by mDNS.
# (one argument: root's login shell, bash, runs it as it is)
web=$(guest 'exec 3<>/dev/tcp/127.0.0.1/80 && printf "GET / HTTP/1.0\r\nHost: ssb-node.local\r\n\r\n" >&3 && head -n 1 <&3' || true)
grep -qE '^HTTP/1\.[01] 200' <<<"$web" || fail "the web page on port 80 answers '$web'"
say "boot 2: the web page answers on port 80: ${web%$'\r'}"
mdns=""
for _ in $(seq 1 30); do
    mdns=$(guest journalctl -u avahi-daemon --no-pager -o cat 2>/dev/null || true)
    grep -q 'Host name is ssb-node.local' <<<"$mdns" && grep -q 'successfully established' <<<"$mdns" && break
    sleep 2
done
grep -q 'Host name is ssb-node.local' <<<"$mdns" || fail "avahi does not announce ssb-node.local: $mdns"
grep -q 'successfully established' <<<"$mdns" || fail "avahi did not establish the web page's service: $mdns"
say "boot 2: mDNS: $(grep -o 'Host name is ssb-node.local' <<<"$mdns" | head -n 1); $(grep -o 'Service "[^"]*" ([^)]*) successfully established' <<<"$mdns" | head -n 1)"
again=$(guest runuser -u ssb-node -- ssb-node --data /var/lib/ssb-node whoami)
[ "$again" = "$node_id" ] || fail "identity changed across the reboot: $node_id -> $again"
say "boot 2: ssb-node.service active, identity kept ($again), status: $(guest systemctl show -p StatusText --value ssb-node.service)"
wait_status 60 '^led: idle$' >/dev/null
t_heartbeat2=$(($(date +%s) - boot_t0))
say "boot 2: node status 'led: idle' (the heartbeat pattern) $t_heartbeat2 s after power-on"
say "boot 2: root file system: $(guest df -h --output=size,used / | tail -n1 | tr -s ' ')"

h2=$work/host2
"$ssb" --data "$h2" init >/dev/null
printf 'replicate = ["%s"]\n' "$feed" >"$h2/ssb-node.toml"
out=$("$ssb" --data "$h2" sync "$addr" --timeout 300) || fail "sync after the reboot failed"
say "boot 2: fresh host node: $out"
grep -q "received $messages messages" <<<"$out" || fail "the messages did not survive the reboot: $out"

# A phone on the hotspot: a wpa_supplicant station on the second radio in
# its own network namespace, with the name and passphrase from the boot
# partition's note; it gets an address by DHCP, hears the node's LAN
# announcements and syncs with it over the simulated air.
note=$(guest cat /boot/firmware/wifi-hotspot.txt | tr -d '\r')
hs_name=$(sed -n 's/^name: //p' <<<"$note")
hs_pass=$(sed -n 's/^passphrase: //p' <<<"$note")
{ [ -n "$hs_name" ] && [ -n "$hs_pass" ]; } || fail "no name and passphrase in wifi-hotspot.txt: $note"
grep -qF "passphrase $hs_pass " <<<"$hotspot_line" || fail "the note's passphrase is not the console's"
say "boot 2: wifi-hotspot.txt on the boot partition names \"$hs_name\" with the console's passphrase"
st=$(node_status)
grep -qF "wifi: hotspot \"$hs_name\" up on wlan0" <<<"$st" || fail "the node's status shows no hotspot: $st"
phone=$(guest sh -s -- "$hs_name" "$hs_pass" "$key" <<'EOF_PHONE'
set -eu
name=$1 pass=$2 key=$3
phy=$(cat /sys/class/net/wlan1/phy80211/name)
ip netns add phone
iw phy "$phy" set netns name phone
inp() { ip netns exec phone "$@"; }
inp ip link set lo up
cat >/tmp/phone.conf <<EOC
ctrl_interface=/run/phone-wpa
network={
	ssid="$name"
	psk="$pass"
	key_mgmt=WPA-PSK
}
EOC
t0=$(date +%s)
inp wpa_supplicant -B -i wlan1 -c /tmp/phone.conf >/dev/null 2>&1
i=0
until inp wpa_cli -p /run/phone-wpa -i wlan1 status | grep -qx 'wpa_state=COMPLETED'; do
    i=$((i + 1)); [ "$i" -lt 60 ] || { echo "phone: not associated in 30 s"; exit 1; }
    sleep 0.5
done
echo "phone: associated after $(($(date +%s) - t0)) s"
inp /usr/lib/klibc/bin/ipconfig -t 30 -c dhcp -d wlan1 >/tmp/phone-dhcp.log 2>&1 || { cat /tmp/phone-dhcp.log; exit 1; }
addr=$(inp ip -4 -o addr show dev wlan1 | awk '{print $4}')
echo "phone: DHCP address $addr after $(($(date +%s) - t0)) s"
ssb() { inp /usr/bin/ssb-node --data /tmp/phone "$@"; }
ssb init >/dev/null
for i in 1 2 3 4 5; do printf '{"type":"post","text":"phone %d"}\n' "$i"; done | ssb publish --stdin >/dev/null
echo "phone: sync: $(ssb sync "net:10.42.0.1:8008~shs:$key" --timeout 120)"
# LAN discovery over the hotspot: the phone's node and the box hear each
# other's announcements and one dials the other (`peers` shows it, source
# lan or incoming).
# (`ip netns exec` execs the node, so $! is the node itself; it watches
# no mount root of the box's.)
ip netns exec phone /usr/bin/ssb-node --data /tmp/phone run --listen 0.0.0.0:8008 \
    --mount-root /tmp/phone-sticks >/tmp/phone-run.log 2>&1 &
run=$!
heard=
for _ in $(seq 1 20); do
    if ssb peers 2>/dev/null | grep -q "$key"; then heard=1; break; fi
    sleep 1
done
echo "phone: LAN discovery: the two nodes found each other: $(ssb peers 2>/dev/null | grep "$key" | head -n1)"
kill "$run"; wait "$run" || true
[ -n "$heard" ] || { echo "phone: the nodes never found each other by LAN discovery"; exit 1; }
EOF_PHONE
) || fail "the phone on the hotspot failed: $phone"
say "boot 2: $(tr '\n' ';' <<<"$phone")"
grep -q 'phone: DHCP address 10\.42\.0\.' <<<"$phone" || fail "the phone got no 10.42.0.x address: $phone"
grep -q 'phone: sync: .*sent 5 messages' <<<"$phone" || fail "the phone's 5 messages did not reach the node: $phone"

say "boot 2: plugging a FAT stick (label SSBSTICK) into the USB controller"
mkfs.vfat -C -n SSBSTICK "$work/stick.img" 65536 >/dev/null
echo "hello from the host" >"$work/hello.txt"
mcopy -i "$work/stick.img" "$work/hello.txt" ::hello.txt
monitor_cmd "drive_add 0 if=none,id=stick,format=raw,file=$work/stick.img" >/dev/null
monitor_cmd "device_add usb-storage,bus=xhci.0,drive=stick,id=stickdev" >/dev/null
opts=
for _ in $(seq 1 60); do
    opts=$(guest findmnt -n -o OPTIONS /media/SSBSTICK 2>/dev/null || true)
    [ -n "$opts" ] && break
    sleep 2
done
[ -n "$opts" ] || fail "the stick was not mounted at /media/SSBSTICK"
grep -q 'flush' <<<"$opts" || fail "the stick is mounted without flush: $opts"
[ "$(guest cat /media/SSBSTICK/hello.txt)" = "hello from the host" ] || fail "the stick's file does not read back"
pid=$(guest systemctl show -p MainPID --value ssb-node.service)
guest grep -q "' /media/SSBSTICK '" "/proc/$pid/mountinfo" ||
    fail "the stick's mount is not visible in the node's mount namespace"
say "boot 2: stick mounted ($opts), visible to the node"
# The node notices the stick by itself and writes it what it lacks: the
# host feed's messages it holds since boot 1.
st=$(wait_status 180 '^stick /media/SSBSTICK: done .*safe to pull')
grep -q '^led: stick-done$' <<<"$st" || fail "the LED pattern is not stick-done: $st"
say "boot 2: the node synced the stick by itself: $(grep '^stick /media/SSBSTICK' <<<"$st")"
monitor_cmd "device_del stickdev" >/dev/null
gone=
for _ in $(seq 1 60); do
    guest mountpoint -q /media/SSBSTICK || {
        gone=1
        break
    }
    sleep 2
done
[ -n "$gone" ] || fail "the stick stayed mounted after it was pulled"
say "boot 2: stick pulled, unmounted"
st=$(wait_status 60 '^led: idle$')
grep -q '^sticks: none$' <<<"$st" || fail "the pulled stick is still in the status: $st"
say "boot 2: status back to idle (heartbeat), no stick"
# The stick carries the feed on: a fresh host node takes the messages from
# what the appliance wrote to it.
mkdir "$work/stick-copy"
mcopy -s -n -i "$work/stick.img" ::SSB-SNEAKERNET "$work/stick-copy/" ||
    fail "the stick has no SSB-SNEAKERNET folder"
h3=$work/host3
"$ssb" --data "$h3" init >/dev/null
printf 'replicate = ["%s"]\n' "$feed" >"$h3/ssb-node.toml"
out=$("$ssb" --data "$h3" stick sync "$work/stick-copy") || fail "the stick's bundles do not import: $out"
grep -q "imported $messages messages" <<<"$out" || fail "the stick did not carry the $messages messages: $out"
say "boot 2: the stick carried the feed to a fresh host node: $out"

say "boot 2: idle for 60 s"
ticks() { guest "awk '{print \$14 + \$15}' /proc/$pid/stat"; }
hz=$(guest getconf CLK_TCK)
a=$(ticks)
sleep 60
b=$(ticks)
rss=$(guest "awk '/^VmRSS/ {print \$2}' /proc/$pid/status")
restarts=$(guest systemctl show -p NRestarts --value ssb-node.service)
[ "$restarts" = 0 ] || fail "ssb-node.service restarted $restarts times (watchdog?)"
if guest journalctl -u ssb-node.service -b | grep -i watchdog >/dev/null; then fail "watchdog trouble in the journal"; fi
cpu=$(awk -v d=$((b - a)) -v hz="$hz" 'BEGIN { printf "%.2f", 100 * d / hz / 60 }')
say "boot 2: idle node: RSS $((rss / 1024)) MiB ($rss KiB), CPU $cpu % of one emulated core over 60 s ($((b - a)) ticks)"

say "boot 2: poweroff"
guest systemctl poweroff || true
wait_qemu_exit 300
plain "$console" | grep -E 'ssb-node\.service: Deactivated successfully' >/dev/null || fail "ssb-node.service was not stopped cleanly on poweroff"

wifi_fallback_boot

raspi_boot

cat <<EOF
boot-test: PASSED in $(($(date +%s) - t0)) s
boot-test: figures: power-on to ssb-node ready: first boot $t_ready1 s, second boot $t_ready2 s (qemu TCG, 2 vCPUs)
boot-test: figures: power-on to the heartbeat in the node's status (second boot, polled over SSH): $t_heartbeat2 s
boot-test: figures: idle node RSS $((rss / 1024)) MiB, idle CPU $cpu % of one emulated core
boot-test: figures: power-on to the default Wi-Fi hotspot up (first boot): $t_hotspot1 s
boot-test: figures: power-on to the fallback hotspot (boot 3, after 30 s trying "Farm"): $t_fallback3 s; READY=1 $t_ready3 s
boot-test: figures: "Farm" on the air to the box joined (boot 3): $t_join3 s
boot-test: figures: power-on to READY=1 under -M raspi3b (first boot): $t_raspi s
EOF
