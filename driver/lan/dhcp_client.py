"""The DHCPv4 client of DHCP mode: each call is one exchange, made from the host on the network's
link (the parent or its VLAN link) in the name of one container.

Why from the host: the address is needed when Docker asks the IPAM for it, before the container's
link exists. So every frame is sent through a packet tap on the link (driver/lan/packet_socket.py)
with the container's MAC as the Ethernet source and as chaddr (port-security and DHCP-snooping
switches check both), the caller's stable client identifier (option 61) and host name (option
12). The first exchange (RFC 2131 §4.4.1, DISCOVER/OFFER/REQUEST/ACK) sets the BROADCAST flag:
nobody on the LAN could answer the ARP a unicast answer would need. Renewal (§4.4.5, RENEWING)
is a unicast REQUEST with ciaddr to the server that granted the lease, at the MAC its answers came
from; rebinding is the same REQUEST broadcast. Their answers are unicast to the container's MAC
and address, which the tap on the parent sees as long as the container's link exists (the
server's ARP for the address is answered by the container itself).

Retransmission follows RFC 2131 §4.1 scaled down to the call's timeout: 1 s, 2 s, 4 s ... with
±10 % jitter, until the timeout. Answers count only when their xid and chaddr are ours and they
are well formed; everything else on the link (other clients' exchanges, garbage) is skipped.
Messages name the link, the MAC and what happened, and quote nothing unbounded from the wire.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import TypeVar

from driver.errors import DriverError, InvalidOption, shown
from driver.lan.dhcp_codec import (
    BOOTREPLY,
    BOOTREQUEST,
    BROADCAST_MAC,
    FLAG_BROADCAST,
    LIMITED_BROADCAST,
    UNSPECIFIED,
    DhcpFrame,
    DhcpMessage,
    MalformedFrame,
    MessageType,
    Option,
    address_option,
    build_frame,
    message_type,
    parse_frame,
)
from driver.lan.dhcp_lease import (
    INFINITE,
    DhcpLease,
    Offer,
    UnusableAnswer,
    lease_from_ack,
    offer_from,
)
from driver.lan.frames import mac_bytes
from driver.lan.packet_socket import DHCP_CLIENT_FILTER, PacketSocket
from driver.linkinfo import normalize_mac

FIRST_RETRANSMIT = 1.0  # seconds; doubled after each try (RFC 2131 §4.1 starts at 4)
JITTER = 0.1  # ± this fraction of each wait, so that many clients do not retransmit together
# What the client asks the server for (option 55). The server identifier is always sent.
PARAMETERS = bytes(
    (
        Option.SUBNET_MASK,
        Option.ROUTER,
        Option.DNS,
        Option.LEASE_TIME,
        Option.RENEWAL_TIME,
        Option.REBINDING_TIME,
    )
)
SHOWN_SERVER_MESSAGE = 80  # characters of a NAK's option 56 that a message quotes

T = TypeVar("T")

# The API: the three calls, what they return (defined beside the pure reading of answers, in
# driver/lan/dhcp_lease.py) and what they raise.
__all__ = [
    "INFINITE",
    "DhcpError",
    "DhcpLease",
    "DhcpNak",
    "DhcpTimeout",
    "acquire",
    "release",
    "renew",
]


class DhcpError(DriverError):
    """A DHCP exchange could not be made (no such link, the link is down) or failed."""


class DhcpNak(DhcpError):
    """The server refused (DHCPNAK): the address is not, or no longer, the client's."""

    def __init__(self, message: str, *, server: IPv4Address | None, reason: str | None) -> None:
        super().__init__(message)
        self.server = server
        self.reason = reason  # the server's option 56, cut to SHOWN_SERVER_MESSAGE characters


class DhcpTimeout(DhcpError):
    """No valid answer came in time (no server, a server that does not know the lease, a link
    whose answers cannot reach the host)."""


@dataclass(frozen=True)
class _Client:
    """Who asks, where: the fields every frame and every message of one call share."""

    link: str
    mac: str
    client_id: bytes
    hostname: bytes | None
    netns: str | None

    @property
    def chaddr(self) -> bytes:
        return mac_bytes(self.mac)

    @property
    def where(self) -> str:
        return f"DHCP on link {shown(self.link)} for MAC {self.mac}"

    def options(
        self, kind: MessageType, *extra: tuple[int, bytes], hostname: bool = True
    ) -> tuple[tuple[int, bytes], ...]:
        options: list[tuple[int, bytes]] = [
            (Option.MESSAGE_TYPE, bytes((kind,))),
            (Option.CLIENT_ID, self.client_id),
            *extra,
        ]
        if hostname and self.hostname is not None:
            options.append((Option.HOST_NAME, self.hostname))
        return tuple(options)


# --- the three calls ------------------------------------------------------------------------


async def acquire(
    link: str,
    *,
    mac: str,
    client_id: bytes,
    hostname: str | None,
    requested: IPv4Address | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109 (it paces the retransmissions, not only a limit)
    netns: str | None = None,
) -> DhcpLease:
    """A new lease for ``mac`` (DISCOVER, the first OFFER, REQUEST, ACK), all answers broadcast.

    ``requested`` (the container's previous address) is asked for in the DISCOVER (option 50);
    the server may offer another. Raises `DhcpNak`, `DhcpTimeout` (nothing valid within
    ``timeout`` seconds for both steps together; the REQUEST step gets at least 1 s even when
    the OFFER came late), `DhcpError` (the link is missing or down) or
    `InvalidOption` (a MAC, client id or host name that cannot be sent).
    """
    client = _client(link, mac, client_id, hostname, netns)
    xid = secrets.randbits(32)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    discover = client.options(
        MessageType.DISCOVER,
        *_requested_option(requested),
        (Option.PARAMETER_LIST, PARAMETERS),
    )
    async with _open(client) as sock:
        offer = await _exchange(
            sock,
            client,
            xid,
            lambda secs: _broadcast(client, xid, secs, discover),
            _offer,
            seconds=timeout,
            sent="DISCOVER",
            expected="OFFER",
        )
        request = client.options(
            MessageType.REQUEST,
            (Option.REQUESTED_ADDRESS, offer.address.packed),
            (Option.SERVER_ID, offer.server.packed),
            (Option.PARAMETER_LIST, PARAMETERS),
        )
        acquired_at = time.time()
        return await _exchange(
            sock,
            client,
            xid,
            lambda secs: _broadcast(client, xid, secs, request),
            lambda frame: _selected(client, frame, offer, acquired_at),
            # An OFFER that came at the last moment still gets its REQUEST a fair chance.
            seconds=max(deadline - loop.time(), FIRST_RETRANSMIT),
            sent="REQUEST",
            expected="ACK",
        )


async def renew(
    link: str,
    lease: DhcpLease,
    *,
    mac: str,
    client_id: bytes,
    hostname: str | None,
    rebinding: bool,
    timeout: float = 5.0,  # noqa: ASYNC109 (it paces the retransmissions, not only a limit)
    netns: str | None = None,
) -> DhcpLease:
    """Extend ``lease`` (RFC 2131 §4.4.5): a REQUEST with ciaddr, unicast to the server that
    granted it (RENEWING, after T1) or, with ``rebinding``, broadcast to any server (REBINDING,
    after T2). The answer comes unicast to the container's MAC and address, so the container's
    link must exist with that address. Returns the renewed lease (new times, ``acquired_at``,
    server). Raises like `acquire`; a `DhcpNak` means the address must be given up.
    """
    client = _client(link, mac, client_id, hostname, netns)
    xid = secrets.randbits(32)
    ours = lease.address.ip
    options = client.options(MessageType.REQUEST, (Option.PARAMETER_LIST, PARAMETERS))
    if rebinding:
        eth_dst, ip_dst = BROADCAST_MAC, LIMITED_BROADCAST
    else:
        eth_dst, ip_dst = mac_bytes(lease.server_mac), lease.server_id

    def request(secs: int) -> bytes:
        message = DhcpMessage(
            op=BOOTREQUEST, xid=xid, chaddr=client.chaddr, options=options, secs=secs, ciaddr=ours
        )
        return build_frame(DhcpFrame(eth_dst, client.chaddr, ours, ip_dst, message))

    async with _open(client) as sock:
        requested_at = time.time()
        return await _exchange(
            sock,
            client,
            xid,
            request,
            lambda frame: _renewed(client, frame, lease, requested_at),
            seconds=timeout,
            sent="REBINDING REQUEST" if rebinding else "RENEWING REQUEST",
            expected="ACK",
        )


async def release(
    link: str, lease: DhcpLease, *, mac: str, client_id: bytes, netns: str | None = None
) -> None:
    """Give ``lease`` back (RFC 2131 §4.4.6): one DHCPRELEASE unicast to the server, which does
    not answer (so nothing is retransmitted or awaited). Raises `DhcpError` when it cannot be
    sent."""
    client = _client(link, mac, client_id, None, netns)
    ours = lease.address.ip
    message = DhcpMessage(
        op=BOOTREQUEST,
        xid=secrets.randbits(32),
        chaddr=client.chaddr,
        options=client.options(
            MessageType.RELEASE, (Option.SERVER_ID, lease.server_id.packed), hostname=False
        ),
        ciaddr=ours,
    )
    frame = DhcpFrame(mac_bytes(lease.server_mac), client.chaddr, ours, lease.server_id, message)
    async with _open(client) as sock:
        _send(sock, client, build_frame(frame), "RELEASE")


# --- one exchange ---------------------------------------------------------------------------


async def _exchange(
    sock: PacketSocket,
    client: _Client,
    xid: int,
    frame_at: Callable[[int], bytes],
    accept: Callable[[DhcpFrame], T | None],
    *,
    seconds: float,
    sent: str,
    expected: str,
) -> T:
    """Send ``frame_at(seconds elapsed)`` and retransmit it on the backoff until ``accept`` takes
    an answer (returns it) or ``seconds`` pass (`DhcpTimeout`). ``accept`` sees only well-formed
    replies with our xid and chaddr; it returns None to skip one, raises `UnusableAnswer` or
    `MalformedFrame` for an unusable one (remembered for the timeout's message), or `DhcpNak`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + seconds
    interval = FIRST_RETRANSMIT
    tries = 0
    refused: str | None = None
    while (now := loop.time()) < deadline:
        _send(sock, client, frame_at(min(int(now - started), 0xFFFF)), sent)
        tries += 1
        resend_at = min(now + interval * random.uniform(1 - JITTER, 1 + JITTER), deadline)
        interval *= 2
        while (left := resend_at - loop.time()) > 0:
            received = await sock.receive_frame(left)
            if received is None:
                break
            try:
                frame = parse_frame(
                    received.data, verify_udp_checksum=not received.checksum_pending
                )
            except MalformedFrame:
                continue  # not necessarily for us: nothing to report
            message = frame.message
            if message.op != BOOTREPLY or message.xid != xid or message.chaddr != client.chaddr:
                continue
            try:
                answer = accept(frame)
            except (UnusableAnswer, MalformedFrame) as exc:
                refused = str(exc)
                continue
            if answer is not None:
                return answer
    detail = f"; an answer was unusable: {refused}" if refused else ""
    raise DhcpTimeout(
        f"{client.where}: no {expected} from a DHCP server within {seconds:.3g} s "
        f"({sent} sent {tries} times){detail}"
    )


def _offer(frame: DhcpFrame) -> Offer | None:
    return offer_from(frame) if message_type(frame.message) is MessageType.OFFER else None


def _selected(
    client: _Client, frame: DhcpFrame, offer: Offer, acquired_at: float
) -> DhcpLease | None:
    """The ACK (or NAK) of the server whose OFFER we took; others' answers are skipped."""
    message = frame.message
    kind = message_type(message)
    server = address_option(message, Option.SERVER_ID) or offer.server
    if kind not in (MessageType.ACK, MessageType.NAK) or server != offer.server:
        return None
    if kind is MessageType.NAK:
        raise _nak(client, frame, f"the offered address {offer.address}")
    return lease_from_ack(frame, server=server, acquired_at=acquired_at, previous=None)


def _renewed(
    client: _Client, frame: DhcpFrame, lease: DhcpLease, requested_at: float
) -> DhcpLease | None:
    message = frame.message
    kind = message_type(message)
    if kind is MessageType.NAK:
        raise _nak(client, frame, f"the renewal of {lease.address.ip}")
    if kind is not MessageType.ACK:
        return None
    if message.yiaddr != lease.address.ip:
        raise UnusableAnswer(f"an ACK for {message.yiaddr} instead of {lease.address.ip}")
    server = address_option(message, Option.SERVER_ID) or frame.ip_src
    return lease_from_ack(frame, server=server, acquired_at=requested_at, previous=lease)


def _nak(client: _Client, frame: DhcpFrame, what: str) -> DhcpNak:
    message = frame.message
    server = address_option(message, Option.SERVER_ID) or frame.ip_src
    text = message.option(Option.MESSAGE)
    reason = None
    if text:
        reason = text.decode("utf-8", "replace")[:SHOWN_SERVER_MESSAGE]
    said = f": {reason!r}" if reason else " (no reason given)"
    return DhcpNak(
        f"{client.where}: the DHCP server {server} refused {what} (NAK){said}",
        server=server,
        reason=reason,
    )


# --- frames, sockets, arguments -------------------------------------------------------------


def _broadcast(
    client: _Client, xid: int, secs: int, options: tuple[tuple[int, bytes], ...]
) -> bytes:
    """A message from a client that has no address yet: 0.0.0.0 to 255.255.255.255, with the
    BROADCAST flag (the answer cannot be unicast to an address nobody holds yet)."""
    message = DhcpMessage(
        op=BOOTREQUEST,
        xid=xid,
        chaddr=client.chaddr,
        options=options,
        secs=secs,
        flags=FLAG_BROADCAST,
    )
    return build_frame(
        DhcpFrame(BROADCAST_MAC, client.chaddr, UNSPECIFIED, LIMITED_BROADCAST, message)
    )


def _requested_option(requested: IPv4Address | None) -> tuple[tuple[int, bytes], ...]:
    return () if requested is None else ((Option.REQUESTED_ADDRESS, requested.packed),)


def _open(client: _Client) -> PacketSocket:
    try:
        return PacketSocket.open(client.link, DHCP_CLIENT_FILTER, client.netns)
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            raise DhcpError(f"{client.where}: the link does not exist") from None
        raise DhcpError(f"{client.where}: cannot listen on the link: {_reason(exc)}") from None


def _send(sock: PacketSocket, client: _Client, frame: bytes, what: str) -> None:
    try:
        sock.send(frame)
    except OSError as exc:
        if exc.errno == errno.ENETDOWN:
            raise DhcpError(f"{client.where}: cannot send the {what}: the link is down") from None
        raise DhcpError(f"{client.where}: cannot send the {what}: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)[:SHOWN_SERVER_MESSAGE]


def _client(
    link: str, mac: str, client_id: bytes, hostname: str | None, netns: str | None
) -> _Client:
    """The call's arguments, checked before anything is sent (RFC 2132 §9.14: a client
    identifier is 2 to 255 bytes; an option value is at most 255 bytes)."""
    normalized = normalize_mac(mac)
    if not 2 <= len(client_id) <= 255:
        raise InvalidOption(
            f"a DHCP client identifier is 2 to 255 bytes, not {len(client_id)} (MAC {normalized})"
        )
    name = None
    if hostname is not None:
        name = hostname.encode()
        if not 1 <= len(name) <= 255:
            raise InvalidOption(
                f"DHCP host name {shown(hostname)} is not 1 to 255 bytes (MAC {normalized})"
            )
    return _Client(link, normalized, client_id, name, netns)
