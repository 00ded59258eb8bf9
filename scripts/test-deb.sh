#!/bin/sh
# The package end to end in a throwaway Debian root made by debootstrap: install (the config
# 0640 root:lampi, the downgrade floor recorded); the maintainer scripts, read and run, never
# stopping or restarting the updater; the remote update path (a signed reprepro repository
# served on loopback, desired.firmware.version set through the shadow, lampi-update installing
# it) with a conffile edit kept and the lamp's state surviving; a FIFO or a symlink as the
# request refused at once; a version that does not exist reported as failed; a downgrade refused
# until it is allowed, refused below the downgrade floor whatever is allowed, then done from a
# deb822 source; remove and reinstall (the watcher unmasked); purge.
# No systemd runs in the root, so the harness does what lampi-update.path and the package's
# restart of lampi.service would (tests/systemd.rs checks the units); a logging stand-in for
# deb-systemd-invoke records what the maintainer scripts ask of systemd. Needs root.
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
# Both in a target directory of their own, kept between runs: another cargo build in the tree
# (an editor, a second terminal) cannot swap the binaries under the test.
export CARGO_TARGET_DIR="$PWD/target/test-deb"
scripts/deb.sh
cp "$CARGO_TARGET_DIR/debian/lampi_${v1}-1_amd64.deb" "$work/v1.deb"
lampi_ctl="$CARGO_TARGET_DIR/release/lampi"

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
    ./usr/lib/lampi/lampi-update ./usr/share/lampi/downgrade-floor ./usr/share/doc/lampi/copyright \
    ./usr/share/man/man1/lampi.1.gz; do
    grep -q " $file\$" "$work/contents" || { cat "$work/contents"; fail "$file is not in the package"; }
done
lintian --fail-on error,warning "$work/v1.deb" || fail "lintian"

say "maintainer scripts: cargo-deb's snippets are lampi.service's alone"
dpkg-deb -e "$work/v1.deb" "$work/scripts"
awk '/^# Automatically added by/, /^# End automatically added section/' \
    "$work/scripts/postinst" "$work/scripts/prerm" "$work/scripts/postrm" > "$work/generated"
grep -q 'deb-systemd-invoke .* lampi\.service' "$work/generated" || { cat "$work/generated"; fail "no snippets for lampi.service"; }
if grep -n 'lampi-update' "$work/generated"; then fail "cargo-deb's snippets act on the updater's units"; fi
# The package's own lines: the updater's service is never named, its watcher only started,
# unmasked and enabled in postinst, stopped in prerm on remove.
if grep -n 'lampi-update\.service' "$work/scripts/postinst" "$work/scripts/prerm" "$work/scripts/postrm"; then
    fail "a maintainer script acts on lampi-update.service"
fi
grep -n 'deb-systemd-invoke .*lampi-update' "$work/scripts/postinst" "$work/scripts/prerm" "$work/scripts/postrm" |
    grep -v 'postinst:.*deb-systemd-invoke start lampi-update\.path' |
    grep -v 'prerm:.*deb-systemd-invoke stop lampi-update\.path' > "$work/invocations" || true
[ ! -s "$work/invocations" ] || { cat "$work/invocations"; fail "unexpected actions on lampi-update.path"; }
grep -B1 'deb-systemd-invoke stop lampi-update\.path' "$work/scripts/prerm" | grep -q '"$1" = remove' ||
    fail "prerm stops lampi-update.path on upgrades too"
mkdir "$work/src"
tar --exclude=./target --exclude=./.git -cf - . | tar -xf - -C "$work/src"
(
    cd "$work/src"
    scripts/bump-version.sh "$v2" "Test release for scripts/test-deb.sh." >/dev/null
    echo "# A default added in $v2." >> config/lampi.toml
    cargo deb --output "$work/v2.deb"
)

say "a Debian root"
debootstrap --variant=minbase bookworm "$root" "${LAMPI_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log"; fail "debootstrap"; }
cp /etc/resolv.conf "$root/etc/resolv.conf"
in_root() { chroot "$root" "$@"; }
as_lamp() { chroot --userspec=lampi:lampi "$root" "$@"; }
# What the maintainer scripts ask systemd to start, stop or restart, as if it ran (they check
# /run/systemd/system). apt runs dpkg with its own PATH, so the stand-in takes the real tool's
# place, in a root that is thrown away. (No systemctl: without one, deb-systemd-helper makes the
# enable links itself.)
mkdir -p "$root/run/systemd/system"
systemd_log="$root/var/log/systemd-calls"
printf '#!/bin/sh\necho "deb-systemd-invoke $*" >> /var/log/systemd-calls\n' > "$root/usr/bin/deb-systemd-invoke"
chmod 755 "$root/usr/bin/deb-systemd-invoke"
# What the maintainer scripts asked of systemd since the last call: lampi.service started or
# restarted as ACTION says, and the updater's units never stopped or restarted.
systemd_calls() { # ACTION
    grep -q "^deb-systemd-invoke $1 lampi\.service\$" "$systemd_log" || { cat "$systemd_log"; fail "lampi.service was not asked to $1"; }
    if grep -E 'lampi-update\.service|(stop|restart).*lampi-update' "$systemd_log"; then
        fail "the maintainer scripts stop or restart the updater"
    fi
    : > "$systemd_log"
}
config_mode() {
    [ "$(in_root stat -c '%a %U:%G' /etc/lampi/lampi.toml)" = "640 root:lampi" ] ||
        { in_root stat /etc/lampi/lampi.toml; fail "/etc/lampi/lampi.toml is not 0640 root:lampi"; }
    as_lamp /usr/bin/lampi --config /etc/lampi/lampi.toml check-config >/dev/null || fail "the lamp cannot read its config"
    if chroot --userspec=nobody:nogroup "$root" cat /etc/lampi/lampi.toml >/dev/null 2>&1; then
        fail "anyone can read the config"
    fi
}
floor_file="$root/var/lib/lampi-update/downgrade-floor"

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
systemd_calls start
config_mode
[ "$(cat "$floor_file")" = "$(cat debian/downgrade-floor)" ] || fail "the downgrade floor is not recorded"
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
shadow_get() { "$lampi_ctl" ctl --host 127.0.0.1 --port "$port" --thing debtest get; }
reported_until() { # KEY VALUE
    for _ in $(seq 60); do
        [ "$(shadow_get | json_get "state.reported.$1")" = "$2" ] && return 0
        sleep 1
    done
    shadow_get >&2
    fail "reported.$1 never became $2"
}
update_error_until() { # TEXT
    for _ in $(seq 60); do
        shadow_get | json_get state.reported.firmware.update.error | grep -q "$1" && return 0
        sleep 1
    done
    shadow_get >&2
    fail "reported.firmware.update.error never said $1"
}
start_lamp
mosquitto_pub -p "$port" -t lamp/set_config -m '{"brightness": 0.3, "client": "test"}'
reported_until light.brightness 0.3

say "a FIFO or a symlink as the request: refused at once"
request="$root/var/lib/lampi/update/request.json"
refused_request() { # WHAT REASON
    code=0
    timeout 30 chroot "$root" /usr/lib/lampi/lampi-update 2>/dev/null || code=$?
    [ "$code" -ne 124 ] || fail "lampi-update blocked on $1"
    [ "$code" -ne 0 ] || fail "lampi-update took $1"
    json_get error < "$root/var/lib/lampi-update/status.json" | grep -q "$2" || fail "no reason given for $1"
    as_lamp rm -f /var/lib/lampi/update/request.json
}
as_lamp mkdir -p /var/lib/lampi/update
as_lamp mkfifo /var/lib/lampi/update/request.json
refused_request "a FIFO" "not a regular file"
as_lamp ln -s /etc/lampi/lampi.toml /var/lib/lampi/update/request.json
refused_request "a symlink" "cannot open the request"

say "remote update to $v2"
mosquitto_pub -p "$port" -t '$aws/things/debtest/shadow/update' \
    -m "{\"state\": {\"desired\": {\"firmware\": {\"version\": \"$v2\"}}}}"
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
systemd_calls restart
config_mode
grep -q "^# Edited on the lamp.$" "$root/etc/lampi/lampi.toml" || fail "the edited config was replaced"
grep -q "A default added in $v2" "$root/etc/lampi/lampi.toml.dpkg-dist" || fail "no lampi.toml.dpkg-dist"

say "a downgrade to $v1: refused unless allowed"
mosquitto_pub -p "$port" -t '$aws/things/debtest/shadow/update' \
    -m "{\"state\": {\"desired\": {\"firmware\": {\"version\": \"$v1\"}}}}"
reported_until firmware.update.version "$v1"
update_error_until "allow_downgrade"
grep -q "\"$v1\"" "$request" && fail "the lamp asked for a downgrade nobody allowed"

say "a downgrade below the floor: refused even when allowed, before anything is installed"
# As if $v2 wrote state that $v1 cannot read. Installing a package again never lowers the floor.
echo "$v2" > "$floor_file"
cp "$work/v2.deb" "$root/tmp/lampi.deb"
in_root dpkg -i /tmp/lampi.deb >"$work/reinstall.log" 2>&1 || { cat "$work/reinstall.log"; fail "reinstall $v2"; }
[ "$(cat "$floor_file")" = "$v2" ] || fail "postinst lowered the downgrade floor"
: > "$systemd_log"
mosquitto_pub -p "$port" -t '$aws/things/debtest/shadow/update' \
    -m "{\"state\": {\"desired\": {\"firmware\": {\"version\": \"$v1\", \"allow_downgrade\": true}}}}"
for _ in $(seq 30); do grep -q "\"$v1\"" "$request" 2>/dev/null && break; sleep 1; done
in_root /usr/lib/lampi/lampi-update && fail "lampi-update went below the downgrade floor"
[ "$(in_root dpkg-query -W -f='${Version}' lampi)" = "$v2-1" ] || fail "$v2 is no longer installed"
update_error_until "downgrade floor $v2"
echo "$v1" > "$floor_file"

say "a version the repository does not have"
mosquitto_pub -p "$port" -t '$aws/things/debtest/shadow/update' \
    -m '{"state": {"desired": {"firmware": {"version": "9.9.9"}}}}'
for _ in $(seq 30); do grep -q 9.9.9 "$request" 2>/dev/null && break; sleep 1; done
in_root /usr/lib/lampi/lampi-update && fail "lampi-update installed a version that does not exist"
reported_until firmware.update.version 9.9.9
update_error_until "not in the repository"

say "the downgrade to $v1, allowed, from a deb822 source"
# The repository is rolled back to $v1, as publish-apt.sh describes.
GNUPGHOME="$work/repo/gnupg" reprepro --basedir "$work/repo" remove bookworm lampi >>"$work/publish.log" 2>&1
scripts/publish-apt.sh "$work/repo" "$work/v1.deb" >>"$work/publish.log" 2>&1 || { cat "$work/publish.log"; fail "republish"; }
rm "$root/etc/apt/sources.list.d/lampi.list"
printf 'Types: deb\nURIs: http://127.0.0.1:%s/\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/lampi-archive-keyring.gpg\n' \
    "$http_port" > "$root/etc/apt/sources.list.d/lampi.sources"
mosquitto_pub -p "$port" -t '$aws/things/debtest/shadow/update' \
    -m "{\"state\": {\"desired\": {\"firmware\": {\"version\": \"$v1\", \"allow_downgrade\": true}}}}"
update_to "$v1"
reported_until firmware.version "$v1"
reported_until firmware.update.state succeeded
systemd_calls restart

say "remove, then install again: the update watcher is unmasked"
stop_lamp
in_root dpkg --remove lampi >"$work/remove.log" 2>&1 || { cat "$work/remove.log"; fail "remove"; }
[ "$(readlink "$root/etc/systemd/system/lampi-update.path")" = /dev/null ] || fail "remove did not mask lampi-update.path"
cp "$work/v1.deb" "$root/tmp/lampi.deb"
in_root apt-get install -q -y /tmp/lampi.deb >>"$work/install.log" 2>&1 || { tail -n 20 "$work/install.log"; fail "install again"; }
[ ! -e "$root/etc/systemd/system/lampi-update.path" ] || fail "lampi-update.path is still masked"
[ -L "$root/etc/systemd/system/paths.target.wants/lampi-update.path" ] || fail "lampi-update.path is not enabled"
config_mode

say "purge"
in_root dpkg --purge lampi >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "purge"; }
in_root id lampi >/dev/null 2>&1 && fail "the lampi user is still there"
in_root dpkg-statoverride --list | grep lampi && fail "the config's statoverride is still there"
for gone in /var/lib/lampi /var/lib/lampi-update /etc/lampi /usr/bin/lampi; do
    [ ! -e "$root$gone" ] || fail "$gone is still there"
done
say "package tests passed"
