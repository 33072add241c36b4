"""What the IPAM asks of the LAN, and what it is told: the interface `plugin/` implements.

The IPAM chooses addresses but knows no links; the network driver knows the links but not the
pools. So the IPAM names a pool by what both sides know, its subnet (and LAN), and the plugin
finds the network links that carry that subnet and talks to the LAN there. Neither `ipam/` nor
`driver/` imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PoolPlace:
    """Where a pool's addresses live on the LAN: its subnet (CIDR text) and LAN name."""

    address_space: str
    lan: str
    subnet: str


class LanUnavailable(Exception):
    """The LAN cannot be asked now (no network carries the subnet yet, its link is down): the
    message says why, in one line."""


@dataclass(frozen=True)
class DhcpIdentity:
    """Who asks the DHCP server: the container's MAC (Ethernet source and chaddr), a stable
    client identifier (option 61) and a host name (option 12) when Docker named the endpoint."""

    mac: str
    client_id: bytes
    hostname: str | None


@dataclass(frozen=True)
class DhcpGrant:
    """A lease as the server granted it (an ACK)."""

    address: str  # "192.0.2.5"
    prefixlen: int
    router: str | None
    server_id: str
    server_mac: str
    lease_seconds: int
    renew_seconds: int
    rebind_seconds: int
    acquired_at: float


class DhcpRefused(Exception):
    """The server said no (a NAK): the message carries its reason."""


class DhcpNoAnswer(Exception):
    """No server answered in time."""


class Lan(Protocol):
    async def holder(
        self, place: PoolPlace, address: str, wait: float, *, reserved: bool = False
    ) -> str | None:
        """The MAC of a device on the LAN that answers for `address` (an ARP probe, IPv6 DAD),
        or None when nobody answered within `wait` seconds. Raises `LanUnavailable`.

        `reserved`: a specific address without an endpoint name, which on Docker < 29 is either
        an `--ip` or an `--aux-address`; the plugin knows the networks' aux addresses and answers
        None for those (they are supposed to answer)."""
        ...

    async def dhcp_acquire(
        self, place: PoolPlace, identity: DhcpIdentity, requested: str | None
    ) -> DhcpGrant:
        """DISCOVER .. ACK. Raises `DhcpRefused`, `DhcpNoAnswer`, `LanUnavailable`."""
        ...

    async def dhcp_renew(
        self, place: PoolPlace, identity: DhcpIdentity, grant: DhcpGrant, *, rebinding: bool
    ) -> DhcpGrant:
        """RENEWING (unicast to the server) or REBINDING (broadcast). Raises like acquire."""
        ...

    async def dhcp_release(
        self, place: PoolPlace, identity: DhcpIdentity, grant: DhcpGrant
    ) -> None:
        """DHCPRELEASE; best effort (no answer exists). Raises `LanUnavailable`."""
        ...


class NoLan:
    """The LAN of an IPAM that runs without a network driver (tests, tools): never reachable."""

    async def holder(
        self, place: PoolPlace, address: str, wait: float, *, reserved: bool = False
    ) -> str | None:
        raise LanUnavailable("no network driver is attached to this IPAM")

    async def dhcp_acquire(
        self, place: PoolPlace, identity: DhcpIdentity, requested: str | None
    ) -> DhcpGrant:
        raise LanUnavailable("no network driver is attached to this IPAM")

    async def dhcp_renew(
        self, place: PoolPlace, identity: DhcpIdentity, grant: DhcpGrant, *, rebinding: bool
    ) -> DhcpGrant:
        raise LanUnavailable("no network driver is attached to this IPAM")

    async def dhcp_release(
        self, place: PoolPlace, identity: DhcpIdentity, grant: DhcpGrant
    ) -> None:
        raise LanUnavailable("no network driver is attached to this IPAM")
