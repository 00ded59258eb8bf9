# Sourced by the scripts that test lampi under a real kernel and systemd (test-vm.sh,
# test-ble-vm.sh): QEMU (TCG, so no KVM is needed) boots Debian's own kernel with a busybox
# initramfs that loads the modules it is given, mounts a debootstrap root shared from this
# machine over 9p as / and starts systemd in it; a test unit in that root runs a check script
# after multi-user.target and powers the VM off, its log and status coming back over a second
# 9p share. POSIX sh; the caller has `set -eu` and runs as root.

say() { echo "== $*"; }
fail() { echo "$(basename "$0"): FAILED: $*" >&2; exit 1; }

# vm_kernel WORK PACKAGE [VERSION]: Debian's kernel package, unpacked into WORK/kernel.
# Sets vm_modules (its modules' tree) and vm_vmlinuz. With LAMPI_VM_CACHE set, the download is
# kept there.
vm_kernel() {
    downloads="${LAMPI_VM_CACHE:-$1}"
    mkdir -p "$downloads"
    if ! ls "$downloads/${2}_"${3:-*}_*.deb >/dev/null 2>&1; then
        (cd "$downloads" && apt-get download "$2${3:+=$3}" >/dev/null 2>&1) ||
            fail "apt-get download $2${3:+=$3} (apt-get update? or a pinned version gone from the mirror)"
    fi
    dpkg -x "$(ls "$downloads/${2}_"${3:-*}_*.deb | head -1)" "$1/kernel"
    vm_modules=$(echo "$1"/kernel/lib/modules/*/kernel)
    vm_vmlinuz=$(echo "$1"/kernel/boot/vmlinuz-*)
}

# vm_initramfs WORK MODULE...: WORK/initrd.gz, which loads MODULE... (and what each needs),
# mounts the 9p share `root` and hands over to its /sbin/init. Modules built into the kernel
# are skipped.
vm_initramfs() {
    initramfs="$1/initramfs"
    shift
    mkdir -p "$initramfs/bin" "$initramfs/dev" "$initramfs/modules"
    cp /bin/busybox "$initramfs/bin/busybox"
    mknod "$initramfs/dev/console" c 5 1
    ordered=""
    for module in "$@"; do vm_add_module "$module"; done
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
    (cd "$initramfs" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"${initramfs%/*}/initrd.gz"
}

# Each module after what it depends on (virtio_ring before virtio, or the root mount fails with
# "Invalid argument").
vm_add_module() { # NAME
    case " $ordered " in *" $1 "*) return ;; esac
    file=$(find "$vm_modules" -name "$1.ko" | head -1)
    if [ -z "$file" ]; then
        grep -q "/$1\.ko\$" "$vm_modules/../modules.builtin" && return
        fail "no module $1 in the kernel package"
    fi
    cp "$file" "$initramfs/modules/"
    # ($file is global: the recursion below reuses it.)
    for dependency in $(tr '\0' '\n' <"$file" | sed -n 's/^depends=//p' | tr ',' ' '); do
        vm_add_module "$dependency"
    done
    ordered="$ordered $1"
}

# vm_root ROOT PACKAGES: a Debian bookworm root with PACKAGES (comma-separated) besides
# minbase. With LAMPI_VM_CACHE set, the first one made is kept there as a tarball, by the
# package list, and unpacked from it next time.
vm_root() {
    mirror="${LAMPI_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    tarball=""
    if [ -n "${LAMPI_VM_CACHE:-}" ]; then
        tarball="$LAMPI_VM_CACHE/root-$(echo "bookworm $2" | md5sum | cut -c 1-12).tar"
        if [ -e "$tarball" ]; then
            mkdir -p "$1"
            tar -C "$1" -xf "$tarball"
            return
        fi
    fi
    debootstrap --variant=minbase --include="$2" bookworm "$1" "$mirror" >"$1.debootstrap.log" 2>&1 ||
        { tail -n 20 "$1.debootstrap.log"; fail "debootstrap"; }
    if [ -n "$tarball" ]; then
        tar -C "$1" -cf "$tarball.new" . && mv "$tarball.new" "$tarball"
    fi
}

# vm_install_lampi WORK ROOT DEB: the package installed in ROOT, as lamp `vmlamp` on host
# `lampi-vm`.
vm_install_lampi() {
    cp "$3" "$2/tmp/lampi.deb"
    chroot "$2" apt-get install -q -y /tmp/lampi.deb >"$1/install.log" 2>&1 ||
        { tail -n 20 "$1/install.log"; fail "install"; }
    # No network in the VM, so no MAC to name the lamp after.
    sed -i 's/^# id = .*/id = "vmlamp"/' "$2/etc/lampi/lampi.toml"
    echo lampi-vm >"$2/etc/hostname"
    printf '127.0.0.1 localhost lampi-vm\n::1 localhost\n' >"$2/etc/hosts"
}

# vm_test_unit ROOT SCRIPT: SCRIPT as the check that lampi-vm-test.target runs once the system
# is up, powering the VM off after it whatever happens.
vm_test_unit() {
    mkdir -p "$1/results"
    cp "$2" "$1/usr/local/sbin/lampi-vm-test"
    chmod +x "$1/usr/local/sbin/lampi-vm-test"
    cp scripts/vm-inside-lib.sh "$1/usr/local/lib/lampi-vm-lib.sh"
    cat >"$1/etc/systemd/system/lampi-vm-test.service" <<'EOF'
[Unit]
Description=lampi under its unit, checked from inside
After=multi-user.target lampi.service mosquitto.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/lampi-vm-test
ExecStopPost=/bin/systemctl poweroff --no-block
StandardOutput=journal+console
EOF
    cat >"$1/etc/systemd/system/lampi-vm-test.target" <<'EOF'
[Unit]
Description=The system, then lampi's checks
Requires=multi-user.target lampi-vm-test.service
After=multi-user.target
EOF
}

# vm_boot WORK ROOT SECONDS MEMORY_MB: boots into lampi-vm-test.target and waits for the VM to
# power off (at most SECONDS); then prints the checks' log and fails unless they passed.
# Needs vm_kernel and vm_initramfs before it. Sets vm (the QEMU's PID, for a trap to kill).
vm_boot() {
    mkdir -p "$1/results"
    timeout "$3" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m "$4" -nographic -no-reboot -nic none \
        -kernel "$vm_vmlinuz" -initrd "$1/initrd.gz" \
        -append "console=ttyS0 panic=-1 systemd.unit=lampi-vm-test.target systemd.show_status=0" \
        -virtfs "local,path=$2,mount_tag=root,security_model=passthrough,id=root" \
        -virtfs "local,path=$1/results,mount_tag=results,security_model=passthrough,id=results" \
        >"$1/console.log" 2>&1 &
    vm=$!
    wait "$vm" || { tail -n 40 "$1/console.log"; fail "the VM did not power off within $3 s"; }
    vm=""
    cat "$1/results/log" 2>/dev/null || { tail -n 40 "$1/console.log"; fail "the checks did not run"; }
    [ "$(cat "$1/results/status" 2>/dev/null)" = passed ] || fail "checks inside the VM"
}
