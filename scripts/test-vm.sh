#!/bin/sh
# The package under real systemd, which no container here has as PID 1: QEMU (TCG, so no KVM
# is needed) boots Debian's own kernel with a busybox initramfs that mounts a debootstrap root
# shared from this machine over 9p as /. The built .deb is installed in that root; inside,
# systemd runs lampi.service with every setting of the shipped unit applied for real, and a
# test unit checks: the lamp answers MQTT, reports clock.synchronised as the kernel says, rings
# an alarm (on a virtual clock), lampi-update.path starts the updater when the lamp asks for a
# version, and `systemd-analyze security` rates the unit. Results come back over a second 9p
# share. Needs root.
# Usage: scripts/test-vm.sh          (LAMPI_DEBIAN_MIRROR overrides deb.debian.org)
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || exec sudo "$0" "$@"
scripts/deps.sh qemu-system-x86 busybox-static debootstrap
. scripts/vm-lib.sh

work=$(mktemp -d /var/tmp/lampi-vm.XXXXXX)
root="$work/root"
vm=""
cleanup() {
    [ -z "$vm" ] || kill "$vm" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
say "the package, $version"
# In test-deb.sh's target directory: after it (as in `make test`) the package is already built.
export CARGO_TARGET_DIR="$PWD/target/test-deb"
scripts/deb.sh
deb="$CARGO_TARGET_DIR/debian/lampi_${version}-1_amd64.deb"
[ -e "$deb" ] || fail "no $deb"

say "Debian's kernel and a busybox initramfs"
kernel_package=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -1)
[ -n "$kernel_package" ] || fail "linux-image-amd64 depends on no kernel (apt-get update?)"
vm_kernel "$work" "$kernel_package"
# The modules for a 9p root over virtio.
vm_initramfs "$work" virtio_pci 9pnet_virtio 9p

say "a Debian root with systemd, Mosquitto and the package"
vm_root "$root" systemd,systemd-sysv,dbus,udev,mosquitto,mosquitto-clients,jq
vm_install_lampi "$work" "$root" "$deb"
vm_test_unit "$root" scripts/test-vm-inside.sh

say "boot (1-2 minutes)"
vm_boot "$work" "$root" 600 1024
say "the lamp under its systemd unit passed"
