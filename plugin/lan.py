"""The LAN behind the IPAM's pools, made of the network driver's links (the `ipam.lan.Lan` the
composition root attaches to the IPAM).

The IPAM names a pool by its subnet; the networks carrying that subnet name their links (the
parent, or its VLAN link). Probes go out on every such link that is on a LAN: a device answering
on any of them holds the address. DHCP talks on the first one (two networks with one subnet on
two VLANs would be two LANs with one subnet: give them different `--ipam-opt lan=` names and
subnets, or one of them DHCP). A link that is down, missing, or not on a LAN (a dummy parent,
layer-3 ipvlan) cannot be asked: `LanUnavailable`, and the IPAM decides what that means.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Coroutine, Iterable
from typing import Any

from driver.errors import DriverError
from driver.lan import dhcp_client
from driver.lan.dhcp_lease import DhcpLease
from driver.lan.probe import probe_address
from driver.service import LanLink, NetworkDriver
from ipam.lan import (
    DhcpGrant,
    DhcpIdentity,
    DhcpNoAnswer,
    DhcpRefused,
    LanUnavailable,
    PoolPlace,
)

# A DISCOVER .. ACK exchange gets this long (retransmitted within it, RFC 2131 §4.1); a renewal
# less: it is retried later anyway.
ACQUIRE_TIMEOUT = 8.0
RENEW_TIMEOUT = 4.0


class DriverLan:
    def __init__(self, driver: NetworkDriver, netns: str | None = None) -> None:
        self._driver = driver
        self._netns = netns  # tests: the namespace the links live in (the daemon: its own)

    # ---------------------------------------------------------------- probing

    async def holder(
        self, place: PoolPlace, address: str, wait: float, *, reserved: bool = False
    ) -> str | None:
        links = self._driver.lan_links(place.subnet)
        if reserved and (not links or any(address in link.infrastructure for link in links)):
            # An --aux-address (asked for while the network is being created, or listed in it):
            # such an address belongs to a device that is supposed to answer.
            return None
        usable = _distinct(link for link in links if link.on_lan)
        if not usable:
            raise LanUnavailable(_nowhere(place, links))
        ip = ipaddress.ip_address(address)
        problems: list[str] = []
        for link in usable:
            try:
                mac = await probe_address(link, ip, wait=wait, netns=self._netns)
            except DriverError as exc:
                problems.append(str(exc))
                continue
            if mac is not None:
                return mac
        if len(problems) == len(usable):
            raise LanUnavailable("; ".join(problems))
        return None

    # ------------------------------------------------------------------- DHCP

    def _dhcp_link(self, place: PoolPlace, identity: DhcpIdentity) -> tuple[str, str]:
        """The link to talk on, and the MAC to send from: the container's, except on ipvlan,
        where every container has the link's own MAC (a switch with port security would drop
        anything else); the client identifier still tells the containers apart."""
        links = [link for link in self._driver.lan_links(place.subnet) if link.on_lan]
        if not links:
            raise LanUnavailable(_nowhere(place, self._driver.lan_links(place.subnet)))
        link = links[0]
        if not link.shares_mac:
            return link.link, identity.mac
        try:
            return link.link, self._link_mac(link.link)
        except OSError as exc:
            raise LanUnavailable(f"cannot read the MAC of {link.link}: {exc.strerror}") from exc

    @staticmethod
    def _link_mac(link: str) -> str:
        with open(f"/sys/class/net/{link}/address") as f:
            return f.read().strip()

    async def dhcp_acquire(
        self, place: PoolPlace, identity: DhcpIdentity, requested: str | None
    ) -> DhcpGrant:
        link, mac = self._dhcp_link(place, identity)
        return await _exchange(
            dhcp_client.acquire(
                link,
                mac=mac,
                client_id=identity.client_id,
                hostname=identity.hostname,
                requested=ipaddress.IPv4Address(requested) if requested else None,
                timeout=ACQUIRE_TIMEOUT,
                netns=self._netns,
            )
        )

    async def dhcp_renew(
        self, place: PoolPlace, identity: DhcpIdentity, grant: DhcpGrant, *, rebinding: bool
    ) -> DhcpGrant:
        link, mac = self._dhcp_link(place, identity)
        return await _exchange(
            dhcp_client.renew(
                link,
                _lease(grant),
                mac=mac,
                client_id=identity.client_id,
                hostname=identity.hostname,
                rebinding=rebinding,
                timeout=RENEW_TIMEOUT,
                netns=self._netns,
            )
        )

    async def dhcp_release(
        self, place: PoolPlace, identity: DhcpIdentity, grant: DhcpGrant
    ) -> None:
        link, mac = self._dhcp_link(place, identity)
        try:
            await dhcp_client.release(
                link,
                _lease(grant),
                mac=mac,
                client_id=identity.client_id,
                netns=self._netns,
            )
        except DriverError as exc:
            raise LanUnavailable(str(exc)) from exc


async def _exchange(work: Coroutine[Any, Any, DhcpLease]) -> DhcpGrant:
    """A DHCP exchange, its failures in the IPAM's terms."""
    try:
        return _grant(await work)
    except dhcp_client.DhcpNak as exc:
        raise DhcpRefused(str(exc)) from exc
    except dhcp_client.DhcpTimeout as exc:
        raise DhcpNoAnswer(str(exc)) from exc
    except DriverError as exc:
        raise LanUnavailable(str(exc)) from exc


def _distinct(links: Iterable[LanLink]) -> list[str]:
    names: list[str] = []
    for link in links:
        if link.link not in names:
            names.append(link.link)
    return names


def _nowhere(place: PoolPlace, links: list[LanLink]) -> str:
    if not links:
        return f"no network on this host carries {place.subnet} yet"
    return f"the networks carrying {place.subnet} are not on a LAN (no parent, or layer-3 ipvlan)"


def _grant(lease: DhcpLease) -> DhcpGrant:
    return DhcpGrant(
        address=str(lease.address.ip),
        prefixlen=lease.address.network.prefixlen,
        router=str(lease.router) if lease.router is not None else None,
        server_id=str(lease.server_id),
        server_mac=lease.server_mac,
        lease_seconds=lease.lease_seconds,
        renew_seconds=lease.renew_seconds,
        rebind_seconds=lease.rebind_seconds,
        acquired_at=lease.acquired_at,
    )


def _lease(grant: DhcpGrant) -> DhcpLease:
    return DhcpLease(
        address=ipaddress.IPv4Interface(f"{grant.address}/{grant.prefixlen}"),
        router=ipaddress.IPv4Address(grant.router) if grant.router else None,
        dns=(),
        server_id=ipaddress.IPv4Address(grant.server_id),
        server_mac=grant.server_mac,
        lease_seconds=grant.lease_seconds,
        renew_seconds=grant.renew_seconds,
        rebind_seconds=grant.rebind_seconds,
        acquired_at=grant.acquired_at or time.time(),
    )
