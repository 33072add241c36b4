"""Tell the LAN where a new container's address lives: gratuitous ARP and unsolicited NA.

Addresses on a LAN are reused quickly (a container is replaced, its address goes to the next one
with a new MAC), and routers keep ARP/neighbour entries for minutes to hours. Docker >= 28 sends
these messages from inside the container; older engines send nothing, and a remote driver may not
enter the container. So the plugin sends them from the host, on the parent link, with the
container's MAC as the source: the switch learns the port, the neighbours update their caches.

Frame building is pure (tested byte for byte); sending uses an AF_PACKET socket on the parent.
Layer-3 ipvlan has no MAC of its own on the LAN and is not announced.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from collections.abc import Iterable

from driver.errors import LinkError
from driver.logs import log

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST = b"\xff" * 6
# RFC 4861 §7.2.6: unsolicited advertisements go to the all-nodes multicast group ff02::1,
# whose MAC is 33:33 + its low 32 bits (RFC 2464 §7).
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def gratuitous_arp(mac: str, address: ipaddress.IPv4Address) -> bytes:
    """An ARP request for our own address (RFC 5227 §3 "ARP Announcement")."""
    src = mac_bytes(mac)
    ip = address.packed
    ethernet = BROADCAST + src + struct.pack("!H", ETH_P_ARP)
    # htype Ethernet, ptype IPv4, hlen 6, plen 4, op request; target MAC zero, target IP = sender.
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + src + ip + b"\x00" * 6 + ip
    return ethernet + arp


def unsolicited_na(mac: str, address: ipaddress.IPv6Address) -> bytes:
    """A Neighbor Advertisement with the Override flag (RFC 4861 §4.4, §7.2.6)."""
    src = mac_bytes(mac)
    # type 136, code 0, checksum (filled below), flags: Override (0x20000000), target, then the
    # Target Link-Layer Address option (type 2, length 1 unit of 8 bytes).
    body = struct.pack("!BBHI", 136, 0, 0, 0x20000000) + address.packed + b"\x02\x01" + src
    checksum = _icmpv6_checksum(address, ALL_NODES, body)
    body = body[:2] + struct.pack("!H", checksum) + body[4:]
    # IPv6 header: version 6, payload length, next header ICMPv6 (58), hop limit 255 (required:
    # receivers drop NDP messages that may have crossed a router).
    ipv6 = struct.pack("!IHBB", 6 << 28, len(body), 58, 255) + address.packed + ALL_NODES.packed
    return ALL_NODES_MAC + src + struct.pack("!H", ETH_P_IPV6) + ipv6 + body


def _icmpv6_checksum(src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address, body: bytes) -> int:
    pseudo = src.packed + dst.packed + struct.pack("!IxxxB", len(body), 58)
    data = pseudo + body
    if len(data) % 2:
        data += b"\x00"
    words: tuple[int, ...] = struct.unpack(f"!{len(data) // 2}H", data)
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


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
    parent: str, payloads: list[bytes], count: int = 3, interval: float = 1.0
) -> None:
    """Send ``payloads`` ``count`` times, ``interval`` seconds apart, the first after one interval:
    Docker needs that moment to move the link into the container and configure it."""
    for _ in range(count):
        await asyncio.sleep(interval)
        try:
            send_frames(parent, payloads)
        except LinkError as exc:
            # Best effort: the LAN learns the address anyway on the container's first packet.
            log.warning("could not announce addresses", parent=parent, error=str(exc))
            return
