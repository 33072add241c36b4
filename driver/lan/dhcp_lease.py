"""What a DHCP server's answers grant: the address an OFFER proposes, the lease an ACK describes.

Pure (no sockets, no clock): the client (driver/lan/dhcp_client.py) hands in parsed frames and
the time to count from. An answer that cannot be used (no lease time, an address no host can
have, a mask with holes) raises `UnusableAnswer`, a ValueError whose text is made of our words
and numbers only: the client skips that answer and quotes the reason if nothing better comes.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from driver.lan.dhcp_codec import (
    LIMITED_BROADCAST,
    DhcpFrame,
    Option,
    address_option,
    addresses_option,
    prefix_option,
    seconds_option,
)
from driver.lan.frames import mac_text

INFINITE = 0xFFFFFFFF  # RFC 2131 §3.3: a lease time of all ones never expires


class UnusableAnswer(ValueError):
    """An answer meant for us that we cannot use; says why in bounded words."""


@dataclass(frozen=True)
class DhcpLease:
    """What a DHCPACK granted. The three durations count from ``acquired_at``."""

    address: IPv4Interface  # the leased address with the prefix from option 1
    router: IPv4Address | None  # option 3, the first one
    dns: tuple[IPv4Address, ...]  # option 6
    server_id: IPv4Address  # option 54: where renewals go
    server_mac: str  # the Ethernet source of the ACK: the next hop towards the server
    lease_seconds: int  # option 51; INFINITE for a lease that never expires
    renew_seconds: int  # T1, option 58, default lease/2 (RFC 2131 §4.4.5), at most T2
    rebind_seconds: int  # T2, option 59, default lease*7/8, at most the lease
    # time.time() when the REQUEST that this ACK answers was first sent: RFC 2131 §4.4.1 counts
    # the lease from there, so a slow answer never makes the lease look longer than it is.
    acquired_at: float


@dataclass(frozen=True)
class Offer:
    address: IPv4Address
    server: IPv4Address


def offer_from(frame: DhcpFrame) -> Offer:
    """The address a DHCPOFFER proposes and the server to REQUEST it from."""
    message = frame.message
    server = address_option(message, Option.SERVER_ID)
    if server is None:
        raise UnusableAnswer("an OFFER without a server identifier (option 54)")
    check_host_address(message.yiaddr, "OFFER")
    return Offer(message.yiaddr, server)


def lease_from_ack(
    frame: DhcpFrame, *, server: IPv4Address, acquired_at: float, previous: DhcpLease | None
) -> DhcpLease:
    """The lease a DHCPACK grants, counted from ``acquired_at``.

    T1 and T2 default to 1/2 and 7/8 of the lease (RFC 2131 §4.4.5) and are clamped so that
    T1 <= T2 <= lease; an infinite lease has infinite T1 and T2 unless the server says
    otherwise. A renewal's ACK (``previous`` given) that leaves out the mask, the routers or the
    name servers keeps the previous ones; a first ACK without a mask gets its address class's
    (RFC 2131 §3.3 allows both).
    """
    message = frame.message
    lease = seconds_option(message, Option.LEASE_TIME)
    if lease is None:
        raise UnusableAnswer("an ACK without a lease time (option 51)")
    default_rebind, default_renew = (
        (INFINITE, INFINITE) if lease == INFINITE else (lease * 7 // 8, lease // 2)
    )
    rebind = seconds_option(message, Option.REBINDING_TIME)
    rebind = min(default_rebind if rebind is None else rebind, lease)
    renew = seconds_option(message, Option.RENEWAL_TIME)
    renew = min(default_renew if renew is None else renew, rebind)
    prefix = prefix_option(message)
    if prefix is None:
        prefix = previous.address.network.prefixlen if previous else classful(message.yiaddr)
    address = IPv4Interface((message.yiaddr, prefix))
    check_host_address(message.yiaddr, "ACK", address.network)
    routers = addresses_option(message, Option.ROUTER)
    dns = addresses_option(message, Option.DNS)
    if routers is not None:
        router: IPv4Address | None = routers[0]
    else:
        router = previous.router if previous else None
    if dns is None:
        dns = previous.dns if previous else ()
    return DhcpLease(
        address=address,
        router=router,
        dns=dns,
        server_id=server,
        server_mac=mac_text(frame.eth_src),
        lease_seconds=lease,
        renew_seconds=renew,
        rebind_seconds=rebind,
        acquired_at=acquired_at,
    )


def check_host_address(address: IPv4Address, what: str, network: IPv4Network | None = None) -> None:
    """Refuse an address no container can be given (RFC 1122 §3.2.1.3, RFC 919)."""
    if (
        address.is_unspecified
        or address.is_multicast
        or address.is_loopback
        or address.is_reserved
        or address == LIMITED_BROADCAST
    ):
        raise UnusableAnswer(f"an {what} of {address}, which no host can have")
    ends = () if network is None or network.prefixlen >= 31 else (network[0], network[-1])
    if address in ends:
        raise UnusableAnswer(
            f"an {what} of {address}, the network or broadcast address of {network}"
        )


def classful(address: IPv4Address) -> int:
    """The prefix length of the address's class (A /8, B /16, C /24)."""
    first = address.packed[0]
    return 8 if first < 128 else 16 if first < 192 else 24
