"""The asynchronous IPAM API the HTTP layer calls: one method per IpamDriver call.

Rules:

* Every mutation runs under one `asyncio.Lock`: plan in memory, commit the `Change` on the single
  store thread (so the event loop keeps answering), then apply it to memory. Hundreds of
  concurrent requests therefore can never be handed the same address, and a failed commit leaves
  memory exactly as it was.
* A mutation, once started, finishes even if the caller goes away (aiohttp cancels handlers of
  disconnected clients): it runs shielded, so the store and memory never disagree about a commit
  that happened.
* Calls wait for `load()`; the daemon binds its socket first and loads after, so Docker is never
  told "not ready" and never sees an answer computed from half-loaded state.
* Our state is durable, so Docker need not replay anything: `requires_request_replay=False`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ipam.addresses import parse_address
from ipam.allocator import Allocator
from ipam.defaults import (
    DefaultPool,
    builtin_default_pools,
    choose_default_subnet,
    format_default_pools,
    parse_default_pools,
)
from ipam.errors import InvalidRequest, IpamError, NoAvailablePool, StoreError
from ipam.hostranges import HostRanges, StaticPlan
from ipam.options import (
    GLOBAL_ADDRESS_SPACE,
    LOCAL_ADDRESS_SPACE,
    PoolRequest,
    build_pool_spec,
    parse_pool_request,
)
from ipam.records import Change
from ipam.requests import parse_address_request
from ipam.sqlite_store import SqliteStore
from ipam.store import IpamStore

__all__ = [
    "GLOBAL_ADDRESS_SPACE",
    "LOCAL_ADDRESS_SPACE",
    "AddressGrant",
    "AddressSpaces",
    "Capabilities",
    "IpamService",
    "IpamSettings",
    "PoolGrant",
    "parse_default_pools",
]

T = TypeVar("T")


@dataclass(frozen=True)
class IpamSettings:
    """Daemon-level IPAM settings (the plugin fills them from its CLI/environment)."""

    node_name: str
    default_pools: tuple[DefaultPool, ...]
    quarantine_seconds: float = 300.0

    @classmethod
    def for_node(
        cls,
        node_name: str,
        *,
        default_pools: str | None = None,
        quarantine_seconds: float = 300.0,
    ) -> IpamSettings:
        """Settings with the built-in default pools, or `default_pools` parsed from text."""
        if not node_name.strip():
            raise InvalidRequest("the node name must not be empty")
        pools = (
            builtin_default_pools(node_name)
            if default_pools is None
            else parse_default_pools(default_pools, node_name=node_name)
        )
        if quarantine_seconds < 0:
            raise InvalidRequest("the quarantine must be >= 0 seconds")
        return cls(node_name, pools, quarantine_seconds)


@dataclass(frozen=True)
class Capabilities:
    requires_mac_address: bool = False
    requires_request_replay: bool = False


@dataclass(frozen=True)
class AddressSpaces:
    local: str = LOCAL_ADDRESS_SPACE
    global_: str = GLOBAL_ADDRESS_SPACE


@dataclass(frozen=True)
class PoolGrant:
    pool_id: str
    pool: str  # CIDR
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AddressGrant:
    address: str  # "a.b.c.d/prefixlen", the subnet's prefix length
    data: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while start-up builds ~one object per stored row.

    Building 100k objects triggers dozens of collections that each walk everything built so far
    (about half of the load time); nothing built here is cyclic garbage, so nothing is lost.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class IpamService:
    """Docker's IpamDriver protocol over an `Allocator` and an `IpamStore`."""

    capabilities = Capabilities()
    address_spaces = AddressSpaces()

    def __init__(
        self,
        store: IpamStore,
        settings: IpamSettings,
        clock: Callable[[], float] = time.time,
        host_ranges: HostRanges | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._host_ranges = host_ranges or StaticPlan(settings.node_name)
        self._allocator = Allocator(self._host_ranges, settings.quarantine_seconds)
        self._lock = asyncio.Lock()
        # One thread owns the store: SQLite connections are not shared between threads, and
        # one writer at a time is what SQLite wants anyway.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ipam-store")
        self._loaded = asyncio.Event()
        self._load_error: IpamError | None = None
        self._closed = False
        # Quarantine rows that expired in memory but whose deletion is not committed yet.
        self._expired: tuple[tuple[str, str], ...] = ()
        self._inflight: set[asyncio.Task[object]] = set()

    @classmethod
    def open_sqlite(
        cls,
        state_dir: Path,
        settings: IpamSettings,
        clock: Callable[[], float] = time.time,
    ) -> IpamService:
        """A service on `state_dir/ipam.sqlite3` (the file is opened by `load()`)."""
        return cls(SqliteStore(Path(state_dir) / SqliteStore.FILE_NAME), settings, clock)

    @property
    def settings(self) -> IpamSettings:
        return self._settings

    @property
    def load_notes(self) -> tuple[str, ...]:
        """What the last `load()` repaired or skipped (for the daemon's log); usually empty."""
        return tuple(self._allocator.load_notes)

    @property
    def allocator(self) -> Allocator:
        """The in-memory state (read-only use: tests, diagnostics)."""
        return self._allocator

    # ------------------------------------------------------------- lifecycle

    async def load(self) -> None:
        """Read the stored state; calls made meanwhile wait for it."""
        try:
            with _gc_paused():
                snapshot = await self._in_store_thread(self._store.load)
                allocator = Allocator(self._host_ranges, self._settings.quarantine_seconds)
                allocator.apply(snapshot.as_change())
            allocator.load_notes[:0] = snapshot.notes
            self._expired = allocator.prune(self._clock())
            self._allocator = allocator
        except BaseException as exc:
            # Whatever stopped the load (an error, a bug, cancellation at shutdown), calls must
            # not go on with an empty state: they would hand out addresses already in use.
            self._load_error = (
                exc if isinstance(exc, IpamError) else StoreError(f"loading stopped: {exc!r}")
            )
            raise
        finally:
            self._loaded.set()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        async with self._lock:
            with contextlib.suppress(IpamError):
                await self._in_store_thread(self._store.close)
        self._executor.shutdown(wait=True)

    async def _ready(self) -> None:
        if self._closed:
            raise StoreError("the IPAM service is shut down")
        await self._loaded.wait()
        if self._load_error is not None:
            raise StoreError(f"the IPAM state could not be loaded: {self._load_error}")

    # ------------------------------------------------------------------- pools

    async def request_pool(
        self,
        *,
        address_space: str,
        pool: str,
        sub_pool: str,
        options: Mapping[str, str],
        v6: bool,
    ) -> PoolGrant:
        request = parse_pool_request(
            address_space=address_space, pool=pool, sub_pool=sub_pool, options=options, v6=v6
        )
        await self._ready()

        def plan(now: float) -> tuple[Change, PoolGrant]:
            subnet = request.subnet
            if subnet is None:
                in_use = self._allocator.subnets_in_use(request.address_space, request.family)
                subnet = choose_default_subnet(
                    self._settings.default_pools,
                    request.family,
                    in_use,
                    request.default_prefixlen,
                )
                if subnet is None:
                    raise NoAvailablePool(self._no_pool_message(request))
            spec = build_pool_spec(request, subnet)
            change = self._allocator.plan_request_pool(spec, now)
            return change, PoolGrant(spec.pool_id, str(spec.subnet))

        return await self._mutate(plan)

    def _no_pool_message(self, request: PoolRequest) -> str:
        family = request.family
        pools = [p for p in self._settings.default_pools if p.family is family]
        size = request.default_prefixlen
        sized = f" of size /{size}" if size is not None else ""
        if not pools:
            return (
                f"no available {family.label} pool{sized}: this plugin has no {family.label} "
                "default pools; pass --subnet or configure default pools "
                "(PYMACVLAN_DEFAULT_POOLS)"
            )
        return (
            f"no available {family.label} pool{sized}: every default pool "
            f"({format_default_pools(pools)}) is in use or overlaps a pool in use on this host; "
            "pass --subnet or add default pools (PYMACVLAN_DEFAULT_POOLS)"
        )

    async def release_pool(self, pool_id: str) -> None:
        await self._ready()
        await self._mutate(lambda now: (self._allocator.plan_release_pool(pool_id, now), None))

    # --------------------------------------------------------------- addresses

    async def request_address(
        self, *, pool_id: str, address: str, options: Mapping[str, str]
    ) -> AddressGrant:
        request = parse_address_request(address, options)
        await self._ready()

        def plan(now: float) -> tuple[Change, AddressGrant]:
            change, value = self._allocator.plan_request_address(pool_id, request, now)
            lease = self._allocator.leases[pool_id]
            subnet = lease.table.subnet
            text = lease.table.fmt(value)
            return change, AddressGrant(f"{text}/{subnet.prefixlen}")

        return await self._mutate(plan)

    async def release_address(self, *, pool_id: str, address: str) -> None:
        if not address.strip():
            raise InvalidRequest("ReleaseAddress needs the address to release")
        family, value = parse_address(address, what="address to release")
        await self._ready()
        await self._mutate(
            lambda now: (self._allocator.plan_release_address(pool_id, family, value, now), None)
        )

    # --------------------------------------------------------------- machinery

    async def _mutate(self, plan: Callable[[float], tuple[Change, T]]) -> T:
        """Plan under the lock, commit on the store thread, apply after the commit."""

        async def critical() -> T:
            async with self._lock:
                if self._closed:
                    raise StoreError("the IPAM service is shut down")
                now = self._clock()
                expired = self._expired + self._allocator.prune(now)
                self._expired = expired
                change, result = plan(now)
                change = change.with_expired(expired)
                if change:
                    await self._in_store_thread(self._store.commit, change)
                    self._expired = ()
                    try:
                        self._allocator.apply(change)
                    except Exception:
                        # Memory no longer matches the committed state: rebuild it from the
                        # store, the truth, before anyone else plans on it.
                        await self._reload_locked()
                        raise
                return result

        task = asyncio.ensure_future(critical())
        self._inflight.add(task)
        task.add_done_callback(self._finished)
        # The caller may be cancelled; the mutation may not (see the module docstring).
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[object]) -> None:
        self._inflight.discard(task)
        if not task.cancelled():
            # Mark the outcome as seen: when the caller was cancelled nobody else will look,
            # and asyncio would log "exception was never retrieved" for an ordinary refusal.
            task.exception()

    async def _reload_locked(self) -> None:
        snapshot = await self._in_store_thread(self._store.load)
        allocator = Allocator(self._host_ranges, self._settings.quarantine_seconds)
        allocator.apply(snapshot.as_change())
        self._allocator = allocator

    async def _in_store_thread(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        try:
            future: Awaitable[T] = loop.run_in_executor(self._executor, fn, *args)
            return await future
        except IpamError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot access the IPAM state: {exc}") from exc
