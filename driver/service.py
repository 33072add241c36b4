"""The network driver's API, one method per NetworkDriver call; the HTTP layer calls only this.

Every call that changes something runs under one lock: checks, kernel changes and the store write
of one request never interleave with another's, so two networks cannot both claim a passthru
parent and a repeated request sees the first one's result. The watcher that restores owned links
while the plugin runs (driver/linkwatch.py) takes the same lock; it starts when the state is
loaded and stops first at close.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from driver import claimwatch, endpoint, joinleave, network
from driver.config import PoolData, parse_network
from driver.context import Context, DriverSettings
from driver.endpoint import EndpointRequest
from driver.joinleave import JoinResult
from driver.lan.claims import Claim
from driver.links import LinkChangeSource, Links
from driver.linkwatch import LinkWatcher
from driver.logs import log
from driver.records import OWNED_KINDS, DriverState
from driver.restore import RestoreReport, log_waiting, restore_links
from driver.state import State
from driver.store import FileSummary, SqliteDriverStore, StateFiles, open_store

T = TypeVar("T")


@dataclass(frozen=True)
class LanLink:
    """Where a network meets the LAN (see `NetworkDriver.lan_links`)."""

    network_id: str
    link: str
    on_lan: bool  # False: a dummy parent, or layer-3 ipvlan (no layer 2 of its own on the LAN)
    infrastructure: frozenset[str]  # the gateway and aux addresses: they answer on purpose
    # ipvlan: every container shows the link's own MAC on the LAN (a DHCP client must use it)
    shares_mac: bool = False


@dataclass(frozen=True)
class DriverCounts:
    """How much the driver holds and has done since the start (for the daemon's metrics)."""

    networks: int
    endpoints: int
    owned_links: dict[str, int]  # by kind: vlan, dummy (parents), macvlan, ipvlan (host shims)
    announced_frames: int  # gratuitous ARP / unsolicited NA frames sent
    announce_failures: int  # rounds of them that could not be sent
    claims_seen: int  # frames in which another device claimed a container's address


SCOPE = "local"  # networks and their state live on one host; each host runs its own plugin


class NetworkDriver:
    def __init__(
        self, links: Links, store: SqliteDriverStore, settings: DriverSettings | None = None
    ) -> None:
        self._ctx = Context(links=links, store=store, settings=settings or DriverSettings())
        self._lock = asyncio.Lock()
        self._watcher: LinkWatcher | None = None

    @classmethod
    def open(
        cls,
        links: Links,
        state_dir: Path,
        files: StateFiles,
        settings: DriverSettings | None = None,
    ) -> NetworkDriver:
        """A driver on ``state_dir/driver.sqlite3``, opened by `load()` through ``files`` (the
        daemon's state-file policy)."""
        return cls(links, open_store(state_dir, files), settings)

    async def probe(self) -> FileSummary:
        """What the state file holds, read without creating it (the daemon's start-up check)."""
        return await self._ctx.commit(self._ctx.store.probe)

    def use_lease_macs(self, lease_mac: Callable[[str, str], str | None]) -> None:
        """Where CreateEndpoint finds the MAC a DHCP lease was taken with: (subnet, address)."""
        self._ctx.lease_mac = lease_mac

    def network_subnets(self, network_id: str) -> list[str]:
        config = self._ctx.state.networks.get(network_id)
        return [str(s.pool) for s in config.subnets] if config is not None else []

    def lan_links(self, subnet: str) -> list[LanLink]:
        """The links on which the networks carrying `subnet` meet the LAN (the parent, or its
        VLAN link), with the addresses that are supposed to answer there (gateway, aux)."""
        found: list[LanLink] = []
        for config in self._ctx.state.networks.values():
            for s in config.subnets:
                if str(s.pool) != subnet:
                    continue
                infrastructure = {str(a) for a in s.aux_addresses.values()}
                if s.gateway is not None:
                    infrastructure.add(str(s.gateway))
                found.append(
                    LanLink(
                        config.network_id,
                        config.parent.name,
                        on_lan=not config.parent.dummy
                        and not (config.kind == "ipvlan" and config.ipvlan_mode != "l2"),
                        infrastructure=frozenset(infrastructure),
                        shares_mac=config.kind == "ipvlan",
                    )
                )
        return found

    def endpoint_addresses(
        self,
    ) -> list[tuple[str, str, ipaddress.IPv4Interface | ipaddress.IPv6Interface]]:
        """(network ID, endpoint ID, address) of every loaded endpoint address, for the
        daemon's start-up comparison with the IPAM state."""
        return [
            (ep.network_id, ep.endpoint_id, address)
            for ep in self._ctx.state.endpoints.values()
            for address in (ep.ipv4, ep.ipv6)
            if address is not None
        ]

    def snapshot(self) -> DriverState:
        """The loaded networks, endpoints and owned links, as the store holds them (immutable
        records: a read-only view for `status` and `doctor`)."""
        state = self._ctx.state
        return DriverState(
            networks=tuple(state.networks.values()),
            endpoints=tuple(state.endpoints.values()),
            owned_links=tuple(state.owned.values()),
        )

    def recent_claims(self) -> list[Claim]:
        """The latest claims of containers' addresses by other devices (oldest first, at most
        driver.lan.claims.KEEP_CLAIMS, one per log line), for ``doctor`` and the metrics."""
        return list(self._ctx.claims.recent)

    def claims_seen(self) -> int:
        """Frames seen since the start in which another device claimed a container's address."""
        return self._ctx.claims.total

    @property
    def links(self) -> Links:
        """The link layer the driver works with (``doctor`` makes its test link with it)."""
        return self._ctx.links

    async def exclusively(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` while no driver call changes links: ``doctor``'s short-lived test link
        must not meet a Join on the same parent (the sharing rule, or the kernel, would refuse
        one of them). Runs to its end even if the caller goes away."""
        return await self._serialized(work)

    def counts(self) -> DriverCounts:
        """What the driver holds now and has sent since the start; never waits."""
        ctx = self._ctx
        kinds: dict[str, int] = dict.fromkeys(OWNED_KINDS, 0)
        for link in ctx.state.owned.values():
            kinds[link.kind] += 1
        return DriverCounts(
            networks=len(ctx.state.networks),
            endpoints=len(ctx.state.endpoints),
            owned_links=kinds,
            announced_frames=ctx.announced.frames,
            announce_failures=ctx.announced.failures,
            claims_seen=ctx.claims.total,
        )

    async def load(self) -> None:
        """Open and read the store, recreate owned links that vanished, remove stale endpoint
        links; then watch the owned links (when the link layer can report changes)."""
        async with self._lock:
            ctx = self._ctx
            ctx.state = State.from_store(await ctx.commit(ctx.store.load))
            await network.forget_impossible_links(ctx)
            report = await restore_links(ctx, thorough=True)
            log_waiting(report)
            await network.delete_orphan_endpoint_links(ctx)
            await claimwatch.loaded(ctx)
            log.info(
                "driver state loaded",
                networks=len(ctx.state.networks),
                endpoints=len(ctx.state.endpoints),
                owned_links=sorted(ctx.state.owned),
            )
        self._watch(report)

    async def _serialized(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` under the lock, to the end even if the caller goes away: a request whose
        kernel changes are made must also be stored, or state and host would disagree."""

        async def locked() -> T:
            async with self._lock:
                return await work()

        return await asyncio.shield(asyncio.ensure_future(locked()))

    def _watch(self, loaded: RestoreReport) -> None:
        links = self._ctx.links
        if isinstance(links, LinkChangeSource) and self._watcher is None:
            self._watcher = LinkWatcher(self._ctx, links, self._serialized, waiting=loaded.waiting)
            self._watcher.start()

    async def close(self) -> None:
        if self._watcher is not None:
            await self._watcher.stop()
        tasks = list(self._ctx.announcements.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with self._lock:  # after any request still in flight
            await claimwatch.stop_all(self._ctx)
            await self._ctx.close_store()
            self._ctx.links.close()

    # -- NetworkDriver methods -------------------------------------------------------------------

    @staticmethod
    def skip_gateway_allocation() -> tuple[bool, bool]:
        """GwAllocCheck: like Docker's macvlan/ipvlan drivers, no gateway unless the user names
        one (a LAN's router is not an address to take from the pool)."""
        return True, True

    async def create_network(
        self,
        network_id: str,
        options: Mapping[str, Any],
        ipv4: Sequence[PoolData],
        ipv6: Sequence[PoolData],
    ) -> None:
        config = parse_network(network_id, options, ipv4, ipv6, self._ctx.settings.node_name)
        await self._serialized(lambda: network.create_network(self._ctx, config))

    async def delete_network(self, network_id: str) -> None:
        await self._serialized(lambda: network.delete_network(self._ctx, network_id))

    async def create_endpoint(self, req: EndpointRequest) -> str:
        return await self._serialized(lambda: endpoint.create_endpoint(self._ctx, req))

    async def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        await self._serialized(lambda: endpoint.delete_endpoint(self._ctx, network_id, endpoint_id))

    def endpoint_info(self, network_id: str, endpoint_id: str) -> dict[str, Any]:
        return endpoint.endpoint_info(self._ctx, network_id, endpoint_id)

    async def join(self, network_id: str, endpoint_id: str) -> JoinResult:
        return await self._serialized(lambda: joinleave.join(self._ctx, network_id, endpoint_id))

    async def leave(self, network_id: str, endpoint_id: str) -> None:
        await self._serialized(lambda: joinleave.leave(self._ctx, network_id, endpoint_id))
