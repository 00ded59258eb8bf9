#!/bin/sh
# Builds the lampi .deb into target/debian/: for this machine without arguments, or for a
# Raspberry Pi target triple (aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf) with
# the real LED backend, using Debian's cross toolchains (no Docker).
set -eu
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
case "${1:-}" in
    "")
        cargo deb
        ;;
    aarch64-unknown-linux-gnu)
        scripts/deps.sh gcc-aarch64-linux-gnu libc6-dev-arm64-cross
        rustup target add "$1"
        cargo deb --target "$1" -- --features rpi
        ;;
    armv7-unknown-linux-gnueabihf)
        scripts/deps.sh gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
        rustup target add "$1"
        cargo deb --target "$1" -- --features rpi
        ;;
    *)
        echo "usage: $0 [aarch64-unknown-linux-gnu | armv7-unknown-linux-gnueabihf]" >&2
        exit 2
        ;;
esac
