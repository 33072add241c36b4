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


def stable_mac(network_id: str, address: str) -> str:
    digest = hashlib.sha256(f"{network_id}/{address}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))
