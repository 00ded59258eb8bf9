"""Bluetooth LE controllers for a kernel with no radio: one per address given, each a virtual
HCI device on /dev/vhci (hci0, hci1, ... in the order given, public addresses so bluetoothd
needs no random one), all on one virtual link, so a central on one reaches a peripheral on
another. Google's bumble plays the controllers (version pinned in bumble-requirements.txt).
Runs until killed. Used inside scripts/test-ble-vm.sh's VM.

Usage: python3 vhci_controllers.py ADDRESS...
"""

import asyncio
import logging
import sys

from bumble.controller import Controller
from bumble.core import PhysicalTransport
from bumble.link import LocalLink
from bumble.transport import open_transport


class ConnectionAddressedLink(LocalLink):
    """bumble 0.0.236's LocalLink sends LE ACL data under the sender controller's random
    address; a controller with a public address is connected under that one instead, so the
    receiver finds no connection for the data and drops every ATT PDU ("no connection for").
    This sends it under the address the sender's connection itself uses."""

    def send_acl_data(self, sender_controller, destination_address, transport, data):
        if transport != PhysicalTransport.LE:
            super().send_acl_data(sender_controller, destination_address, transport, data)
            return
        connection = sender_controller.le_connections.get(destination_address)
        destination = self.find_le_controller(destination_address)
        if connection is None or destination is None:
            logging.warning("LE data for %s, which is not connected", destination_address)
            return
        source = connection.self_address
        asyncio.get_running_loop().call_soon(
            lambda: destination.on_link_acl_data(source, transport, data)
        )


async def serve(addresses):
    link = ConnectionAddressedLink()
    transports = []
    # One after the other: each open of /dev/vhci is the next hciN.
    for index, address in enumerate(addresses):
        transport = await open_transport("vhci")
        transports.append(transport)
        Controller(
            f"C{index}",
            host_source=transport.source,
            host_sink=transport.sink,
            link=link,
            public_address=address,
        )
    print(f"controllers up: {' '.join(addresses)}", flush=True)
    await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(sys.argv[1:]))
