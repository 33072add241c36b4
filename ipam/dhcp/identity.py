"""Who asks the LAN's DHCP server for an endpoint's address: its MAC, client identifier, host name.

Rules:

* **MAC**: the one Docker sent (`--mac-address`), else, when Docker named the endpoint (Docker >=
  29 names every endpoint after its container), one derived from the pool's LAN, its subnet and
  that name, so the same container asks with the same MAC after a restart, a dockerd restart or a
  reboot and the server hands it the same lease back; else a fresh random one. Derived and random
  MACs have the first octet 0x02: locally administered unicast (IEEE 802 U/L and I/G bits), never
  a vendor's burnt-in address, like the driver's own (driver/mac.py).
* **Client identifier** (option 61): hardware type 1 (Ethernet) and the MAC, what dhclient and
  most clients send, so a server's reservation by MAC and by client ID both match.
* **Host name** (option 12): the endpoint name when it is a valid host name label (RFC 1123: ASCII
  letters, digits and inner hyphens, at most 63 characters); otherwise its characters outside
  that set become hyphens; none when nothing usable is left or Docker sent no name.

Pure: no I/O (the random source is a parameter).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from typing import Final

from ipam.lan import DhcpIdentity

MAX_HOST_NAME: Final = 63  # one DNS label (RFC 1035 §2.3.4)
HARDWARE_ETHERNET: Final = 1  # ARP hardware type of Ethernet (RFC 1700), option 61's first byte
_LOCAL_UNICAST: Final = 0x02
_NOT_IN_LABEL: Final = re.compile(r"[^A-Za-z0-9-]+")


def dhcp_identity(
    *,
    lan: str,
    subnet: str,
    mac: str | None,
    endpoint: str | None,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> DhcpIdentity:
    """The identity an endpoint of the pool (`lan`, `subnet`) asks the DHCP server with."""
    if mac is None:
        mac = stable_mac(lan, subnet, endpoint) if endpoint else random_mac(random_bytes)
    return DhcpIdentity(mac=mac, client_id=client_id_of(mac), hostname=host_name(endpoint))


def stable_mac(lan: str, subnet: str, endpoint: str) -> str:
    """A locally administered MAC that depends only on (LAN, subnet, endpoint name)."""
    digest = hashlib.sha256(f"{lan}/{subnet}/{endpoint}".encode()).digest()
    return _format((_LOCAL_UNICAST, *digest[:5]))


def random_mac(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    return _format((_LOCAL_UNICAST, *random_bytes(5)))


def client_id_of(mac: str) -> bytes:
    """Option 61 for `mac` ("aa:bb:cc:dd:ee:ff"): the hardware type, then the 6 MAC bytes."""
    return bytes((HARDWARE_ETHERNET, *bytes.fromhex(mac.replace(":", ""))))


def host_name(endpoint: str | None) -> str | None:
    """The host name label for an endpoint name, or None (see the module docstring)."""
    if not endpoint:
        return None
    label = _NOT_IN_LABEL.sub("-", endpoint).strip("-")[:MAX_HOST_NAME].rstrip("-")
    return label or None


def _format(octets: tuple[int, ...]) -> str:
    return ":".join(f"{b:02x}" for b in octets)
