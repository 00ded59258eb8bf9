#!/bin/sh
# The package end to end in a throwaway Debian root made by debootstrap: install; the remote
# update path (a signed reprepro repository served on loopback, desired.firmware.version set
# through the shadow, lampi-update installing it) with a conffile edit kept and the lamp's
# state surviving; a version that does not exist reported as failed; a downgrade refused until
# it is allowed, then done; purge.
# No systemd runs in the root, so the harness does what lampi-update.path and the package's
# restart of lampi.service would (tests/systemd.rs checks the units). Needs root.
# Usage: scripts/test-deb.sh          (LAMPI_DEBIAN_MIRROR overrides deb.debian.org)
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || exec sudo "$0" "$@"
scripts/deps.sh debootstrap reprepro gnupg mosquitto mosquitto-clients python3 lintian
say() { echo "== $*"; }
fail() { echo "test-deb: FAILED: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json_get() { python3 -c 'import json, sys; d = json.load(sys.stdin)
for k in sys.argv[1].split("."): d = d.get(k, {}) if isinstance(d, dict) else {}
print(d if d != {} else "")' "$1"; }

work=$(mktemp -d /var/tmp/lampi-deb.XXXXXX)
root="$work/root"
lamp="" broker="" http=""
cleanup() {
    for pid in $lamp $broker $http; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

v1=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
v2=$(echo "$v1" | awk -F. '{ printf "%d.%d.%d", $1, $2, $3 + 1 }')
say "packages: $v1 from this tree, and $v2 with a changed default config"
scripts/deb.sh
cp "target/debian/lampi_${v1}-1_amd64.deb" "$work/v1.deb"

say "control data, contents, lintian"
dpkg-deb -I "$work/v1.deb" > "$work/control"
for field in "Package: lampi" "Version: $v1-1" "Architecture: amd64" "Depends: .*adduser"; do
    grep -q "^ $field" "$work/control" || { cat "$work/control"; fail "control lacks $field"; }
done
for script in postinst prerm postrm; do
    grep -q "  $script " "$work/control" || fail "no $script"
done
dpkg-deb -c "$work/v1.deb" > "$work/contents"
for file in ./usr/bin/lampi ./etc/lampi/lampi.toml ./usr/lib/systemd/system/lampi.service \
    ./usr/lib/systemd/system/lampi-update.path ./usr/lib/systemd/system/lampi-update.service \
    ./usr/lib/lampi/lampi-update ./usr/share/doc/lampi/copyright ./usr/share/man/man1/lampi.1.gz; do
    grep -q " $file\$" "$work/contents" || { cat "$work/contents"; fail "$file is not in the package"; }
done
lintian --fail-on error,warning "$work/v1.deb" || fail "lintian"
mkdir "$work/src"
tar --exclude=./target --exclude=./.git -cf - . | tar -xf - -C "$work/src"
(
    cd "$work/src"
    scripts/bump-version.sh "$v2" "Test release for scripts/test-deb.sh." >/dev/null
    echo "# A default added in $v2." >> config/lampi.toml
    CARGO_TARGET_DIR="$OLDPWD/target" cargo deb --output "$work/v2.deb"
)

say "a Debian root"
debootstrap --variant=minbase bookworm "$root" "${LAMPI_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log"; fail "debootstrap"; }
cp /etc/resolv.conf "$root/etc/resolv.conf"
in_root() { chroot "$root" "$@"; }

say "install $v1"
cp "$work/v1.deb" "$root/tmp/lampi.deb"
in_root apt-get install -q -y /tmp/lampi.deb >"$work/install.log" 2>&1 || { tail -n 20 "$work/install.log"; fail "install"; }
in_root id lampi >/dev/null || fail "no lampi user"
in_root /usr/bin/lampi --version | grep -q "^lampi $v1 " || fail "lampi --version"
in_root dpkg-query -W -f='${Conffiles}\n' lampi | grep -q /etc/lampi/lampi.toml || fail "the config is not a conffile"
for file in /usr/lib/systemd/system/lampi.service /usr/lib/systemd/system/lampi-update.path \
    /usr/lib/systemd/system/lampi-update.service /usr/lib/lampi/lampi-update /usr/share/man/man1/lampi.1.gz; do
    [ -e "$root$file" ] || fail "$file is not installed"
done
echo "# Edited on the lamp." >> "$root/etc/lampi/lampi.toml"

say "a signed repository with $v2 on loopback"
scripts/publish-apt.sh "$work/repo" "$work/v2.deb" >"$work/publish.log" 2>&1 || { cat "$work/publish.log"; fail "publish"; }
http_port=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$work/repo" "$http_port" >"$work/http.log" 2>&1 &
http=$!
cp "$work/repo/lampi-archive-keyring.gpg" "$root/usr/share/keyrings/"
echo "deb [signed-by=/usr/share/keyrings/lampi-archive-keyring.gpg] http://127.0.0.1:$http_port/ bookworm main" \
    > "$root/etc/apt/sources.list.d/lampi.list"

say "the lamp, unprivileged, on a real Mosquitto"
port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nuser root\n' "$port" > "$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
broker=$!
for _ in $(seq 50); do mosquitto_pub -p "$port" -t ping -m up 2>/dev/null && break; sleep 0.1; done
printf '[device]\nid = "debtest"\nstate_dir = "/var/lib/lampi"\n[mqtt]\nhost = "127.0.0.1"\nport = %s\n[led]\nbackend = "sim"\nswatch = false\n' \
    "$port" > "$root/etc/lampi-test.toml"
mkdir -p "$root/var/lib/lampi"
in_root chown lampi:lampi /var/lib/lampi
start_lamp() {
    RUST_LOG=warn chroot --userspec=lampi:lampi "$root" /usr/bin/lampi --config /etc/lampi-test.toml run --sim \
        >>"$work/lampi.log" 2>&1 &
    lamp=$!
    mosquitto_sub -p "$port" -t lamp/changed -C 1 -W 30 >/dev/null || { cat "$work/lampi.log"; fail "the lamp did not start"; }
}
stop_lamp() { kill -TERM "$lamp"; wait "$lamp" || true; lamp=""; }
shadow_get() { target/release/lampi ctl --host 127.0.0.1 --port "$port" --thing debtest get; }
reported_until() { # KEY VALUE
    for _ in $(seq 60); do
        [ "$(shadow_get | json_get "state.reported.$1")" = "$2" ] && return 0
        sleep 1
    done
    shadow_get >&2
    fail "reported.$1 never became $2"
}
start_lamp
mosquitto_pub -p "$port" -t lamp/set_config -m '{"brightness": 0.3, "client": "test"}'
reported_until light.brightness 0.3

say "remote update to $v2"
mosquitto_pub -p "$port" -t '$aws/things/debtest/shadow/update' \
    -m "{\"state\": {\"desired\": {\"firmware\": {\"version\": \"$v2\"}}}}"
request="$root/var/lib/lampi/update/request.json"
# As lampi-update.path would start lampi-update.service when the lamp asks for VERSION, then as
# the package's restart of lampi.service would:
update_to() { # VERSION
    for _ in $(seq 30); do grep -q "\"$1\"" "$request" 2>/dev/null && break; sleep 1; done
    grep -q "\"$1\"" "$request" 2>/dev/null || fail "the lamp did not ask for $1"
    in_root /usr/lib/lampi/lampi-update || { cat "$root/var/lib/lampi-update/apt.log"; fail "lampi-update $1"; }
    [ "$(in_root dpkg-query -W -f='${Version}' lampi)" = "$1-1" ] || fail "$1 is not installed"
    stop_lamp
    start_lamp
}
update_to "$v2"
reported_until firmware.version "$v2"
reported_until firmware.update.state succeeded
reported_until light.brightness 0.3
grep -q "^# Edited on the lamp.$" "$root/etc/lampi/lampi.toml" || fail "the edited config was replaced"
grep -q "A default added in $v2" "$root/etc/lampi/lampi.toml.dpkg-dist" || fail "no lampi.toml.dpkg-dist"

say "a version the repository does not have"
mosquitto_pub -p "$port" -t '$aws/things/debtest/shadow/update' \
    -m '{"state": {"desired": {"firmware": {"version": "9.9.9"}}}}'
for _ in $(seq 30); do grep -q 9.9.9 "$request" 2>/dev/null && break; sleep 1; done
in_root /usr/lib/lampi/lampi-update && fail "lampi-update installed a version that does not exist"
reported_until firmware.update.state failed
shadow_get | json_get state.reported.firmware.update.error | grep -q "not in the repository" || fail "no reason given"

say "a downgrade to $v1: refused, then allowed"
mosquitto_pub -p "$port" -t '$aws/things/debtest/shadow/update' \
    -m "{\"state\": {\"desired\": {\"firmware\": {\"version\": \"$v1\"}}}}"
reported_until firmware.update.version "$v1"
reported_until firmware.update.state failed
shadow_get | json_get state.reported.firmware.update.error | grep -q "allow_downgrade" || fail "no reason given"
grep -q "\"$v1\"" "$request" && fail "the lamp asked for a downgrade nobody allowed"
# The repository is rolled back to $v1, as publish-apt.sh describes.
GNUPGHOME="$work/repo/gnupg" reprepro --basedir "$work/repo" remove bookworm lampi >>"$work/publish.log" 2>&1
scripts/publish-apt.sh "$work/repo" "$work/v1.deb" >>"$work/publish.log" 2>&1 || { cat "$work/publish.log"; fail "republish"; }
mosquitto_pub -p "$port" -t '$aws/things/debtest/shadow/update' \
    -m "{\"state\": {\"desired\": {\"firmware\": {\"version\": \"$v1\", \"allow_downgrade\": true}}}}"
update_to "$v1"
reported_until firmware.version "$v1"
reported_until firmware.update.state succeeded

say "purge"
stop_lamp
in_root dpkg --purge lampi >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "purge"; }
in_root id lampi >/dev/null 2>&1 && fail "the lampi user is still there"
for gone in /var/lib/lampi /var/lib/lampi-update /etc/lampi /usr/bin/lampi; do
    [ ! -e "$root$gone" ] || fail "$gone is still there"
done
say "package tests passed"
