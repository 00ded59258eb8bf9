"""What scripts/test-ble-vm.sh's central asks of the lamp that `lampi ble` never does, by
design: a descriptor's octets, and writes of octets no light encodes (to see them refused).
Through bluetoothd's own D-Bus API (the real one, on one adapter); values are hex. Exits
non-zero with the reason on any failure or timeout.

Usage: python3 vm_central.py ADAPTER COMMAND ...
  read ADDRESS UUID DESCRIPTOR_UUID     a characteristic's descriptor's value
  write ADDRESS UUID HEX                a write with response
"""

import sys
import time

import dbus

BLUEZ = "org.bluez"
DEVICE = "org.bluez.Device1"
CHARACTERISTIC = "org.bluez.GattCharacteristic1"
DESCRIPTOR = "org.bluez.GattDescriptor1"
PROPERTIES = "org.freedesktop.DBus.Properties"
# Connecting and resolving services over an emulated link under TCG is slow.
CONNECT_SECONDS = 90

bus = dbus.SystemBus()


def objects():
    manager = dbus.Interface(bus.get_object(BLUEZ, "/"), "org.freedesktop.DBus.ObjectManager")
    return manager.GetManagedObjects()


def until(seconds, what, probe):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    sys.exit(f"timed out after {seconds} s waiting for {what}")


def connected(adapter, address):
    path = f"{adapter}/dev_{address.replace(':', '_')}"
    device = bus.get_object(BLUEZ, path)
    properties = dbus.Interface(device, PROPERTIES)
    if not properties.Get(DEVICE, "Connected"):
        dbus.Interface(device, DEVICE).Connect(timeout=CONNECT_SECONDS)
    until(CONNECT_SECONDS, f"{address}'s services", lambda: properties.Get(DEVICE, "ServicesResolved"))
    return path


def attribute(under, interface, uuid):
    """The path of the attribute with `uuid` below `under`, the lamp's, not bluetoothd's own
    (which serves a Device Information Service of its own too, without these characteristics)."""
    for path, interfaces in objects().items():
        found = interfaces.get(interface)
        if path.startswith(under + "/") and found is not None and str(found["UUID"]).lower() == uuid:
            return path
    sys.exit(f"no {uuid} under {under}")


def value_of(path, interface):
    return bytes(dbus.Interface(bus.get_object(BLUEZ, path), interface).ReadValue({}, timeout=30)).hex()


def main(adapter, command, *args):
    adapter = f"/org/bluez/{adapter}"
    device = connected(adapter, args[0])
    characteristic = attribute(device, CHARACTERISTIC, args[1].lower())
    if command == "read" and len(args) == 3:
        print(value_of(attribute(characteristic, DESCRIPTOR, args[2].lower()), DESCRIPTOR))
    elif command == "write":
        proxy = dbus.Interface(bus.get_object(BLUEZ, characteristic), CHARACTERISTIC)
        value = dbus.Array(bytes.fromhex(args[2]), signature="y")
        proxy.WriteValue(value, {"type": "request"}, timeout=30)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    try:
        main(*sys.argv[1:])
    except dbus.DBusException as e:
        sys.exit(f"{e.get_dbus_name()}: {e.get_dbus_message()}")
