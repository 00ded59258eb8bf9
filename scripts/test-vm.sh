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
say() { echo "== $*"; }
fail() { echo "test-vm: FAILED: $*" >&2; exit 1; }

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
(cd "$work" && apt-get download "$kernel_package" >/dev/null 2>&1) || fail "apt-get download $kernel_package"
dpkg -x "$work/$kernel_package"_*.deb "$work/kernel"
modules=$(echo "$work"/kernel/lib/modules/*/kernel)
initramfs="$work/initramfs"
mkdir -p "$initramfs/bin" "$initramfs/dev" "$initramfs/modules"
cp /bin/busybox "$initramfs/bin/busybox"
mknod "$initramfs/dev/console" c 5 1
# The modules for a 9p root over virtio, each after what it depends on (virtio_ring before
# virtio, or the root mount fails with "Invalid argument").
ordered=""
add_module() { # NAME
    case " $ordered " in *" $1 "*) return ;; esac
    file=$(find "$modules" -name "$1.ko" | head -1)
    [ -n "$file" ] || fail "no module $1 in $kernel_package"
    cp "$file" "$initramfs/modules/"
    # ($file is global: the recursion below reuses it.)
    for dependency in $(tr '\0' '\n' <"$file" | sed -n 's/^depends=//p' | tr ',' ' '); do
        add_module "$dependency"
    done
    ordered="$ordered $1"
}
for module in virtio_pci 9pnet_virtio 9p; do add_module "$module"; done
cat >"$initramfs/init" <<EOF
#!/bin/busybox sh
/bin/busybox mkdir -p /proc /newroot
/bin/busybox mount -t proc proc /proc
for module in $ordered; do /bin/busybox insmod /modules/\$module.ko; done
/bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose,msize=262144 root /newroot ||
    { echo "test-vm: no root"; /bin/busybox poweroff -f; }
/bin/busybox umount /proc
exec /bin/busybox switch_root /newroot /sbin/init
EOF
chmod +x "$initramfs/init"
(cd "$initramfs" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initrd.gz"

say "a Debian root with systemd, Mosquitto and the package"
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,udev,mosquitto,mosquitto-clients,jq \
    bookworm "$root" "${LAMPI_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log"; fail "debootstrap"; }
cp "$deb" "$root/tmp/lampi.deb"
chroot "$root" apt-get install -q -y /tmp/lampi.deb >"$work/install.log" 2>&1 ||
    { tail -n 20 "$work/install.log"; fail "install"; }
# No network in the VM, so no MAC to name the lamp after.
sed -i 's/^# id = .*/id = "vmlamp"/' "$root/etc/lampi/lampi.toml"
echo lampi-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost lampi-vm\n::1 localhost\n' >"$root/etc/hosts"
mkdir -p "$root/results" "$work/results"
cp scripts/test-vm-inside.sh "$root/usr/local/sbin/lampi-vm-test"
chmod +x "$root/usr/local/sbin/lampi-vm-test"
cat >"$root/etc/systemd/system/lampi-vm-test.service" <<'EOF'
[Unit]
Description=lampi under its unit, checked from inside
After=multi-user.target lampi.service mosquitto.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/lampi-vm-test
ExecStopPost=/bin/systemctl poweroff --no-block
StandardOutput=journal+console
EOF
cat >"$root/etc/systemd/system/lampi-vm-test.target" <<'EOF'
[Unit]
Description=The system, then lampi's checks
Requires=multi-user.target lampi-vm-test.service
After=multi-user.target
EOF

say "boot (1-2 minutes)"
timeout 600 qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1024 -nographic -no-reboot -nic none \
    -kernel "$(echo "$work"/kernel/boot/vmlinuz-*)" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 panic=-1 systemd.unit=lampi-vm-test.target systemd.show_status=0" \
    -virtfs "local,path=$root,mount_tag=root,security_model=passthrough,id=root" \
    -virtfs "local,path=$work/results,mount_tag=results,security_model=passthrough,id=results" \
    >"$work/console.log" 2>&1 &
vm=$!
wait "$vm" || { tail -n 40 "$work/console.log"; fail "the VM did not power off within 10 minutes"; }
vm=""
cat "$work/results/log" 2>/dev/null || { tail -n 40 "$work/console.log"; fail "the checks did not run"; }
[ "$(cat "$work/results/status" 2>/dev/null)" = passed ] || fail "checks inside the VM"
say "the lamp under its systemd unit passed"
