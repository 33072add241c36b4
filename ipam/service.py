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
* Cluster mode (a `ClaimingHostRanges`, see `ipam.cluster`): when a cluster-managed pool has no
  free address left but resting (quarantined) ones, the service first asks for one more block, and
  only if none can be had (etcd unreachable, no free block) hands out the resting address; with
  nothing left at all the block is a must, and its failure is the answer. Before an `--ip` (a
  specific address for a named endpoint) it makes sure no other host owns it. Both happen outside
  the mutation lock, so allocations in other pools never wait for etcd, and run shielded like
  mutations, so a claim is never abandoned half-way.
* Probing (the LAN attached by the plugin, `ipam.lan.Lan`): an address is taken first, then asked
  of the LAN outside the lock; one that a device answers for is given back, recorded with the
  device's MAC (resting `lan_recheck` seconds) and the next one is tried. Gateways, and specific
  addresses asked for between RequestPool and CreateNetwork (aux addresses), are never probed.
  The next candidates are probed ahead (ipam/probing.py), so a request rarely waits.
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

from ipam.addresses import Family, Subnet, parse_address
from ipam.allocator import Allocator
from ipam.defaults import (
    DefaultPool,
    builtin_default_pools,
    choose_default_subnet,
    format_default_pools,
    parse_default_pools,
)
from ipam.dhcp import DhcpMode, DhcpSettings
from ipam.dhcp.books import Books
from ipam.errors import (
    AddressInUse,
    ClusterUnavailable,
    InvalidRequest,
    IpamError,
    NoAvailableAddresses,
    NoAvailablePool,
    StoreError,
)
from ipam.hostranges import ClaimingHostRanges, HostRanges, StaticPlan
from ipam.inventory import load_allocator
from ipam.lan import Lan, LanUnavailable, NoLan, PoolPlace
from ipam.options import (
    GLOBAL_ADDRESS_SPACE,
    LOCAL_ADDRESS_SPACE,
    PoolRequest,
    PoolSpec,
    build_pool_spec,
    parse_pool_request,
)
from ipam.probing import (
    KEEP_READY_FOR,
    MAX_CANDIDATES_PER_REQUEST,
    REFRESH_OLDER_THAN,
    Probing,
)
from ipam.records import AllocationRecord, Change, DhcpLeaseRecord, Kind, Snapshot
from ipam.requests import AddressRequest, parse_address_request
from ipam.sqlite_store import SqliteStore
from ipam.state_file import StateFiles
from ipam.store import FileSummary, IpamStore
from ipam.store_thread import run_on

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

# (level, event, fields): what the IPAM reports from its work on the LAN; the daemon logs it.
EventSink = Callable[[str, str, Mapping[str, object]], None]


def _ignore_event(level: str, event: str, fields: Mapping[str, object]) -> None:
    return None


def _probed(spec: PoolSpec, request: AddressRequest) -> bool:
    """Whether this request's address is asked of the LAN first: automatic ones unless probing
    is off; specific ones (--ip, and Docker < 29's unnamed ones) only with probe=on; gateways
    never (they are supposed to answer)."""
    if spec.probe == "off" or request.kind is Kind.GATEWAY:
        return False
    return request.value is None or spec.probe == "on"


# Blocks one RequestAddress may claim before it gives up: more than one is needed only when
# concurrent requests drain each new block before this one gets its turn.
MAX_CLAIMS_PER_REQUEST = 4


@dataclass(frozen=True)
class IpamSettings:
    """Daemon-level IPAM settings (the plugin fills them from its CLI/environment)."""

    node_name: str
    default_pools: tuple[DefaultPool, ...]
    quarantine_seconds: float = 300.0
    # Docker sends every container's MAC with its address request (chosen by Docker, random
    # unless `--mac-address`): DHCP leases then follow the MAC on Docker < 29 too.
    requires_mac_address: bool = False

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
    """What the IPAM asks of Docker (GetCapabilities): the handlers answer with this."""

    requires_mac_address: bool = False  # addresses are chosen without the container's MAC
    requires_request_replay: bool = False  # the state is durable: no replay after a restart


@dataclass(frozen=True)
class AddressSpaces:
    """Docker's default address space names (GetDefaultAddressSpaces)."""

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


class _Changed(Exception):
    """An allocation judged stale changed before it could be released (never leaves here)."""


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

    address_spaces = AddressSpaces()

    def __init__(
        self,
        store: IpamStore,
        settings: IpamSettings,
        clock: Callable[[], float] = time.time,
        host_ranges: HostRanges | None = None,
        cluster: ClaimingHostRanges | None = None,
        *,
        lan: Lan | None = None,
        dhcp: DhcpSettings | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._cluster = cluster
        self._host_ranges = host_ranges or cluster or StaticPlan(settings.node_name)
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
        # The LAN (probing, DHCP) as the plugin wires it; none until then.
        self._lan: Lan = lan if lan is not None else NoLan()
        self._events: EventSink = _ignore_event
        self._probing = Probing()
        # Pools between RequestPool and their network's CreateNetwork: Docker asks for the aux
        # addresses then, without an endpoint name, and aux devices answer on purpose.
        self._creating: set[str] = set()
        # Pool ID -> until when its next candidates are kept verified (ipam/probing.py).
        self._ready_until: dict[str, float] = {}
        # DHCP mode (ipam/dhcp): leases from the LAN's server, kept in these books.
        self._dhcp = DhcpMode(
            Books(
                allocator=lambda: self._allocator,
                mutate=self._mutate,
                shielded=self._shielded,
                lan=lambda: self._lan,
                report=lambda level, event, fields: self._events(level, event, fields),
                clock=clock,
            ),
            dhcp,
        )

    def attach_lan(self, lan: Lan, events: EventSink | None = None) -> None:
        """Give the IPAM the LAN behind its pools (the plugin wires the network driver's links),
        and where to report what it finds there (the daemon's log)."""
        self._lan = lan
        if events is not None:
            self._events = events
        self._dhcp.lan_attached()

    @classmethod
    def open_sqlite(
        cls,
        state_dir: Path,
        settings: IpamSettings,
        clock: Callable[[], float] = time.time,
        cluster: ClaimingHostRanges | None = None,
        *,
        files: StateFiles,
        dhcp: DhcpSettings | None = None,
    ) -> IpamService:
        """A service on `state_dir/ipam.sqlite3`, opened by `load()` through `files` (the
        daemon's state-file policy), in cluster mode when `cluster` is given, keeping DHCP
        leases with `dhcp` (the defaults when None)."""
        store = SqliteStore(Path(state_dir) / SqliteStore.FILE_NAME, files)
        return cls(store, settings, clock, cluster=cluster, dhcp=dhcp)

    @property
    def capabilities(self) -> Capabilities:
        """What Docker is told by GetCapabilities."""
        return Capabilities(requires_mac_address=self._settings.requires_mac_address)

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

    @property
    def cluster(self) -> ClaimingHostRanges | None:
        """The cluster mode, when the service runs in it."""
        return self._cluster

    # ------------------------------------------------------------- lifecycle

    async def probe(self) -> FileSummary:
        """What the store holds, read without creating anything (the daemon's start-up check)."""
        return await self._in_store_thread(self._store.probe)

    async def load(self) -> None:
        """Read the stored state; calls made meanwhile wait for it."""
        try:
            if self._cluster is not None:
                await self._cluster.load()  # the allocator asks it for this host's blocks
            with _gc_paused():
                snapshot = await self._in_store_thread(self._store.load)
                allocator = self._allocator_of(snapshot)
            allocator.load_notes[:0] = snapshot.notes
            self._expired = allocator.prune(self._clock())
            self._allocator = allocator
            if self._cluster is not None:
                self._cluster.start(self)
            self._dhcp.start()
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
        await self._probing.close()
        await self._dhcp.close()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._cluster is not None:
            await self._cluster.close()
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

        grant = await self._mutate(plan)
        self._creating.add(grant.pool_id)
        return grant

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
        self._creating.discard(pool_id)
        await self._dhcp.release_pool(pool_id)  # the allocator's plan, plus DHCP leases

    # --------------------------------------------------------------- addresses

    async def request_address(
        self, *, pool_id: str, address: str, options: Mapping[str, str]
    ) -> AddressGrant:
        request = parse_address_request(address, options)
        await self._ready()
        if self._dhcp.takes(pool_id, request):  # dhcp=on: leased from the LAN's server
            return AddressGrant(await self._dhcp.request_address(pool_id, request))
        if request.value is not None and request.kind is Kind.STATIC:
            await self._claim_address(pool_id, request.family, request.value)
        spec = self._spec(pool_id)
        aux = request.kind is Kind.RESERVED and pool_id in self._creating
        if spec is None or aux or not _probed(spec, request):
            grant, _ = await self._allocate(pool_id, request)
            return grant
        place = PoolPlace(spec.address_space, spec.lan, str(spec.subnet))
        found: dict[int, tuple[str, str]] = {}  # address -> (text, MAC), in the order found
        exhausted = False
        for _ in range(MAX_CANDIDATES_PER_REQUEST):
            grant, value = await self._allocate(pool_id, request)
            if value in found:
                # Drawn again: nothing else is left but what answered moments ago (a full pool
                # falls back to resting addresses). Give it back unasked; the pool is full.
                mac = found[value][1]
                await self._mutate(self._lan_conflict_plan(pool_id, value, mac, spec.lan_recheck))
                exhausted = True
                break
            try:
                holder, reachable = await self._holder(pool_id, place, spec, value, request.kind)
            except asyncio.CancelledError:
                # Docker gave up on this request (its client went away): nobody will ever
                # release the address it would have got, so give it back now.
                await self._shielded(self._mutate(self._release_plan(pool_id, value)))
                raise
            if holder is None:
                if reachable:  # a LAN that cannot be asked is not asked ahead either
                    self._probe_ahead(pool_id, place, spec)
                return grant
            text = grant.address.split("/")[0]
            await self._mutate(self._lan_conflict_plan(pool_id, value, holder, spec.lan_recheck))
            self._events(
                "warning",
                "address in use on the LAN",
                {"address": text, "mac": holder, "pool": str(spec.subnet), "skipped": True},
            )
            if request.value is not None:
                raise AddressInUse(
                    f"Address already in use on the LAN: {text} answers from MAC {holder}, a "
                    "device pymacvlan did not give it to; choose another address, or create the "
                    "network with --ipam-opt probe=dynamic to hand out --ip addresses unprobed"
                )
            found[value] = (text, holder)
        which = "the candidates left are" if exhausted else f"the last {len(found)} candidates are"
        listed = ", ".join(f"{text} ({mac})" for text, mac in found.values())
        raise NoAvailableAddresses(
            f"no available address on pool {spec.subnet}: {which} in use on the LAN by devices "
            f"pymacvlan did not give them to: {listed}; they are skipped for "
            f"{spec.lan_recheck:g} s (--ipam-opt lan_recheck)"
        )

    def _release_plan(self, pool_id: str, value: int) -> Callable[[float], tuple[Change, None]]:
        def plan(now: float) -> tuple[Change, None]:
            family = self._allocator.leases[pool_id].table.subnet.family
            return self._allocator.plan_release_address(pool_id, family, value, now), None

        return plan

    def _lan_conflict_plan(
        self, pool_id: str, value: int, mac: str, recheck: float
    ) -> Callable[[float], tuple[Change, None]]:
        def plan(now: float) -> tuple[Change, None]:
            return self._allocator.plan_lan_conflict(pool_id, value, mac, now, recheck), None

        return plan

    def _spec(self, pool_id: str) -> PoolSpec | None:
        lease = self._allocator.leases.get(pool_id)
        return lease.spec if lease is not None else None

    async def _holder(
        self, pool_id: str, place: PoolPlace, spec: PoolSpec, value: int, kind: Kind
    ) -> tuple[str | None, bool]:
        """Who on the LAN answers for `value` (None: nobody did, or nobody could be asked), and
        whether the LAN could be asked."""
        table = self._allocator.leases[pool_id].table
        if self._probing.verified(table.key, value, self._clock()):
            self._probing.forget(table.key, value)  # handed out now: not free any more
            return None, True
        text = table.fmt(value)
        if kind is Kind.DYNAMIC:
            # A burst outran the addresses kept ready: the next prefetch goes deeper.
            self._probing.missed(pool_id, self._clock())
        try:
            mac = await self._lan.holder(
                place, text, spec.probe_wait, reserved=kind is Kind.RESERVED
            )
        except LanUnavailable as exc:
            self._events("info", "address not probed", {"address": text, "reason": str(exc)})
            return None, False
        return mac, True

    def _probe_ahead(self, pool_id: str, place: PoolPlace, spec: PoolSpec) -> None:
        """Probe the pool's next candidates in the background now, and again and again for a
        while, so that they are ready when a request comes (see ipam/probing.py)."""
        self._ready_until[pool_id] = self._clock() + KEEP_READY_FOR

        async def work() -> None:
            lease = self._allocator.leases.get(pool_id)
            if lease is None or self._closed:
                self._ready_until.pop(pool_id, None)
                return
            key = lease.table.key
            now = self._clock()
            todo = [
                a
                for a in self._allocator.candidates(pool_id, self._probing.depth(pool_id, now))
                if not self._probing.verified(key, a, now, within=REFRESH_OLDER_THAN)
            ]
            answers = await asyncio.gather(
                *(self._lan.holder(place, lease.table.fmt(a), spec.probe_wait) for a in todo),
                return_exceptions=True,
            )
            for value, answer in zip(todo, answers, strict=True):
                if answer is None:
                    self._probing.remember(key, value, self._clock())
                # An answer is recorded when a request draws the address and asks again; a
                # failure to ask (LanUnavailable) leaves the request to probe for itself.
            reachable = not todo or any(not isinstance(a, BaseException) for a in answers)
            if not reachable or self._closed or self._clock() >= self._ready_until.get(pool_id, 0):
                self._ready_until.pop(pool_id, None)  # idle, or no LAN to ask: stop here
                return
            self._probing.refresh_later(pool_id, work)

        self._probing.prefetch(pool_id, work)

    def probe_ahead(self, subnet: str) -> None:
        """A network on `subnet` appeared (CreateNetwork): its pools' specific addresses without
        an endpoint name are `--ip`s from now on, no more aux addresses; and probe the first
        candidates of its probing pools now, so that its first container does not wait."""
        for lease in list(self._allocator.leases.values()):
            spec = lease.spec
            if spec is None or str(spec.subnet) != subnet:
                continue
            self._creating.discard(lease.pool_id)
            if spec.probe == "off" or spec.dhcp:
                continue
            place = PoolPlace(spec.address_space, spec.lan, str(spec.subnet))
            self._probe_ahead(lease.pool_id, place, spec)

    def lan_conflicts(self) -> list[tuple[str, str, str, float]]:
        """Addresses found in use on the LAN: (table key, address, MAC, seen at)."""
        return self._allocator.lan_conflicts()

    async def _allocate(self, pool_id: str, request: AddressRequest) -> tuple[AddressGrant, int]:
        def plan(now: float) -> tuple[Change, tuple[AddressGrant, int]]:
            change, value = self._allocator.plan_request_address(pool_id, request, now)
            lease = self._allocator.leases[pool_id]
            subnet = lease.table.subnet
            text = lease.table.fmt(value)
            return change, (AddressGrant(f"{text}/{subnet.prefixlen}"), value)

        claims = 0
        cluster_failure: IpamError | None = None
        if (
            request.value is None
            and self._cluster is not None
            and not self._cluster.recently_unreachable()
            and not self._allocator.has_fresh_address(pool_id)
        ):
            # Only resting addresses are left, if any: a new block first (quarantine is there
            # so that a released address is not reused at once). Skipped while etcd is known to
            # be down: a resting address is better than waiting for a dead cluster.
            try:
                if await self._claim_block(pool_id, claims):
                    claims += 1
            except (ClusterUnavailable, NoAvailableAddresses) as exc:
                cluster_failure = exc  # a resting address may still do; else this is the answer
        while True:
            try:
                return await self._mutate(plan)
            except NoAvailableAddresses:
                if cluster_failure is not None:
                    raise cluster_failure from None
                if not await self._claim_block(pool_id, claims):
                    raise
                claims += 1

    # ------------------------------------------------------------ cluster mode

    def _cluster_spec(self, pool_id: str) -> tuple[ClaimingHostRanges, PoolSpec] | None:
        cluster = self._cluster
        lease = self._allocator.leases.get(pool_id)
        if cluster is None or lease is None or lease.spec is None:
            return None
        if not cluster.manages(lease.spec):
            return None
        return cluster, lease.spec

    async def _claim_block(self, pool_id: str, claims_so_far: int) -> bool:
        """Claim one more block for a cluster-managed pool; False when that does not apply."""
        found = self._cluster_spec(pool_id)
        if found is None or claims_so_far >= MAX_CLAIMS_PER_REQUEST:
            return False
        cluster, spec = found
        await self._shielded(
            cluster.claim_block(
                spec,
                still_needed=lambda: not self._allocator.has_fresh_address(pool_id),
                usable=lambda block: self._allocator.would_help(pool_id, block),
            )
        )
        return True

    async def _claim_address(self, pool_id: str, family: Family | None, value: int) -> None:
        """Before an --ip in a cluster-managed pool: no other host may own that address."""
        found = self._cluster_spec(pool_id)
        if found is None:
            return
        cluster, spec = found
        subnet = spec.subnet
        table = self._allocator.leases[pool_id].table
        if (
            (family is not None and family is not subnet.family)
            or value not in subnet
            or subnet.describe_reserved(value) is not None
            or value in table.held
        ):
            return  # the allocator refuses it (or shares it) with its own message
        await self._shielded(cluster.claim_address(spec, value))

    async def release_address(self, *, pool_id: str, address: str) -> None:
        if not address.strip():
            raise InvalidRequest("ReleaseAddress needs the address to release")
        family, value = parse_address(address, what="address to release")
        await self._ready()
        if await self._dhcp.release_address(pool_id, family, value):
            return  # a DHCP lease: released in the books and on the LAN
        await self._mutate(
            lambda now: (self._allocator.plan_release_address(pool_id, family, value, now), None)
        )

    async def release_judged(self, judged: AllocationRecord) -> bool:
        """Release an allocation found stale (ipam/stale.py), exactly as ReleaseAddress would
        (quarantine, a DHCP lease given back on the LAN), unless it changed since it was judged:
        False then, and nothing is done. "Changed" is checked under the mutation lock, in the
        same step as the release: an address released and requested again meanwhile is a new
        allocation (another `allocated_at`) of a live container and is never freed."""
        family, value = parse_address(judged.address, what="address to release")
        await self._ready()

        def unchanged(allocator: Allocator) -> None:
            holding = allocator.holding(judged.pool_id, value)
            if (
                holding is None
                or holding.allocated_at != judged.allocated_at
                or holding.kind is not judged.kind
                or holding.endpoint != judged.endpoint
            ):
                raise _Changed

        def plan(now: float) -> tuple[Change, None]:
            unchanged(self._allocator)
            return self._allocator.plan_release_address(judged.pool_id, family, value, now), None

        try:
            if not await self._dhcp.release_address(judged.pool_id, family, value, unchanged):
                await self._mutate(plan)
        except _Changed:
            return False
        return True

    # -------------------------------------------------------------- inspection

    def dhcp_mac(self, subnet: str, address: str) -> str | None:
        """The MAC the DHCP lease of `address` (in a pool on `subnet`) was taken with: the
        endpoint must use exactly that one. None when the address is not leased."""
        return self._dhcp.mac_of(subnet, address)

    def dhcp_leases(self) -> tuple[DhcpLeaseRecord, ...]:
        """Every lease from a LAN's DHCP server, with its state and last problem."""
        return self._dhcp.leases()

    def allocations(self) -> list[AllocationRecord]:
        """Every allocation held now, as the store keeps it (read-only: status, stale ones)."""
        return self._allocator.allocation_records()

    def pool_references(self) -> dict[Subnet, int]:
        """Per subnet, how many networks hold a pool on it (see `Allocator.pool_references`)."""
        return self._allocator.pool_references()

    def now(self) -> float:
        """The service's clock (allocations' `allocated_at` are read from it)."""
        return self._clock()

    def held_addresses(self) -> dict[str, frozenset[str]]:
        """Every subnet in use (CIDR) and the addresses held in it, for the daemon's start-up
        comparison with the driver's endpoints."""
        held: dict[str, frozenset[str]] = {}
        for table in self._allocator.tables.values():
            key = str(table.subnet)
            held[key] = held.get(key, frozenset()) | {table.fmt(a) for a in table.held}
        return held

    # ------------------------------------- what cluster mode sees (`LocalUsage`)

    @property
    def lock(self) -> asyncio.Lock:
        """The mutation lock: cluster mode holds it while it decides a block is empty, so that
        no allocation slips in between."""
        return self._lock

    def occupied(self, address_space: str, lan: str, block: Subnet) -> bool:
        """Whether any address of `block` is held or resting on this host."""
        # Expired quarantine frees an address: forget it now, the next commit deletes its row.
        self._expired += self._allocator.prune(self._clock())
        return self._allocator.occupied(address_space, lan, block.as_range())

    def cluster_spans(self, address_space: str, lan: str, family: Family) -> list[Subnet]:
        """The spans (ip-range, else subnet) of this host's cluster-managed pools there."""
        cluster = self._cluster
        if cluster is None:
            return []
        return [
            spec.span
            for lease in self._allocator.leases.values()
            if (spec := lease.spec) is not None
            and cluster.manages(spec)
            and spec.address_space == address_space
            and spec.lan == lan
            and spec.family is family
        ]

    def refresh(self) -> None:
        """This host's blocks changed: ask the host ranges again for every pool."""
        self._allocator.refresh_host_ranges()

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

        return await self._shielded(critical())

    async def _shielded(self, work: Awaitable[T]) -> T:
        """Run `work` to its end even if the caller is cancelled (see the module docstring);
        `close()` waits for it."""
        task = asyncio.ensure_future(work)
        self._inflight.add(task)
        task.add_done_callback(self._finished)
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[object]) -> None:
        self._inflight.discard(task)
        if not task.cancelled():
            # Mark the outcome as seen: when the caller was cancelled nobody else will look,
            # and asyncio would log "exception was never retrieved" for an ordinary refusal.
            task.exception()

    async def _reload_locked(self) -> None:
        snapshot = await self._in_store_thread(self._store.load)
        self._allocator = self._allocator_of(snapshot)

    def _allocator_of(self, snapshot: Snapshot) -> Allocator:
        """The allocator holding what the store holds (a damaged row is one line)."""
        return load_allocator(
            snapshot, self._host_ranges, self._settings.quarantine_seconds, self._store.name
        )

    async def _in_store_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await run_on(self._executor, "the IPAM state", fn, *args)
