#!/bin/sh
# Builds the lampi .deb into target/debian/: for this machine without arguments, or for a
# Raspberry Pi target triple (aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf) with
# the real LED and the touchscreen on the Pi's display (linuxkms), using Debian's cross
# toolchains (no Docker). `debug-ble OUT`: for scripts/test-ble-vm.sh, the debug build with
# Bluetooth LE and `lampi ble` (what `cargo test --features ble,ble-client` builds) packaged as
# OUT, quickly.
set -eu
cd "$(dirname "$0")/.."
# 3.8.0 is the first cargo-deb whose systemd-units `unit-name` also scopes the maintainer-script
# snippets (Cargo.toml relies on it to keep upgrades off lampi-update.*; test-deb.sh checks).
cargo_deb=3.8.0
[ "$(cargo-deb --version 2>/dev/null)" = "cargo-deb $cargo_deb" ] || cargo install cargo-deb --version "$cargo_deb" --locked
case "${1:-}" in
    "")
        cargo deb
        ;;
    aarch64-unknown-linux-gnu | armv7-unknown-linux-gnueabihf)
        scripts/cross-deps.sh "$1"
        cargo deb --target "$1" -- --no-default-features --features rpi,linuxkms,ble,ble-client
        ;;
    debug-ble)
        cargo deb --profile dev --features ble,ble-client --strip --fast --output "$2"
        ;;
    *)
        echo "usage: $0 [aarch64-unknown-linux-gnu | armv7-unknown-linux-gnueabihf | debug-ble OUT]" >&2
        exit 2
        ;;
esac
