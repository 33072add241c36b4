"""Ask the LAN whether a device already holds an address, before it is handed out.

IPv4: the ARP probe of RFC 5227 (sender IP 0.0.0.0: nobody's cache learns a thing from it); a
holder answers with an ARP reply, and a device that announces or defends the address with a
request that names it as sender says the same. IPv6: the duplicate address detection
solicitation of RFC 4862; a holder answers with a neighbour advertisement for it.

What a probe cannot see: a device that is off or asleep, one whose firewall drops ARP or ICMPv6,
one on the other side of a router, and the host's own macvlan containers (the kernel does not
hand a parent's own frames to its children; the plugin knows those addresses anyway). No answer
means "nobody answered", never "certainly free".

The probe goes out of the network's link (the parent, or its VLAN link) with the link's own MAC,
through a packet socket whose filter lets only the answers for this address in.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import weakref

from driver.errors import LinkError, LinkNotFound
from driver.lan.frames import (
    ALL_NODES_MAC,
    NONCE_LENGTH,
    arp_probe,
    dad_solicitation,
    parse_arp,
    parse_neighbour_advert,
)
from driver.lan.packet_socket import (
    IFF_RUNNING,
    IFF_UP,
    Instruction,
    PacketSocket,
    arp_sender_filter,
    neighbour_advert_filter,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Probes at once in one event loop, over all links: each holds a socket, which sees (and the
# kernel copies to it) every answer for its address. More wait their turn.
MAX_PROBES_AT_ONCE = 32
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


async def probe_address(
    link: str,
    address: IPAddress,
    *,
    attempts: int = 2,
    wait: float = 0.3,
    netns: str | None = None,
) -> str | None:
    """The MAC of the device that answers for ``address`` on ``link``, or None when none does
    within ``wait`` seconds of the first probe (``attempts`` probes are spread over them).

    Raises `LinkError` (`LinkNotFound` for a missing link) when no probe can be made: the link is
    missing or down, or the socket is refused. ``netns``: a name under /run/netns (tests).
    """
    if attempts < 1 or wait <= 0:
        raise ValueError("a probe needs at least one attempt and a positive wait")
    slots = _slots.setdefault(asyncio.get_running_loop(), asyncio.Semaphore(MAX_PROBES_AT_ONCE))
    async with slots, _open(link, address, netns) as sock:
        own_mac, frame, nonce = _prepare(sock, address)
        return await _exchange(sock, address, own_mac, frame, nonce, attempts, wait)


def _open(link: str, address: IPAddress, netns: str | None) -> PacketSocket:
    program: tuple[Instruction, ...]
    if isinstance(address, ipaddress.IPv4Address):
        program = arp_sender_filter(address)
    else:
        program = neighbour_advert_filter(address)
    try:
        return PacketSocket.open(link, program, netns)
    except OSError as exc:
        raise _cannot(address, link, exc) from exc


def _prepare(sock: PacketSocket, address: IPAddress) -> tuple[str, bytes, bytes | None]:
    """The link's MAC and the probe to send; refuses a link that is down."""
    try:
        flags = sock.flags()
        own_mac = sock.hardware_address()
        if not flags & IFF_UP:
            raise LinkError(f"cannot probe {address} on {sock.link}: the link is down")
        if not flags & IFF_RUNNING:
            raise LinkError(f"cannot probe {address} on {sock.link}: the link is down (no carrier)")
        if isinstance(address, ipaddress.IPv4Address):
            return own_mac, arp_probe(own_mac, address), None
        # The answer goes to all nodes: a NIC that filters multicast must let it in even where
        # the link itself has no IPv6 (and so no group of its own).
        sock.join_multicast(ALL_NODES_MAC)
    except OSError as exc:
        raise _cannot(address, sock.link, exc) from exc
    nonce = os.urandom(NONCE_LENGTH)
    return own_mac, dad_solicitation(own_mac, address, nonce), nonce


async def _exchange(
    sock: PacketSocket,
    address: IPAddress,
    own_mac: str,
    probe: bytes,
    nonce: bytes | None,
    attempts: int,
    wait: float,
) -> str | None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    spacing = wait / attempts
    sent = 0
    while True:
        now = loop.time()
        while sent < attempts and now >= start + sent * spacing:
            try:
                sock.send(probe)
            except OSError as exc:
                raise _cannot(address, sock.link, exc) from exc
            sent += 1
        next_event = start + sent * spacing if sent < attempts else start + wait
        if now >= start + wait:
            return None
        try:
            frame = await sock.receive(next_event - now)
        except OSError as exc:  # the link went down or away meanwhile
            raise _cannot(address, sock.link, exc) from exc
        if frame is not None and (holder := _holder(frame, address, own_mac)) is not None:
            return holder


def _holder(frame: bytes, address: IPAddress, own_mac: str) -> str | None:
    """The MAC that ``frame`` says holds ``address``, if it says so and is not our own."""
    if isinstance(address, ipaddress.IPv4Address):
        arp = parse_arp(frame)
        if arp is None or arp.sender_ip != address:
            return None
        mac = arp.sender_mac
    else:
        advert = parse_neighbour_advert(frame)
        if advert is None or advert.target != address:
            return None
        mac = advert.mac
    return None if mac == own_mac else mac


def _cannot(address: IPAddress, link: str, exc: OSError) -> LinkError:
    if exc.errno in (errno.ENODEV, errno.ENXIO):
        return LinkNotFound(
            f"cannot probe {address} on {link}: the link does not exist", errno=exc.errno
        )
    if exc.errno == errno.ENETDOWN:
        return LinkError(f"cannot probe {address} on {link}: the link is down", errno=exc.errno)
    reason = exc.strerror or str(exc)
    return LinkError(f"cannot probe {address} on {link}: {reason}", errno=exc.errno)
