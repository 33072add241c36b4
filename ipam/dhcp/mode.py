"""DHCP mode (`--ipam-opt dhcp=on`): IPv4 addresses leased from the LAN's own DHCP server.

`DhcpMode` is what `IpamService` calls for pools whose spec has `dhcp`; the LAN itself is reached
through the `Lan` the plugin attaches (ipam/lan.py), never from here.

Rules:

* **Which requests lease**: an automatic address (DYNAMIC) and an `--ip` (STATIC, a specific
  address for a named endpoint, Docker >= 29). A gateway or an `--aux-address` with an address is
  reserved in the books as in every pool (never leased: the router has its own address, and
  Docker < 29 sends `--ip` without a name, so it cannot be told from an aux address). A gateway
  request without an address is refused: the LAN's router is the gateway, and only the user knows
  its address (`--gateway`).
* **Asking**: the endpoint's identity (ipam/dhcp/identity.py), and the address to ask for: the
  `--ip`, else the one this client already holds in the pool (the answer to Docker was lost).
  The exchange runs outside the mutation lock (other pools never wait for the LAN) but shielded
  (a `docker run` that gives up never leaves a grant half-recorded).
* **Recording**: one `Change` holds the allocation and the lease row, committed before Docker is
  answered (ipam/dhcp/books.py checks the grant against the books). A grant that cannot be
  recorded (outside the subnet, held by someone else, an `--ip` answered with another address, a
  failed commit) is released on the LAN before the refusal is answered.
* **Releasing**: the books first (allocation and lease row in one `Change`, no quarantine), the
  DHCPRELEASE after, best effort: a LAN that cannot take it never blocks a release. Removing the
  pool releases its leases the same way.
* **Keeping**: `LeaseKeeper` renews every lease in the background (ipam/dhcp/keeper.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from ipam.addresses import Family, format_address, parse_address, parse_subnet
from ipam.allocator import Allocator
from ipam.dhcp.books import (
    Books,
    by_subnet,
    check_specific,
    grant_of,
    identity_of,
    place_of,
    plan_bind,
    plan_drop,
    plan_release_pool,
    previous_address,
)
from ipam.dhcp.exchange import Failed, Failure, exchange
from ipam.dhcp.identity import dhcp_identity
from ipam.dhcp.keeper import LeaseKeeper, release_unheld, send_release
from ipam.dhcp.settings import DhcpSettings
from ipam.errors import DhcpFailed, DhcpRequestRefused, InvalidRequest, IpamError, PoolNotFound
from ipam.lan import DhcpGrant, DhcpIdentity, PoolPlace
from ipam.records import Change, DhcpLeaseRecord, Kind
from ipam.requests import AddressRequest

GATEWAY_NEEDED = (
    "dhcp=on needs --gateway: the LAN's router is the containers' gateway and its address is "
    "not leased from the DHCP server; create the network with --gateway set to the LAN's router "
    "(the router the DHCP server announces)"
)


class DhcpMode:
    def __init__(
        self,
        books: Books,
        settings: DhcpSettings | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._books = books
        self._settings = settings or DhcpSettings()
        self._random_bytes = random_bytes
        self._keeper = LeaseKeeper(books, self._settings)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._keeper.start()

    async def close(self) -> None:
        await self._keeper.close()

    def lan_attached(self) -> None:
        self._keeper.lan_attached()

    @property
    def keeper(self) -> LeaseKeeper:
        return self._keeper

    # ------------------------------------------------------------- requests

    def takes(self, pool_id: str, request: AddressRequest) -> bool:
        """Whether this RequestAddress is DHCP mode's (see the module docstring)."""
        lease = self._books.allocator().leases.get(pool_id)
        if lease is None or lease.spec is None or not lease.spec.dhcp:
            return False
        if request.kind is Kind.GATEWAY:
            return request.value is None
        return request.kind in (Kind.DYNAMIC, Kind.STATIC)

    async def request_address(self, pool_id: str, request: AddressRequest) -> str:
        """A leased address for the endpoint, as "a.b.c.d/prefixlen" (the subnet's length)."""
        if request.kind is Kind.GATEWAY:
            raise DhcpRequestRefused(GATEWAY_NEEDED)
        return await self._books.shielded(self._lease(pool_id, request))

    async def _lease(self, pool_id: str, request: AddressRequest) -> str:
        books = self._books
        allocator = books.allocator()
        lease = allocator.leases.get(pool_id)
        if lease is None or lease.spec is None:
            raise PoolNotFound(f'unknown pool ID "{pool_id}": this plugin holds no such pool')
        spec = lease.spec
        subnet = str(spec.subnet)
        identity = dhcp_identity(
            lan=spec.lan,
            subnet=subnet,
            mac=request.mac,
            endpoint=request.endpoint,
            random_bytes=self._random_bytes,
        )
        check_specific(allocator, pool_id, identity, request, books.clock())
        requested = (
            format_address(spec.family, request.value)
            if request.value is not None
            else previous_address(allocator, pool_id, identity.client_id)
        )
        place = place_of(lease.record)
        outcome = await exchange(
            lambda: books.lan().dhcp_acquire(place, identity, requested),
            books.clock,
            self._settings.exchange_timeout,
        )
        if isinstance(outcome, Failed):
            raise _refusal(outcome, subnet, identity, requested if request.value else None)
        grant = outcome.grant
        if request.value is not None and grant.address != requested:
            await self._give_back(place, identity, grant, pool_id)
            raise DhcpRequestRefused(
                f"the LAN's DHCP server would not lease {requested} (--ip) to MAC {identity.mac}: "
                f"it offered {grant.address}; reserve {requested} for this MAC on the server, or "
                "start the container without --ip"
            )
        try:
            address, record = await books.mutate(
                lambda now: plan_bind(
                    books.allocator(), pool_id, identity, request, grant, outcome.started, now
                )
            )
        except Exception:
            await self._give_back(place, identity, grant, pool_id)
            raise
        self._keeper.track(record)
        return address

    async def _give_back(
        self, place: PoolPlace, identity: DhcpIdentity, grant: DhcpGrant, pool_id: str
    ) -> None:
        await release_unheld(self._books, self._settings, place, identity, grant, pool_id)

    # ------------------------------------------------------------- releases

    async def release_address(
        self,
        pool_id: str,
        family: Family,
        value: int,
        check: Callable[[Allocator], None] | None = None,
    ) -> bool:
        """Release a leased address; False when it is not one (the ordinary path applies).
        `check`, when given, runs under the mutation lock before the release and may refuse it
        by raising (what it raises is raised here, and nothing is released)."""
        books = self._books
        lease = books.allocator().leases.get(pool_id)
        if lease is None or family is not lease.table.subnet.family:
            return False
        key = (pool_id, lease.table.fmt(value))
        if key not in books.allocator().dhcp_leases:
            return False
        place = place_of(lease.record)

        def plan(now: float) -> tuple[Change, DhcpLeaseRecord | None]:
            allocator = books.allocator()
            if check is not None:
                check(allocator)
            return plan_drop(allocator, key)

        record = await books.mutate(plan)
        if record is not None:
            self._keeper.forget(key)
            await books.shielded(self._send_releases(place, (record,)))
        return True

    async def release_pool(self, pool_id: str) -> None:
        """The service's ReleasePool: the allocator's plan, plus the pool's leases."""
        books = self._books

        def plan(now: float) -> tuple[Change, tuple[PoolPlace | None, tuple[DhcpLeaseRecord, ...]]]:
            allocator = books.allocator()
            lease = allocator.leases.get(pool_id)
            change, dropped = plan_release_pool(allocator, pool_id, now)
            return change, (place_of(lease.record) if lease is not None else None, dropped)

        place, dropped = await books.mutate(plan)
        if place is None or not dropped:
            return
        for record in dropped:
            self._keeper.forget((record.pool_id, record.address))
        await books.shielded(self._send_releases(place, dropped))

    async def _send_releases(self, place: PoolPlace, records: tuple[DhcpLeaseRecord, ...]) -> None:
        await asyncio.gather(
            *(
                send_release(self._books, self._settings, place, identity_of(r), grant_of(r))
                for r in records
            )
        )

    # ----------------------------------------------------------- inspection

    def mac_of(self, subnet: str, address: str) -> str | None:
        """The MAC of the DHCP lease holding `address` ("a.b.c.d" or "a.b.c.d/len") in a pool on
        `subnet`: the container must use exactly that MAC."""
        try:
            canonical = parse_subnet(subnet)
            family, value = parse_address(address.split("/", 1)[0])
        except InvalidRequest:
            return None
        if family is not canonical.family:
            return None
        record = by_subnet(self._books.allocator(), str(canonical), format_address(family, value))
        return record.mac if record is not None else None

    def leases(self) -> tuple[DhcpLeaseRecord, ...]:
        return tuple(
            sorted(
                self._books.allocator().dhcp_leases.values(), key=lambda r: (r.pool_id, r.address)
            )
        )


def _refusal(
    outcome: Failed, subnet: str, identity: DhcpIdentity, specific: str | None
) -> IpamError:
    if outcome.failure is Failure.REFUSED:
        if specific is not None:
            return DhcpRequestRefused(
                f"the LAN's DHCP server refused {specific} (--ip) to MAC {identity.mac}: "
                f"{outcome.detail}; ask for an address the server leases to this container, or "
                "for none"
            )
        return DhcpFailed(
            f"the LAN's DHCP server refused a lease in {subnet} to MAC {identity.mac}: "
            f"{outcome.detail}"
        )
    if outcome.failure is Failure.NO_ANSWER:
        return DhcpFailed(
            f"no DHCP server answered on the LAN of {subnet} within {outcome.detail} s (is the "
            "server reachable on the network's parent?)"
        )
    return DhcpFailed(
        f"cannot ask the LAN's DHCP server for an address in {subnet}: {outcome.detail}"
    )
