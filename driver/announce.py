"""Tell the LAN where a new container's address lives: gratuitous ARP and unsolicited NA.

Addresses on a LAN are reused quickly (a container is replaced, its address goes to the next one
with a new MAC), and routers keep ARP/neighbour entries for minutes to hours. Docker >= 28 sends
these messages from inside the container; older engines send nothing, and a remote driver may not
enter the container. So the plugin sends them from the host, on the parent link, with the
container's MAC as the source: the switch learns the port, the neighbours update their caches.

Frame building is pure (tested byte for byte); sending uses an AF_PACKET socket on the parent.
Layer-3 ipvlan has no MAC of its own on the LAN and is not announced. What was sent is counted
(`Announced`) for the daemon's metrics.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from driver.errors import LinkError
from driver.lan.frames import (
    ALL_NODES,
    ALL_NODES_MAC,
    ARP_REQUEST,
    NEIGHBOUR_ADVERTISEMENT,
    OPTION_TARGET_LINK_ADDRESS,
    arp_frame,
    icmpv6_frame,
    mac_bytes,
)
from driver.logs import log

OVERRIDE = 0x20000000  # the advertisement's Override flag


@dataclass
class Announced:
    """Announcements since the start: frames sent, and rounds that could not be sent."""

    frames: int = 0
    failures: int = 0


def gratuitous_arp(mac: str, address: ipaddress.IPv4Address) -> bytes:
    """An ARP request for our own address (RFC 5227 §3 "ARP Announcement"): target IP = sender
    IP, target MAC zero, broadcast."""
    return arp_frame(ARP_REQUEST, mac, address, address)


def unsolicited_na(mac: str, address: ipaddress.IPv6Address) -> bytes:
    """A Neighbor Advertisement with the Override flag (RFC 4861 §4.4, §7.2.6) and the Target
    Link-Layer Address option (type 2, one unit of 8 bytes), to all nodes (RFC 4861 §7.2.6)."""
    body = (
        struct.pack("!BBHI", NEIGHBOUR_ADVERTISEMENT, 0, 0, OVERRIDE)
        + address.packed
        + struct.pack("!BB", OPTION_TARGET_LINK_ADDRESS, 1)
        + mac_bytes(mac)
    )
    return icmpv6_frame(mac, ALL_NODES_MAC, address, ALL_NODES, body)


def frames(
    mac: str, addresses: Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> list[bytes]:
    out = []
    for address in addresses:
        if isinstance(address, ipaddress.IPv4Address):
            out.append(gratuitous_arp(mac, address))
        elif not address.is_link_local:
            out.append(unsolicited_na(mac, address))
    return out


def send_frames(parent: str, payloads: Iterable[bytes]) -> None:
    try:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
            sock.bind((parent, 0))
            for frame in payloads:
                sock.send(frame)
    except OSError as exc:
        raise LinkError(f"cannot announce addresses on {parent}: {exc.strerror}") from exc


async def announce(
    parent: str,
    payloads: list[bytes],
    count: int = 3,
    interval: float = 1.0,
    counted: Announced | None = None,
) -> None:
    """Send ``payloads`` ``count`` times, ``interval`` seconds apart, the first after one interval:
    Docker needs that moment to move the link into the container and configure it. What was sent
    (and what failed) is added to ``counted``."""
    counted = counted if counted is not None else Announced()
    for _ in range(count):
        await asyncio.sleep(interval)
        try:
            # On a worker thread: closing a packet socket waits for an RCU grace period.
            await asyncio.to_thread(send_frames, parent, payloads)
        except LinkError as exc:
            counted.failures += 1
            # Best effort: the LAN learns the address anyway on the container's first packet.
            log.warning("could not announce addresses", parent=parent, error=str(exc))
            return
        counted.frames += len(payloads)
