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

It plays the centrals two ways. For a real central (`lampi ble`, btleplug), like bluetoothd
on the central's side: discovery turns each registered advertisement into a remote Device1,
and Connect mirrors the advertiser's registered services under it as
serviceXXXX/charXXXX/descXXXX objects (found through Introspect, as btleplug does), whose
ReadValue/WriteValue/StartNotify/StopNotify go to the application with the `device` and `mtu`
options, its refusals coming back as bluetoothd passes on an ATT error, and its
PropertiesChanged(Value) coming back as notifications; a value read shows as a change of Value
too, as with bluetoothd. A connection ends with Disconnect, when its last client leaves the bus,
or when the advertiser does. Events: {"event": "discovered" | "connected", "device": path} and
{"event": "disconnected", "device": path, "why": ...}.

And for the tests, the test sends one JSON command a line on stdin and reads one JSON
line back for each (with the command's "id"), among event lines ({"event": ...}):

  {"id": 1, "cmd": "tree"}                     the registered applications and advertisements
  {"id": 2, "cmd": "read", "path": P, "device": D, "offset": 0}
  {"id": 3, "cmd": "write", "path": P, "value": [1], "device": D, "type": "request"}
  {"id": 4, "cmd": "start_notify", "path": P}  then {"event": "notification", "path", "value"}
  {"id": 5, "cmd": "stop_notify", "path": P}
  {"id": 6, "cmd": "remove_adapter"} / {"cmd": "add_adapter"} / {"cmd": "power", "on": false}
  {"id": 7, "cmd": "connect_central", "device": D} / {"cmd": "disconnect_central", "device": D}
      a central connected to the lamp, as bluetoothd shows one: a Device1 under the adapter

P is an object path in the registered application; D a device path such as
/org/bluez/hci0/dev_00_11_22_33_44_55 (bluer requires the `device` and `mtu` options).
Run it with /usr/bin/python3 (Debian's python3-dbusmock) and DBUS_SYSTEM_BUS_ADDRESS set.
"""

import json
import os
import sys
from xml.etree import ElementTree

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
DEVICE = 'org.bluez.Device1'
SERVICE = 'org.bluez.GattService1'
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

# The central's side. Remote device path -> {'sender': the advertiser's bus name, 'clients':
# the bus names that connected it, 'connected': bool}.
remote_devices = {}
# An advertiser's LocalName (or advertisement path) -> its address, kept across restarts.
addresses = {}
# Mirrored object path -> (device path, application sender, application path, interface).
mirrored = {}
# Mirrored characteristic path -> the bus names subscribed to it.
notify_clients = {}
# (application sender, application path) -> the mirrored characteristics notified of it, and
# the signal match relaying its Value to them.
relayed = {}
relays = {}
# A client's bus name -> its device path as the peripheral's application sees it.
centrals = {}
# How long bluetoothd keeps a device whose advertiser went (its TemporaryTimeout, shortened).
FORGET_MS = 500

_mock_introspect = mockobject.DBusMockObject.Introspect


@dbus.service.method(dbus.INTROSPECTABLE_IFACE, in_signature='', out_signature='s',
                     path_keyword='object_path', connection_keyword='connection')
def Introspect(self, object_path, connection):
    """dbusmock's Introspect lists the interfaces that have only properties after the child
    nodes, which bluez-async's parser (btleplug's) rejects: they go first, as with bluetoothd."""
    tree = ElementTree.fromstring(_mock_introspect(self, object_path, connection))
    for node in tree.findall('node'):
        tree.remove(node)
        tree.append(node)
    return ElementTree.tostring(tree, encoding='unicode')


mockobject.DBusMockObject.Introspect = Introspect


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
        discover()

    bus.get_object(sender, path, introspect=False).GetAll(
        ADVERTISEMENT, dbus_interface=PROPERTIES, reply_handler=got, error_handler=err)


@dbus.service.method(ADVERTISING_MANAGER, in_signature='o', out_signature='', sender_keyword='sender')
def UnregisterAdvertisement(self, path, sender=None):
    if advertisements.pop((str(sender), str(path)), None) is None:
        raise dbus.exceptions.DBusException('no such advertisement', name='org.bluez.Error.DoesNotExist')
    out({'event': 'unregistered', 'what': 'advertisement', 'path': str(path)})


def owner_changed(name, _old, new):
    """Like bluetoothd, forgets what a client registered when it leaves the bus, its
    subscriptions and connections, and a peripheral's connections when the peripheral goes."""
    if new or name.startswith('org.'):
        return
    for registry, what in [(applications, 'application'), (advertisements, 'advertisement')]:
        for key in [k for k in registry if k[0] == name]:
            del registry[key]
            out({'event': 'unregistered', 'what': what, 'path': key[1], 'why': 'owner gone'})
    for path in [p for p, clients in notify_clients.items() if name in clients]:
        unsubscribe(path, name)
    for key in [k for k in relays if k[0] == name]:
        relays.pop(key).remove()
        relayed.pop(key, None)
    for device, remote in list(remote_devices.items()):
        if remote['sender'] == name:
            disconnect(device, 'peripheral gone')
            GLib.timeout_add(FORGET_MS, forget, device)
        elif name in remote['clients']:
            remote['clients'].discard(name)
            if not remote['clients']:
                disconnect(device, 'last client gone')


def install(obj, iface, methods):
    """Real dbus-python methods on a mock object (dbusmock's AddMethod gives no sender and no
    asynchronous reply)."""
    for method in methods:
        obj.methods.setdefault(iface, {})[method.__name__] = (
            method._dbus_in_signature, method._dbus_out_signature, None, method)


def add_object(path, iface, props, methods):
    root.AddObject(path, iface, props, [])
    install(mockobject.objects[path], iface, methods)
    root.EmitSignal(OBJECT_MANAGER, 'InterfacesAdded', 'oa{sa{sv}}',
                    [dbus.ObjectPath(path), {iface: props}])


def remove_object(path):
    iface = mockobject.objects[path].interface
    root.RemoveObject(path)
    root.EmitSignal(OBJECT_MANAGER, 'InterfacesRemoved', 'oas', [dbus.ObjectPath(path), [iface]])


def discovering():
    adapter = mockobject.objects.get(ADAPTER_PATH)
    return adapter is not None and bool(adapter.props[ADAPTER_IFACE]['Discovering'])


def discover():
    """A scan that hears every registered advertisement: each is a remote Device1, with what
    btleplug requires of one."""
    for (sender, path), props in advertisements.items():
        name = props.get('LocalName')
        address = addresses.setdefault(name or path, f'10:00:00:00:00:{len(addresses) + 1:02X}')
        device = f'{ADAPTER_PATH}/dev_{address.replace(":", "_")}'
        if device in remote_devices:
            remote_devices[device]['sender'] = sender
            continue
        if not discovering():
            continue
        device_props = {
            'Address': dbus.String(address, variant_level=1),
            'AddressType': dbus.String('public', variant_level=1),
            'Alias': dbus.String(name or address.replace(':', '-'), variant_level=1),
            'UUIDs': dbus.Array(props.get('ServiceUUIDs', []), signature='s', variant_level=1),
            'Paired': dbus.Boolean(False, variant_level=1),
            'Connected': dbus.Boolean(False, variant_level=1),
            'ServicesResolved': dbus.Boolean(False, variant_level=1),
            'Trusted': dbus.Boolean(False, variant_level=1),
            'Blocked': dbus.Boolean(False, variant_level=1),
            'LegacyPairing': dbus.Boolean(False, variant_level=1),
            'RSSI': dbus.Int16(-50, variant_level=1),
            'Adapter': dbus.ObjectPath(ADAPTER_PATH, variant_level=1),
        }
        if name:
            device_props['Name'] = dbus.String(name, variant_level=1)
        remote_devices[device] = {'sender': sender, 'clients': set(), 'connected': False}
        add_object(device, DEVICE, device_props, [Connect, Disconnect])
        out({'event': 'discovered', 'device': device})


def forget(device):
    """Drops a device whose advertiser went and did not come back."""
    remote = remote_devices.get(device)
    if remote and not remote['connected'] and not any(k[0] == remote['sender'] for k in advertisements):
        del remote_devices[device]
        remove_object(device)
    return False


@dbus.service.method(ADAPTER_IFACE, in_signature='', out_signature='')
def StartDiscovery(adapter):
    bluez5.StartDiscovery(adapter)
    discover()


@dbus.service.method(DEVICE, in_signature='', out_signature='', sender_keyword='sender')
def Connect(device, sender=None):
    remote = remote_devices[device.path]
    if not any(k[0] == remote['sender'] for k in applications):
        raise dbus.exceptions.DBusException('Software caused connection abort',
                                            name='org.bluez.Error.Failed')
    remote['clients'].add(str(sender))
    # One connection, shared by bluetoothd's clients.
    if remote['connected']:
        return
    remote['connected'] = True
    mirror(device.path, remote['sender'])
    device.UpdateProperties(DEVICE, {'Connected': dbus.Boolean(True), 'ServicesResolved': dbus.Boolean(True)})
    out({'event': 'connected', 'device': device.path})


@dbus.service.method(DEVICE, in_signature='', out_signature='')
def Disconnect(device):
    disconnect(device.path, 'Disconnect')


def disconnect(device, why):
    remote = remote_devices[device]
    if not remote['connected']:
        return
    obj = mockobject.objects[device]
    obj.UpdateProperties(DEVICE, {'ServicesResolved': dbus.Boolean(False)})
    paths = [p for p, m in mirrored.items() if m[0] == device]
    for path in paths:
        for client in list(notify_clients.get(path, ())):
            unsubscribe(path, client)
    # Children before their parents.
    for path in sorted(paths, key=len, reverse=True):
        del mirrored[path]
        remove_object(path)
    remote['connected'] = False
    remote['clients'].clear()
    obj.UpdateProperties(DEVICE, {'Connected': dbus.Boolean(False)})
    out({'event': 'disconnected', 'device': device, 'why': why})


def mirror(device, sender):
    """The advertiser's registered services as bluetoothd shows a connected peripheral's."""
    handle = 0
    under = {}
    for (app_sender, _), objects in applications.items():
        if app_sender != sender:
            continue
        # Sorted, a parent comes before its children.
        for app_path in sorted(objects):
            ifaces = objects[app_path]
            handle += 1
            if SERVICE in ifaces:
                props = ifaces[SERVICE]
                path = f'{device}/service{handle:04x}'
                add_object(path, SERVICE, {
                    'UUID': dbus.String(props['UUID'], variant_level=1),
                    'Primary': dbus.Boolean(props.get('Primary', True), variant_level=1),
                    'Device': dbus.ObjectPath(device, variant_level=1),
                    'Includes': dbus.Array([], signature='o', variant_level=1),
                }, [])
            elif CHARACTERISTIC in ifaces:
                props = ifaces[CHARACTERISTIC]
                parent = under[props['Service']]
                path = f'{parent}/char{handle:04x}'
                add_object(path, CHARACTERISTIC, {
                    'UUID': dbus.String(props['UUID'], variant_level=1),
                    'Service': dbus.ObjectPath(parent, variant_level=1),
                    'Value': dbus.Array([], signature='y', variant_level=1),
                    'Notifying': dbus.Boolean(False, variant_level=1),
                    'Flags': dbus.Array(props['Flags'], signature='s', variant_level=1),
                    'MTU': dbus.UInt16(MTU, variant_level=1),
                }, [ReadCharacteristic, WriteCharacteristic, StartNotify, StopNotify])
            elif DESCRIPTOR in ifaces:
                props = ifaces[DESCRIPTOR]
                parent = under[props['Characteristic']]
                path = f'{parent}/desc{handle:04x}'
                add_object(path, DESCRIPTOR, {
                    'UUID': dbus.String(props['UUID'], variant_level=1),
                    'Characteristic': dbus.ObjectPath(parent, variant_level=1),
                    'Value': dbus.Array([], signature='y', variant_level=1),
                }, [ReadDescriptor, WriteDescriptor])
            else:
                continue
            under[app_path] = path
            iface = next(i for i in (SERVICE, CHARACTERISTIC, DESCRIPTOR) if i in ifaces)
            mirrored[path] = (device, app_sender, app_path, iface)


# bluetoothd turns an application's error into an ATT error (src/shared/gatt-database.c) ...
ATT_ERRORS = {
    'org.bluez.Error.Failed': 0x80,
    'org.bluez.Error.NotSupported': 0x06,
    'org.bluez.Error.NotAuthorized': 0x08,
    'org.bluez.Error.InvalidValueLength': 0x0d,
    'org.bluez.Error.InvalidOffset': 0x07,
    'org.bluez.Error.NotPermitted': 0x03,
}


def client_error(error):
    """... and the central's bluetoothd an ATT error into its client's (src/gatt-client.c)."""
    att = ATT_ERRORS.get(error.get_dbus_name(), 0x0e)
    name, message = {
        0x03: ('NotPermitted', 'Write not permitted'),
        0x06: ('NotSupported', 'Operation is not supported'),
        0x07: ('InvalidArguments', 'Invalid offset'),
        0x08: ('NotAuthorized', 'Operation Not Authorized'),
        0x0d: ('InvalidArguments', 'Invalid Length'),
    }.get(att, ('Failed', f'Operation failed with ATT error: 0x{att:02x}'))
    return dbus.exceptions.DBusException(message, name='org.bluez.Error.' + name)


def central_of(sender):
    """A client's device path as the peripheral's application sees it."""
    return centrals.setdefault(sender, f'{ADAPTER_PATH}/dev_00_11_22_33_44_{0x55 + len(centrals):02X}')


def forward(obj, sender, method, args, ok, err, answered=None):
    """Calls `method` of the application object `obj` mirrors, answering as it answers."""
    if obj.path not in mirrored:
        raise dbus.exceptions.DBusException('Not connected', name='org.bluez.Error.NotConnected')
    _, app_sender, app_path, iface = mirrored[obj.path]

    def replied(*result):
        ok(*result)
        if answered:
            answered(*result)

    bus.get_object(app_sender, app_path, introspect=False).get_dbus_method(method, iface)(
        *args, reply_handler=replied, error_handler=lambda e: err(client_error(e)))


def app_options(options, sender):
    opts = {'device': dbus.ObjectPath(central_of(str(sender))), 'mtu': dbus.UInt16(MTU), 'link': 'LE'}
    # bluez-async sends the offset as a uint64; an application gets a uint16.
    if 'offset' in options:
        opts['offset'] = dbus.UInt16(options['offset'])
    if 'type' in options:
        opts['type'] = options['type']
    return dbus.Dictionary(opts, signature='sv')


def read_value(obj, options, sender, ok, err):
    def value_read(value):
        # bluetoothd keeps a value read as Value, which says it changed.
        if obj.path in mirrored:
            obj.UpdateProperties(obj.interface, {'Value': dbus.Array(value, signature='y')})
    forward(obj, sender, 'ReadValue', [app_options(options, sender)], ok, err, value_read)


def write_value(obj, value, options, sender, ok, err):
    opts = app_options(options, sender)
    opts.setdefault('type', 'request')
    forward(obj, sender, 'WriteValue', [value, opts], ok, err)


@dbus.service.method(CHARACTERISTIC, in_signature='a{sv}', out_signature='ay', sender_keyword='sender',
                     async_callbacks=('ok', 'err'))
def ReadCharacteristic(obj, options, sender=None, ok=None, err=None):
    read_value(obj, options, sender, ok, err)


@dbus.service.method(DESCRIPTOR, in_signature='a{sv}', out_signature='ay', sender_keyword='sender',
                     async_callbacks=('ok', 'err'))
def ReadDescriptor(obj, options, sender=None, ok=None, err=None):
    read_value(obj, options, sender, ok, err)


@dbus.service.method(CHARACTERISTIC, in_signature='aya{sv}', out_signature='', sender_keyword='sender',
                     async_callbacks=('ok', 'err'))
def WriteCharacteristic(obj, value, options, sender=None, ok=None, err=None):
    write_value(obj, value, options, sender, ok, err)


@dbus.service.method(DESCRIPTOR, in_signature='aya{sv}', out_signature='', sender_keyword='sender',
                     async_callbacks=('ok', 'err'))
def WriteDescriptor(obj, value, options, sender=None, ok=None, err=None):
    write_value(obj, value, options, sender, ok, err)


for method, name in [(ReadCharacteristic, 'ReadValue'), (ReadDescriptor, 'ReadValue'),
                     (WriteCharacteristic, 'WriteValue'), (WriteDescriptor, 'WriteValue')]:
    method.__name__ = name


@dbus.service.method(CHARACTERISTIC, in_signature='', out_signature='', sender_keyword='sender',
                     async_callbacks=('ok', 'err'))
def StartNotify(obj, sender=None, ok=None, err=None):
    """A client's subscription; the application is asked to notify for the first of all."""
    if obj.path not in mirrored:
        raise dbus.exceptions.DBusException('Not connected', name='org.bluez.Error.NotConnected')
    clients = notify_clients.setdefault(obj.path, set())
    if clients:
        clients.add(str(sender))
        ok()
        return
    clients.add(str(sender))
    obj.UpdateProperties(CHARACTERISTIC, {'Notifying': dbus.Boolean(True)})
    _, app_sender, app_path, _ = mirrored[obj.path]
    key = (app_sender, app_path)
    first = not relayed.get(key)
    relayed.setdefault(key, set()).add(obj.path)
    if key not in relays:
        relays[key] = bus.add_signal_receiver(relay(key), 'PropertiesChanged', PROPERTIES, app_sender, app_path)
    if first:
        forward(obj, sender, 'StartNotify', [], ok, err)
    else:
        ok()


@dbus.service.method(CHARACTERISTIC, in_signature='', out_signature='', sender_keyword='sender')
def StopNotify(obj, sender=None):
    if str(sender) not in notify_clients.get(obj.path, ()):
        raise dbus.exceptions.DBusException('No notify session started', name='org.bluez.Error.Failed')
    unsubscribe(obj.path, str(sender))


def unsubscribe(path, client):
    """Ends a client's subscription; the application stops notifying after the last of all."""
    clients = notify_clients.get(path, set())
    clients.discard(client)
    if clients:
        return
    notify_clients.pop(path, None)
    obj = mockobject.objects.get(path)
    if obj is not None:
        obj.UpdateProperties(CHARACTERISTIC, {'Notifying': dbus.Boolean(False)})
    _, app_sender, app_path, _ = mirrored[path]
    key = (app_sender, app_path)
    relayed.get(key, set()).discard(path)
    if not relayed.get(key):
        bus.get_object(app_sender, app_path, introspect=False).StopNotify(
            dbus_interface=CHARACTERISTIC, reply_handler=lambda: None, error_handler=lambda _e: None)


def relay(key):
    """The application's notifications, as notifications of the characteristics mirroring it."""
    def on_change(iface, changed, _invalidated):
        if iface != CHARACTERISTIC or 'Value' not in changed:
            return
        for path in relayed.get(key, ()):
            mockobject.objects[path].UpdateProperties(
                CHARACTERISTIC, {'Value': dbus.Array(changed['Value'], signature='y')})
    return on_change


def add_adapter():
    bluez5.AddAdapter(root, ADAPTER, 'lampi-test')
    adapter = mockobject.objects[ADAPTER_PATH]
    install(adapter, GATT_MANAGER, [RegisterApplication, UnregisterApplication])
    install(adapter, ADVERTISING_MANAGER, [RegisterAdvertisement, UnregisterAdvertisement])
    install(adapter, ADAPTER_IFACE, [StartDiscovery])
    adapter.props[GATT_MANAGER] = {}
    adapter.props[ADVERTISING_MANAGER] = {
        'ActiveInstances': dbus.Byte(0),
        'SupportedInstances': dbus.Byte(4),
        'SupportedIncludes': dbus.Array(['local-name'], signature='s'),
    }


def remove_adapter():
    # bluetoothd forgets what was registered on an adapter that goes, and sends no Release,
    # and its devices go with it.
    applications.clear()
    advertisements.clear()
    for device in list(remote_devices):
        disconnect(device, 'adapter gone')
        del remote_devices[device]
        remove_object(device)
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
    elif cmd == 'connect_central':
        address = request['device'].rsplit('/dev_', 1)[1].replace('_', ':')
        add_object(request['device'], DEVICE, {
            'Address': dbus.String(address, variant_level=1),
            'AddressType': dbus.String('public', variant_level=1),
            'Connected': dbus.Boolean(True, variant_level=1),
            'Paired': dbus.Boolean(False, variant_level=1),
            'Trusted': dbus.Boolean(False, variant_level=1),
            'Blocked': dbus.Boolean(False, variant_level=1),
            'Adapter': dbus.ObjectPath(ADAPTER_PATH, variant_level=1),
        }, [])
        out({'id': request['id']})
    elif cmd == 'disconnect_central':
        remove_object(request['device'])
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
