"""A scripted DHCP server behind the IPAM's `Lan` interface, for the unit and API layers.

It keeps bindings by client identifier like a real server (the same client gets its address
back, a released address is free again), hands out addresses of its own scope from `first` on,
and can be told to refuse (NAK), stay silent, be unreachable, offer another address or hang. The
real exchange on a real LAN is tested against dnsmasq in tests/kernel.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from ipam.lan import (
    DhcpGrant,
    DhcpIdentity,
    DhcpNoAnswer,
    DhcpRefused,
    LanUnavailable,
    PoolPlace,
)


@dataclass
class Call:
    verb: str  # "acquire", "renew", "rebind", "release"
    mac: str
    client_id: bytes
    hostname: str | None
    address: str | None  # requested (acquire), held (renew, rebind, release)
    subnet: str


@dataclass
class FakeDhcpServer:
    clock: Callable[[], float]
    scope: str = "192.0.2.0/24"
    first: int = 100
    lease_seconds: int = 600
    renew_seconds: int = 300
    rebind_seconds: int = 525
    router: str | None = "192.0.2.1"
    server_id: str = "192.0.2.2"
    # Behaviour switches, set by the test.
    nak: str | None = None  # refuse every request with this reason
    silent: bool = False  # answer nothing
    unreachable: str | None = None  # the LAN cannot be asked
    offer: str | None = None  # offer this address whatever is asked
    hang: bool = False  # wait until `resume()` (or cancelled)
    calls: list[Call] = field(default_factory=list)
    bindings: dict[bytes, str] = field(default_factory=dict)  # client ID -> address
    hanging: int = 0  # calls waiting in `hang` now
    _resumed: asyncio.Event = field(default_factory=asyncio.Event)

    def resume(self) -> None:
        """Let the hanging calls go on (they answer as the switches say then)."""
        self.hang = False
        self._resumed.set()
        self._resumed = asyncio.Event()

    async def holder(self, place: PoolPlace, address: str, wait: float, **_: object) -> str | None:
        return None

    async def dhcp_acquire(
        self, place: PoolPlace, identity: DhcpIdentity, requested: str | None
    ) -> DhcpGrant:
        self._record("acquire", identity, requested, place)
        await self._behave()
        if self.offer is not None:
            address = self.offer
        elif identity.client_id in self.bindings:
            address = self.bindings[identity.client_id]
        elif requested is not None and self._free(requested):
            address = requested
        else:
            address = self._next_free()
        self.bindings[identity.client_id] = address
        return self._grant(address)

    async def dhcp_renew(
        self, place: PoolPlace, identity: DhcpIdentity, grant: DhcpGrant, *, rebinding: bool
    ) -> DhcpGrant:
        self._record("rebind" if rebinding else "renew", identity, grant.address, place)
        await self._behave()
        self.bindings[identity.client_id] = grant.address
        return self._grant(grant.address)

    async def dhcp_release(
        self, place: PoolPlace, identity: DhcpIdentity, grant: DhcpGrant
    ) -> None:
        self._record("release", identity, grant.address, place)
        if self.unreachable is not None:
            raise LanUnavailable(self.unreachable)
        if self.bindings.get(identity.client_id) == grant.address:
            del self.bindings[identity.client_id]

    # ------------------------------------------------------------- helpers

    def verbs(self) -> list[str]:
        return [c.verb for c in self.calls]

    def of(self, verb: str) -> list[Call]:
        return [c for c in self.calls if c.verb == verb]

    def _record(
        self, verb: str, identity: DhcpIdentity, address: str | None, place: PoolPlace
    ) -> None:
        self.calls.append(
            Call(verb, identity.mac, identity.client_id, identity.hostname, address, place.subnet)
        )

    async def _behave(self) -> None:
        if self.hang:
            self.hanging += 1
            try:
                await self._resumed.wait()
            finally:
                self.hanging -= 1
        if self.unreachable is not None:
            raise LanUnavailable(self.unreachable)
        if self.silent:
            raise DhcpNoAnswer("no answer")
        if self.nak is not None:
            raise DhcpRefused(self.nak)

    def _free(self, address: str) -> bool:
        return address not in self.bindings.values()

    def _next_free(self) -> str:
        network = ipaddress.ip_network(self.scope)
        for offset in range(self.first, network.num_addresses - 1):
            candidate = str(network.network_address + offset)
            if self._free(candidate):
                return candidate
        raise DhcpRefused("no address available")

    def _grant(self, address: str) -> DhcpGrant:
        return DhcpGrant(
            address=address,
            prefixlen=ipaddress.ip_network(self.scope).prefixlen,
            router=self.router,
            server_id=self.server_id,
            server_mac="02:00:00:00:00:02",
            lease_seconds=self.lease_seconds,
            renew_seconds=self.renew_seconds,
            rebind_seconds=self.rebind_seconds,
            acquired_at=self.clock(),
        )
