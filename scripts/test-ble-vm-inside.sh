#!/bin/sh
# The checks scripts/test-ble-vm.sh runs inside its VM, as a systemd unit after
# multi-user.target: two virtual LE controllers (bumble, on /dev/vhci), the real bluetoothd
# with Debian's D-Bus policy, lampi.service as the package installed it with Bluetooth LE
# turned on as the README says, serving on hci0, and a central on hci1. Writes its log and
# "passed" to the results share; the unit powers the VM off whatever happens.
set -u
. /usr/local/lib/lampi-vm-lib.sh
vm_results
journal_units="lampi bluetooth lampi-vhci"
config=/etc/lampi/lampi.toml
thing=vmlamp
exposure_limit=1.9
# Public addresses (from the range for documentation): a random one would need bluetoothd to
# generate it with the kernel's crypto API.
lamp_address=00:00:5E:00:53:01
central_address=00:00:5E:00:53:02

hsv=0002a7d3-d8a4-4fea-8174-1736e808c066
brightness=0003a7d3-d8a4-4fea-8174-1736e808c066
on_off=0004a7d3-d8a4-4fea-8174-1736e808c066
model=00002a24-0000-1000-8000-00805f9b34fb
user_description=00002901-0000-1000-8000-00805f9b34fb

# The central on hci1 is `lampi ble` (the package is built with ble-client), through
# bluetoothd's D-Bus API as on a laptop. Connecting and resolving services over an emulated link
# under TCG is slow: generous bounds.
central() { timeout 180 lampi ble --adapter hci1 --scan-time 60 "$@"; }
central_find() { timeout 180 lampi ble --adapter hci1 --scan-time 30 scan; }
central_get() { central --id "$address" get; }
central_set() { central --id "$address" set "$@"; }
# Run in the background until the end of the checks: exec, so the SIGTERM that ends it reaches
# lampi (through timeout) and its status is lampi's.
central_watch() { exec timeout 600 lampi ble --adapter hci1 --scan-time 60 --id "$address" watch; }
# What `lampi ble` never sends or asks for, by design: descriptors, and octets no light
# encodes. Through bluetoothd's D-Bus API directly, on the connection the watch holds.
raw() { timeout 180 /usr/bin/python3 /usr/local/lib/lampi-vm/vm_central.py hci1 "$@"; }

hex() { printf %s "$1" | od -An -tx1 | tr -d ' \n'; }
got() { # WHAT JQ-CONDITION on `lampi ble get`
    doc=$(central_get 2>/tmp/get.err) || fail "$1: lampi ble get: $(cat /tmp/get.err)"
    printf %s "$doc" | jq -e "$2" >/dev/null || fail "$1: lampi ble get printed $doc, not $2"
    echo "$1: $(printf %s "$doc" | jq -c .)"
}
described() { # WHAT EXPECTED-HEX UUID: the user description of a characteristic
    read=$(raw read "$address" "$3" "$user_description" 2>&1) || fail "$1: $read"
    [ "$read" = "$2" ] || fail "$1: read $read, expected $2"
    echo "$1: $read"
}
refused() { # WHAT UUID HEX
    answer=$(raw write "$address" "$2" "$3" 2>&1) && fail "$1 was accepted"
    echo "$1: $answer"
}
changed() { # JQ-CONDITION on lamp/changed (retained: the lamp's current state)
    mosquitto_sub -t lamp/changed -C 1 -W 5 | jq -e "$1"
}
reported() { # JQ-CONDITION on the shadow's reported state
    timeout 20 lampi --config "$config" ctl get | jq -e ".state.reported | $1"
}

say "$(systemctl --version | head -n 1), kernel $(uname -r), BlueZ $(/usr/libexec/bluetooth/bluetoothd --version)"

say "two virtual LE controllers on one link"
systemd-run --unit=lampi-vhci --setenv=PYTHONPATH=/opt/bumble \
    /usr/bin/python3 /usr/local/lib/lampi-vm/vhci_controllers.py "$lamp_address" "$central_address" ||
    fail "cannot start the controllers"
within 60 test -e /sys/class/bluetooth/hci1 || fail "no hci0 and hci1 from /dev/vhci"

say "bluetoothd, both adapters powered"
systemctl start bluetooth.service || fail "bluetooth.service does not start"
for index in 0 1; do
    within 30 timeout 10 btmgmt --index "$index" info || fail "bluetoothd has no hci$index"
    timeout 30 btmgmt --index "$index" power on || fail "btmgmt --index $index power on"
done
timeout 10 btmgmt --index 0 info | head -n 3

say "the lamp, with Bluetooth LE on (the README's steps: the config, then dpkg-reconfigure)"
within 60 systemctl is-active mosquitto.service || fail "no Mosquitto"
# Indented, as TOML allows: postinst once looked for the key with a pattern that missed this.
sed -i '/^\[ble\]/,/^\[/ { s/^enabled = false/  enabled = true/; s/^# adapter = .*/adapter = "hci0"/ }' "$config"
sed -n '/^\[ble\]/,/^\[/p' "$config" | grep -v '^#'
DEBIAN_FRONTEND=noninteractive dpkg-reconfigure lampi || fail "dpkg-reconfigure lampi"
grep -q '^SupplementaryGroups=bluetooth$' /etc/systemd/system/lampi.service.d/lampi-ble.conf ||
    fail "postinst wrote no drop-in with the bluetooth group"
within 30 systemctl is-active lampi.service || fail "lampi.service is not active"
pid=$(systemctl show -p MainPID --value lampi.service)
sed -n 's/^Groups://p' "/proc/$pid/status" | tr -s ' \t' '\n' | grep -qx "$(getent group bluetooth | cut -d: -f3)" ||
    fail "the lamp is not in the bluetooth group: $(grep ^Groups: "/proc/$pid/status")"
within 90 reported '.ble.serving == true' || fail "reported.ble.serving is not true"

say "a known state over MQTT"
mosquitto_pub -t lamp/set_config -m '{"on":true,"brightness":0.2,"color":{"h":0.6,"s":1.0},"client":"vm"}'
within 30 changed '.brightness == 0.2 and .color.h == 0.6' || fail "the set_config did not reach lamp/changed"

say "lampi ble finds the lamp by its service UUID"
found=$(central_find 2>/tmp/find.err) || fail "no lamp found by the Lamp Service UUID: $(cat /tmp/find.err)"
echo "$found"
address=$(printf %s "$found" | jq -r .address)
[ "$address" = "$lamp_address" ] || fail "found $address, not (only) the lamp's $lamp_address"

say "a lamp that stops advertising is out of range, though BlueZ on the central still knows it"
systemctl stop lampi.service
known() { busctl introspect org.bluez "/org/bluez/hci1/dev_$(printf %s "$lamp_address" | tr : _)" >/dev/null; }
known || fail "BlueZ no longer knows the lamp: nothing to test"
gone=$(timeout 90 lampi ble --adapter hci1 --scan-time 5 scan 2>&1) &&
    fail "lampi ble scan listed a lamp that is not advertising: $gone"
echo "$gone"
case $gone in *"no LAMPI lamp in range"*) ;; *) fail "lampi ble scan: $gone" ;; esac
# Still known after the scan: BlueZ forgets a device it only saw some time after discovery.
known || fail "BlueZ forgot the lamp during the scan: nothing was tested"
systemctl start lampi.service
within 90 reported '.ble.serving == true' || fail "the lamp did not serve Bluetooth LE again"

say "lampi ble watch connects and stays, as a phone app would; the other commands share its connection"
central_watch >/tmp/watch 2>/tmp/watch.err &
watcher=$!
within 120 test -s /tmp/watch || { cat /tmp/watch.err; fail "lampi ble watch did not connect and read the light"; }
head -n 1 /tmp/watch

say "the Device Information Service, and the light as set over MQTT (0x99 0xFF 0xFF, 0x33, 0x01)"
version=$(dpkg-query -W -f '${Version}' lampi | sed 's/-[^-]*$//')
got "Device Information" ".manufacturer == \"LAMPI\" and .model == \"LAMPI\" and .device == \"$thing\" and .firmware == \"$version\""
got "the Lamp Service" '.light == {"on": true, "hue": 0.6, "saturation": 1.0, "brightness": 0.2}'
described "HSV's user description" "$(hex HSV)" "$hsv"
described "Brightness's user description" "$(hex Brightness)" "$brightness"
described "On / Off's user description" "$(hex "On / Off")" "$on_off"

say "a write changes the light"
central_set --brightness 0.8 >/dev/null || fail "lampi ble set --brightness 0.8"
within 30 changed '.brightness == 0.8 and .client == "ble"' || fail "brightness 0.8 from BLE not on lamp/changed"
central_set --off >/dev/null || fail "lampi ble set --off"
within 30 changed '.on == false and .client == "ble"' || fail "off from BLE not on lamp/changed"
within 30 reported '.light.brightness == 0.8 and .light.on == false' || fail "the BLE writes are not in reported"
got "Brightness written (0xCC)" '.light.brightness == 0.8'

say "a refused write changes nothing"
refused "two octets to Brightness" "$brightness" cccc
refused "0x02 to On / Off" "$on_off" 02
refused "to Model Number" "$model" 00
got "the light after refused writes" '.light.on == false and .light.brightness == 0.8'
changed '.brightness == 0.8 and .on == false' >/dev/null || fail "a refused write changed the light"

say "an MQTT set_config is notified to lampi ble watch"
mosquitto_pub -t lamp/set_config -m '{"brightness":0.4,"client":"vm"}'
within 60 jq -R -e 'fromjson? | select(.characteristic == "Brightness" and .value == [102])' /tmp/watch ||
    { cat /tmp/watch /tmp/watch.err; fail "brightness 0.4 (0x66) set over MQTT was not notified"; }
kill -TERM "$watcher"
wait "$watcher" || { cat /tmp/watch /tmp/watch.err; fail "lampi ble watch did not end cleanly on SIGTERM"; }
cat /tmp/watch


say "the lamp never restarted, and nothing was refused by its sandbox"
[ "$(systemctl show -p NRestarts --value lampi.service)" = 0 ] || fail "lampi.service restarted"
journalctl -b -u lampi --no-pager | grep -i "operation not permitted\|permission denied\|access denied" &&
    fail "the sandbox or BlueZ's policy refused the lamp something"

say "systemd-analyze security lampi.service, with its Bluetooth LE drop-in"
exposure=$(systemd-analyze security --no-pager lampi.service |
    sed -n 's/.*Overall exposure level for lampi.service: \([0-9.]*\).*/\1/p')
echo "exposure: $exposure"
awk -v e="$exposure" -v l="$exposure_limit" 'BEGIN { exit !(e != "" && e <= l) }' ||
    fail "exposure ${exposure:-unknown} above $exposure_limit"

passed
