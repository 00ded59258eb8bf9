#!/bin/sh
# Bluetooth LE against the real BlueZ, which needs a kernel with Bluetooth that no build
# machine here has (tier 2; tests/ble.rs is tier 1, against a stand-in). As scripts/test-vm.sh
# (whose pieces, scripts/vm-lib.sh, it shares): QEMU (TCG) boots Debian's own kernel, pinned
# below, which has bluetooth.ko and hci_vhci.ko, into a debootstrap root shared over 9p with
# systemd, bluetoothd and Mosquitto; lampi, a debug build with the `ble` and `ble-client`
# features, is installed from its package. Inside (scripts/test-ble-vm-inside.sh) bumble plays
# two LE controllers on /dev/vhci sharing one virtual link; the lamp serves under lampi.service
# on hci0, `lampi ble` on hci1 finds it by its service UUID, reads, writes and watches it
# through bluetoothd (a descriptor and octets no light encodes through its D-Bus API). Unpaired
# GATT only: LE Secure Connections pairing fails under emulation. Needs root; the kernel, the
# debootstrap root and bumble are kept in $CARGO_TARGET_DIR/ble-vm after the first run.
# Usage: scripts/test-ble-vm.sh      (LAMPI_DEBIAN_MIRROR overrides deb.debian.org)
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || exec sudo "$0" "$@"
scripts/deps.sh qemu-system-x86 busybox-static debootstrap python3-pip
. scripts/vm-lib.sh

# Pinned: a kernel known to carry what the test needs (when the mirror drops this version, pin
# the one linux-image-amd64 depends on then), and bumble (tests/ble/bumble-requirements.txt).
kernel_package=linux-image-6.1.0-50-amd64
kernel_version=6.1.176-1
requirements=tests/ble/bumble-requirements.txt

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export LAMPI_VM_CACHE="$CARGO_TARGET_DIR/ble-vm"
work=$(mktemp -d /var/tmp/lampi-ble-vm.XXXXXX)
root="$work/root"
vm=""
cleanup() {
    [ -z "$vm" ] || kill "$vm" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

say "lampi with Bluetooth LE and lampi ble (a debug build: cargo test --features ble,ble-client has built it), packaged"
scripts/deb.sh debug-ble "$work/lampi.deb"

say "Debian's kernel $kernel_package $kernel_version and a busybox initramfs"
vm_kernel "$work" "$kernel_package" "$kernel_version"
# A 9p root over virtio; Bluetooth and the virtual HCI driver; the kernel's crypto API, which
# bluetoothd asks for at start whatever the addresses.
vm_initramfs "$work" virtio_pci 9pnet_virtio 9p bluetooth hci_vhci af_alg algif_hash algif_skcipher cmac ecb

say "bumble, as $requirements pins it"
bumble="$LAMPI_VM_CACHE/bumble-$(md5sum <"$requirements" | cut -c 1-12)"
if [ ! -e "$bumble/.complete" ]; then
    rm -rf "$bumble"
    # Debian's python3, as in the VM's root; exact pins, so no resolver.
    /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$bumble" \
        -r "$requirements" >"$work/pip.log" 2>&1 || { tail -n 20 "$work/pip.log"; fail "pip install bumble"; }
    touch "$bumble/.complete"
fi

say "a Debian root with systemd, BlueZ, Mosquitto, bumble and the package"
vm_root "$root" systemd,systemd-sysv,dbus,udev,mosquitto,mosquitto-clients,jq,bluez,python3-dbus
vm_install_lampi "$work" "$root" "$work/lampi.deb"
cp -a "$bumble" "$root/opt/bumble"
mkdir -p "$root/usr/local/lib/lampi-vm"
cp tests/ble/vhci_controllers.py tests/ble/vm_central.py "$root/usr/local/lib/lampi-vm/"
vm_test_unit "$root" scripts/test-ble-vm-inside.sh

say "boot (2-4 minutes)"
vm_boot "$work" "$root" 900 1536
say "Bluetooth LE through the real BlueZ passed"
