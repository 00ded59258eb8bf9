#!/usr/bin/python3
"""A BlueZ stand-in for lampi's Bluetooth LE tests: org.bluez on a private bus, no radio.

python3-dbusmock's bluez5 template gives the ObjectManager at / and the adapter at
/org/bluez/hci0 with its properties; this adds, as real dbus-python methods (dbusmock's
AddMethod gives no sender and no asynchronous reply), what a GATT server talks to:

- GattManager1.RegisterApplication: like bluetoothd, calls the application's GetManagedObjects
  back before it answers, and records the tree;
- LEAdvertisingManager1.RegisterAdvertisement: reads the advertisement's properties;
- and their Unregister twins; a client that leaves the bus loses its registrations, as with
  bluetoothd ({"event": "unregistered", ..., "why": "owner gone"}).

It then plays the centrals: the test sends one JSON command a line on stdin and reads one JSON
line back for each (with the command's "id"), among event lines ({"event": ...}):

  {"id": 1, "cmd": "tree"}                     the registered applications and advertisements
  {"id": 2, "cmd": "read", "path": P, "device": D, "offset": 0}
  {"id": 3, "cmd": "write", "path": P, "value": [1], "device": D, "type": "request"}
  {"id": 4, "cmd": "start_notify", "path": P}  then {"event": "notification", "path", "value"}
  {"id": 5, "cmd": "stop_notify", "path": P}
  {"id": 6, "cmd": "remove_adapter"} / {"cmd": "add_adapter"} / {"cmd": "power", "on": false}

P is an object path in the registered application; D a device path such as
/org/bluez/hci0/dev_00_11_22_33_44_55 (bluer requires the `device` and `mtu` options).
Run it with /usr/bin/python3 (Debian's python3-dbusmock) and DBUS_SYSTEM_BUS_ADDRESS set.
"""

import json
import os
import sys

import dbus
import dbus.mainloop.glib
import dbus.service
from dbusmock import mockobject
from dbusmock.templates import bluez5
from gi.repository import GLib

ADAPTER = 'hci0'
ADAPTER_PATH = '/org/bluez/' + ADAPTER
ADAPTER_IFACE = 'org.bluez.Adapter1'
GATT_MANAGER = 'org.bluez.GattManager1'
ADVERTISING_MANAGER = 'org.bluez.LEAdvertisingManager1'
ADVERTISEMENT = 'org.bluez.LEAdvertisement1'
CHARACTERISTIC = 'org.bluez.GattCharacteristic1'
DESCRIPTOR = 'org.bluez.GattDescriptor1'
OBJECT_MANAGER = 'org.freedesktop.DBus.ObjectManager'
PROPERTIES = 'org.freedesktop.DBus.Properties'
MTU = 185

# (sender, path) -> the application's objects / the advertisement's properties.
applications = {}
advertisements = {}
# (sender, path) -> the signal match of a characteristic ever subscribed to.
subscriptions = {}


def out(message):
    sys.stdout.write(json.dumps(message) + '\n')
    sys.stdout.flush()


def plain(value):
    """D-Bus values as JSON: byte arrays as lists of numbers."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dbus.Boolean):
        return bool(value)
    if isinstance(value, (dbus.Byte, dbus.Int16, dbus.UInt16, dbus.Int32, dbus.UInt32, dbus.Int64, dbus.UInt64)):
        return int(value)
    if isinstance(value, (dbus.String, dbus.ObjectPath, dbus.Signature)):
        return str(value)
    return value


@dbus.service.method(GATT_MANAGER, in_signature='oa{sv}', out_signature='',
                     sender_keyword='sender', async_callbacks=('ok', 'err'))
def RegisterApplication(self, path, _options, sender=None, ok=None, err=None):
    def got(objects):
        applications[(str(sender), str(path))] = plain(objects)
        ok()
        out({'event': 'registered', 'what': 'application', 'path': str(path)})

    bus.get_object(sender, path, introspect=False).GetManagedObjects(
        dbus_interface=OBJECT_MANAGER, reply_handler=got, error_handler=err)


@dbus.service.method(GATT_MANAGER, in_signature='o', out_signature='', sender_keyword='sender')
def UnregisterApplication(self, path, sender=None):
    if applications.pop((str(sender), str(path)), None) is None:
        raise dbus.exceptions.DBusException('no such application', name='org.bluez.Error.DoesNotExist')
    out({'event': 'unregistered', 'what': 'application', 'path': str(path)})


@dbus.service.method(ADVERTISING_MANAGER, in_signature='oa{sv}', out_signature='',
                     sender_keyword='sender', async_callbacks=('ok', 'err'))
def RegisterAdvertisement(self, path, _options, sender=None, ok=None, err=None):
    def got(props):
        advertisements[(str(sender), str(path))] = plain(props)
        ok()
        out({'event': 'registered', 'what': 'advertisement', 'path': str(path)})

    bus.get_object(sender, path, introspect=False).GetAll(
        ADVERTISEMENT, dbus_interface=PROPERTIES, reply_handler=got, error_handler=err)


@dbus.service.method(ADVERTISING_MANAGER, in_signature='o', out_signature='', sender_keyword='sender')
def UnregisterAdvertisement(self, path, sender=None):
    if advertisements.pop((str(sender), str(path)), None) is None:
        raise dbus.exceptions.DBusException('no such advertisement', name='org.bluez.Error.DoesNotExist')
    out({'event': 'unregistered', 'what': 'advertisement', 'path': str(path)})


def owner_changed(name, _old, new):
    """Like bluetoothd, forgets what a client registered when it leaves the bus."""
    if new or name.startswith('org.'):
        return
    for registry, what in [(applications, 'application'), (advertisements, 'advertisement')]:
        for key in [k for k in registry if k[0] == name]:
            del registry[key]
            out({'event': 'unregistered', 'what': what, 'path': key[1], 'why': 'owner gone'})


def add_adapter():
    bluez5.AddAdapter(root, ADAPTER, 'lampi-test')
    adapter = mockobject.objects[ADAPTER_PATH]
    for iface, method in [(GATT_MANAGER, RegisterApplication), (GATT_MANAGER, UnregisterApplication),
                          (ADVERTISING_MANAGER, RegisterAdvertisement),
                          (ADVERTISING_MANAGER, UnregisterAdvertisement)]:
        adapter.methods.setdefault(iface, {})[method.__name__] = (
            method._dbus_in_signature, method._dbus_out_signature, None, method)
    adapter.props[GATT_MANAGER] = {}
    adapter.props[ADVERTISING_MANAGER] = {
        'ActiveInstances': dbus.Byte(0),
        'SupportedInstances': dbus.Byte(4),
        'SupportedIncludes': dbus.Array(['local-name'], signature='s'),
    }


def remove_adapter():
    # bluetoothd forgets what was registered on an adapter that goes, and sends no Release.
    applications.clear()
    advertisements.clear()
    bluez5.RemoveAdapter(root, ADAPTER)


def owner_of(path):
    """The registered application holding `path`, and the interface of that object."""
    for (sender, _), objects in applications.items():
        if path in objects:
            iface = CHARACTERISTIC if CHARACTERISTIC in objects[path] else DESCRIPTOR
            return sender, iface
    raise KeyError(f'no registered object {path}')


def call(request, method, *args):
    """Calls `method` on the application object request['path'] and answers when it answers."""
    sender, iface = owner_of(request['path'])
    obj = bus.get_object(sender, request['path'], introspect=False)

    def answered(*result):
        out({'id': request['id'], 'value': plain(result[0]) if result else None})

    def failed(error):
        out({'id': request['id'], 'error': error.get_dbus_name(), 'message': error.get_dbus_message()})

    getattr(obj, method)(*args, dbus_interface=iface, reply_handler=answered, error_handler=failed)


def options(request):
    opts = {'device': dbus.ObjectPath(request['device']), 'mtu': dbus.UInt16(MTU), 'link': 'LE'}
    if request.get('offset'):
        opts['offset'] = dbus.UInt16(request['offset'])
    if 'type' in request:
        opts['type'] = request['type']
    return dbus.Dictionary(opts, signature='sv')


def notified(path):
    def on_change(iface, changed, _invalidated):
        if iface == CHARACTERISTIC and 'Value' in changed:
            out({'event': 'notification', 'path': path, 'value': plain(changed['Value'])})
    return on_change


def command(request):
    cmd = request['cmd']
    if cmd == 'tree':
        out({'id': request['id'],
             'applications': [{'sender': s, 'path': p, 'objects': o} for (s, p), o in applications.items()],
             'advertisements': [{'sender': s, 'path': p, 'props': a} for (s, p), a in advertisements.items()]})
    elif cmd == 'read':
        call(request, 'ReadValue', options(request))
    elif cmd == 'write':
        call(request, 'WriteValue', dbus.Array(request['value'], signature='y'), options(request))
    elif cmd == 'start_notify':
        sender, _ = owner_of(request['path'])
        if (sender, request['path']) not in subscriptions:
            subscriptions[(sender, request['path'])] = bus.add_signal_receiver(
                notified(request['path']), 'PropertiesChanged', PROPERTIES, sender, request['path'])
        call(request, 'StartNotify')
    elif cmd == 'stop_notify':
        # Still listening: what the application sends after StopNotify shows up too.
        call(request, 'StopNotify')
    elif cmd == 'remove_adapter':
        remove_adapter()
        out({'id': request['id']})
    elif cmd == 'add_adapter':
        add_adapter()
        out({'id': request['id']})
    elif cmd == 'power':
        mockobject.objects[ADAPTER_PATH].UpdateProperties(ADAPTER_IFACE, {'Powered': dbus.Boolean(request['on'])})
        out({'id': request['id']})
    else:
        out({'id': request['id'], 'error': f'unknown command {cmd}'})


def on_stdin(source, _condition):
    line = source.readline()
    if not line:
        loop.quit()
        return False
    request = json.loads(line)
    try:
        command(request)
    except Exception as e:  # pylint: disable=broad-except
        out({'id': request.get('id'), 'error': type(e).__name__, 'message': str(e)})
    return True


dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(os.environ['DBUS_SYSTEM_BUS_ADDRESS'])
name = dbus.service.BusName(bluez5.BUS_NAME, bus, do_not_queue=True)
# dbusmock logs every call to stdout unless given a file: stdout is the test's.
root = mockobject.DBusMockObject(name, bluez5.MAIN_OBJ, OBJECT_MANAGER, {}, logfile=os.devnull,
                                 is_object_manager=True)
mockobject.objects[bluez5.MAIN_OBJ] = root
root.AddTemplate('bluez5', {})
add_adapter()
bus.add_signal_receiver(owner_changed, 'NameOwnerChanged', 'org.freedesktop.DBus', 'org.freedesktop.DBus')
loop = GLib.MainLoop()
GLib.io_add_watch(sys.stdin, GLib.IO_IN | GLib.IO_HUP, on_stdin)
out({'event': 'ready'})
loop.run()
