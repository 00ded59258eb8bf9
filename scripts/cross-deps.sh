#!/bin/sh
# Installs what cross-building lampi for a Raspberry Pi target needs: Debian's cross toolchain,
# the target's -dev packages for the touchscreen (Slint's linuxkms backend: udev, libinput,
# xkbcommon; and fontconfig for its text, as multiarch packages), libdbus for Bluetooth LE (the
# `ble` and `ble-client` features, BlueZ over D-Bus), and the Rust target.
# Usage: scripts/cross-deps.sh aarch64-unknown-linux-gnu | armv7-unknown-linux-gnueabihf
set -eu
cd "$(dirname "$0")/.."
case "$1" in
    aarch64-unknown-linux-gnu) arch=arm64 gcc="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;;
    armv7-unknown-linux-gnueabihf) arch=armhf gcc="gcc-arm-linux-gnueabihf libc6-dev-armhf-cross" ;;
    *) echo "usage: $0 aarch64-unknown-linux-gnu | armv7-unknown-linux-gnueabihf" >&2; exit 2 ;;
esac
if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo dpkg --add-architecture "$arch"
    # A mirror mid-sync fails an index now and then; retry, then let the install say what is
    # really missing.
    for attempt in 1 2 3; do
        $sudo apt-get update && break
        echo "apt-get update failed (attempt $attempt)"; sleep 10
    done
fi
# shellcheck disable=SC2086
scripts/deps.sh $gcc pkg-config "libudev-dev:$arch" "libinput-dev:$arch" "libxkbcommon-dev:$arch" \
    "libfontconfig-dev:$arch" "libdbus-1-dev:$arch"
rustup target add "$1" >/dev/null 2>&1 || rustup target list --installed | grep -qx "$1"
