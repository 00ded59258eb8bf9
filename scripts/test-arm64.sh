#!/bin/sh
# The Raspberry Pi OS 64-bit build (real LED, touchscreen on linuxkms, Bluetooth LE), run under
# qemu-user: `lampi --version`, a headless screenshot, `lampi ble` with no BlueZ, then a short
# run with the simulated LED that takes a set_config from a real Mosquitto and reports it.
# Usage: scripts/test-arm64.sh   (builds target/aarch64-unknown-linux-gnu/release/lampi first)
set -eu
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu
scripts/cross-deps.sh "$target"
scripts/deps.sh qemu-user mosquitto mosquitto-clients
cargo build --release --target "$target" --no-default-features --features rpi,linuxkms,ble,ble-client
bin="target/$target/release/lampi"
# The binary links the target's multiarch libraries (libinput, udev…), which come with the
# multiarch glibc in /lib/aarch64-linux-gnu; the cross toolchain's own copy in
# /usr/aarch64-linux-gnu is a different build, and mixing the two hangs the first thread start.
qemu="qemu-aarch64"

version=$($qemu "$bin" --version)
echo "under qemu: $version"
echo "$version" | grep -q "^lampi $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1) "

dir=$(mktemp -d)
broker="" lamp=""
cleanup() {
    [ -n "$lamp" ] && kill "$lamp" 2>/dev/null
    [ -n "$broker" ] && kill "$broker" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
# The screen renders on arm64 as it does here: a PNG of the clock, 800 x 480.
$qemu "$bin" --config /dev/null screenshot --screen home --out "$dir/home.png"
python3 -c 'import struct, sys; d = open(sys.argv[1], "rb").read(24); assert d[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", d[16:24]) == (800, 480), d' "$dir/home.png"
echo "arm64 under qemu: screenshot rendered"
# Bluetooth LE is built in; with no BlueZ on a system bus here, `lampi ble` says so and exits
# 69 (EX_UNAVAILABLE) rather than hanging or crashing.
set +e
DBUS_SYSTEM_BUS_ADDRESS="unix:path=$dir/no-bus" $qemu "$bin" ble scan --scan-time 1 2>"$dir/ble.err"
status=$?
set -e
cat "$dir/ble.err"
[ "$status" -eq 69 ] || { echo "lampi ble scan without BlueZ exited $status, expected 69" >&2; exit 1; }
echo "arm64 under qemu: lampi ble reports no Bluetooth"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
user=""; [ "$(id -u)" -eq 0 ] && user="user root"
printf 'listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n%s\n' "$port" "$user" > "$dir/mosquitto.conf"
mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
broker=$!
for _ in $(seq 50); do
    mosquitto_pub -p "$port" -t lampi-test/ping -m up 2>/dev/null && break
    sleep 0.1
done
printf '[device]\nid = "arm64"\n[mqtt]\nhost = "127.0.0.1"\nport = %s\n[led]\nswatch = false\n' "$port" > "$dir/lampi.toml"
RUST_LOG=warn $qemu "$bin" --config "$dir/lampi.toml" run --sim --no-ui --state-dir "$dir/state" >"$dir/lampi.log" 2>&1 &
lamp=$!

# The lamp announces itself (retained), then answers a set_config.
mosquitto_sub -p "$port" -t lamp/changed -C 1 -W 60 >/dev/null
mosquitto_sub -p "$port" -t lamp/changed -W 30 > "$dir/changed" &
watcher=$!
sleep 1
mosquitto_pub -p "$port" -t lamp/set_config -m '{"brightness": 0.25, "client": "qemu"}'
for _ in $(seq 60); do
    grep -q '"brightness":0.25' "$dir/changed" && break
    sleep 0.5
done
kill "$watcher" 2>/dev/null || true
grep '"brightness":0.25' "$dir/changed"
echo "arm64 under qemu: set_config answered"
