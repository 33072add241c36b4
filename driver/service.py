"""The network driver's API, one method per NetworkDriver call; the HTTP layer calls only this.

Every call that changes something runs under one lock: checks, kernel changes and the store write
of one request never interleave with another's, so two networks cannot both claim a passthru
parent and a repeated request sees the first one's result.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from driver import endpoint, joinleave, network, parents, shim
from driver.config import PoolData, parse_network
from driver.context import Context, DriverSettings
from driver.endpoint import EndpointRequest
from driver.joinleave import JoinResult
from driver.links import Links
from driver.logs import log
from driver.state import State
from driver.store import FileSummary, SqliteDriverStore, StateFiles, open_store

T = TypeVar("T")

SCOPE = "local"  # networks and their state live on one host; each host runs its own plugin


class NetworkDriver:
    def __init__(
        self, links: Links, store: SqliteDriverStore, settings: DriverSettings | None = None
    ) -> None:
        self._ctx = Context(links=links, store=store, settings=settings or DriverSettings())
        self._lock = asyncio.Lock()

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

    async def load(self) -> None:
        """Open and read the store, recreate owned links that vanished, remove stale endpoint
        links."""
        async with self._lock:
            ctx = self._ctx
            ctx.state = State.from_store(await ctx.commit(ctx.store.load))
            await network.forget_impossible_links(ctx)
            await parents.restore_owned_links(ctx)
            await shim.restore(ctx)
            await network.delete_orphan_endpoint_links(ctx)
            log.info(
                "driver state loaded",
                networks=len(ctx.state.networks),
                endpoints=len(ctx.state.endpoints),
                owned_links=sorted(ctx.state.owned),
            )

    async def _serialized(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` under the lock, to the end even if the caller goes away: a request whose
        kernel changes are made must also be stored, or state and host would disagree."""

        async def locked() -> T:
            async with self._lock:
                return await work()

        return await asyncio.shield(asyncio.ensure_future(locked()))

    async def close(self) -> None:
        tasks = list(self._ctx.announcements.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with self._lock:  # after any request still in flight
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
