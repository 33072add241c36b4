"""MAC addresses for macvlan endpoints when Docker supplies none.

The address is derived from the network and the endpoint's IP address: a container started again
with the same ``--ip`` gets the same MAC, so the LAN's switches and ARP caches (and DHCP
reservations or firewall rules keyed on the MAC) stay valid across restarts. Mixing in the network
ID keeps two networks that reuse an address (different VLANs) from sharing a MAC on one parent.
The first octet is 0x02: a locally administered unicast address (IEEE 802, the U/L and I/G bits),
which never collides with a vendor's burnt-in address.
"""

from __future__ import annotations

import hashlib
import re

from driver.errors import InvalidOption

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def stable_mac(network_id: str, address: str) -> str:
    digest = hashlib.sha256(f"{network_id}/{address}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def check_mac(mac: str) -> str:
    """Docker's ``--mac-address``, normalised; a multicast or all-zero MAC is refused."""
    normal = mac.strip().lower().replace("-", ":")
    if not _MAC.match(normal):
        raise InvalidOption(f"MAC address {mac!r} is not of the form 02:42:c0:00:02:0a")
    first = int(normal[:2], 16)
    if first & 1:
        raise InvalidOption(f"MAC address {mac} is a multicast address; a link needs unicast")
    if normal == "00:00:00:00:00:00":
        raise InvalidOption("MAC address 00:00:00:00:00:00 is not a valid link address")
    return normal
