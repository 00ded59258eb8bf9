"""A Bluetooth LE central through bluetoothd's own D-Bus API (the real one, on one adapter),
for scripts/test-ble-vm.sh's VM until `lampi ble` takes its place. Each command is one step
of the checks; values are hex. A connection made by one command is kept by bluetoothd for the
next. Exits non-zero with the reason on any failure or timeout.

Usage: python3 vm_central.py ADAPTER COMMAND ...
  find SECONDS                          the address of a device advertising the Lamp Service,
                                        connected (bluetoothd forgets one it only saw in 30 s)
  read ADDRESS UUID [DESCRIPTOR_UUID]   a characteristic's (or its descriptor's) value
  write ADDRESS UUID HEX                a write with response
  notified ADDRESS UUID HEX SECONDS     subscribes, says "subscribed", and waits for HEX
"""

import sys
import time

import dbus

BLUEZ = "org.bluez"
LAMP_SERVICE = "0001a7d3-d8a4-4fea-8174-1736e808c066"
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


def find(adapter, seconds):
    discovery = dbus.Interface(bus.get_object(BLUEZ, adapter), "org.bluez.Adapter1")
    discovery.SetDiscoveryFilter({"UUIDs": dbus.Array([LAMP_SERVICE], signature="s"), "Transport": "le"})
    discovery.StartDiscovery()

    def lamp():
        for path, interfaces in objects().items():
            device = interfaces.get(DEVICE)
            if path.startswith(adapter + "/") and device is not None:
                if LAMP_SERVICE in [str(u).lower() for u in device.get("UUIDs", [])]:
                    return str(device["Address"])
        return None

    try:
        address = until(seconds, "a device advertising the Lamp Service", lamp)
    finally:
        discovery.StopDiscovery()
    connected(adapter, address)
    print(address)


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
    if command == "find":
        find(adapter, int(args[0]))
        return
    device = connected(adapter, args[0])
    characteristic = attribute(device, CHARACTERISTIC, args[1].lower())
    if command == "read" and len(args) == 2:
        print(value_of(characteristic, CHARACTERISTIC))
    elif command == "read" and len(args) == 3:
        print(value_of(attribute(characteristic, DESCRIPTOR, args[2].lower()), DESCRIPTOR))
    elif command == "write":
        proxy = dbus.Interface(bus.get_object(BLUEZ, characteristic), CHARACTERISTIC)
        value = dbus.Array(bytes.fromhex(args[2]), signature="y")
        proxy.WriteValue(value, {"type": "request"}, timeout=30)
    elif command == "notified":
        proxy = bus.get_object(BLUEZ, characteristic)
        dbus.Interface(proxy, CHARACTERISTIC).StartNotify()
        print("subscribed", flush=True)
        # bluetoothd keeps the last notified value in the Value property.
        until(int(args[3]), f"a notification of {args[2]}",
              lambda: bytes(dbus.Interface(proxy, PROPERTIES).Get(CHARACTERISTIC, "Value")).hex() == args[2])
        print("notified")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    try:
        main(*sys.argv[1:])
    except dbus.DBusException as e:
        sys.exit(f"{e.get_dbus_name()}: {e.get_dbus_message()}")
