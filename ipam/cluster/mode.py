"""Cluster mode: this host's blocks of shared subnets, claimed in etcd and cached on disk.

`ClusterMode` is the `ClaimingHostRanges` the service uses when etcd endpoints are configured.

Rules:

* **Pools without an address plan draw from blocks**; a pool with a plan (`range.*`, `nodes=`)
  keeps its plan (`StaticPlan`), in cluster mode too.
* **Allocation never waits for etcd.** `ranges_for` answers from memory (this host's blocks,
  loaded from `cluster.sqlite3`); only claiming a block, an `--ip` outside this host's blocks,
  and the background upkeep talk to etcd. With etcd down a host keeps allocating inside its
  blocks, and says clearly why it cannot claim more. When only quarantined addresses are left in
  its blocks the service claims a new block first; right after a failed contact with etcd
  (`UNREACHABLE_HOLDOFF`) it skips that and reuses the oldest resting address at once.
* **One cluster operation at a time** (one lock): claims, `--ip` checks and sweeps never
  interleave, so a sweep never gives back a block a claim has just taken.
* **Bounded**: a claim or an `--ip` check, waiting for the lock included, gives up after
  `5 * timeout` seconds (5 s by default) with `ClusterUnavailable`; a sweep gives back at most
  `RELEASES_PER_SWEEP` blocks per round. Docker's plugin client waits 30 s for an answer, and a
  request may claim up to 4 blocks. Giving up half-way is safe: a claim whose answer was lost is
  adopted by the next one.
* **Lock order**: this module's lock, then the service's (`LocalUsage.lock`), never the reverse;
  the service calls in here only outside its own lock.
* **Giving back**: a sweep (every `sweep_seconds`) gives back each of this host's blocks that
  holds no address and no quarantined address (so a released address rests its full quarantine
  before another host can hand it out), except blocks claimed less than one sweep interval ago
  and one block per pool that still exists here (so that the next `docker run` on it works even
  while etcd is down). The block leaves this host's ranges first, etcd second, the cache last.
* **Reconciling**: the same sweep adopts blocks etcd records under this host's instance that the
  cache lacks, claims again cached blocks that vanished from etcd (an operator reclaimed them
  while this host was away: its containers may still use them), and drops cached blocks another
  host owns now, loudly. It reads only this host's part of etcd (its owner index, and the keys
  inside its own blocks), never the whole LAN: what a sweep costs does not grow with the number
  of hosts (docs/performance.md, "Cluster mode at scale").
* **Adopting on claims** only when it can help: a claim looks for blocks of its own it does not
  know (one read of the owner index) at start and after a claim or `--ip` check whose outcome
  is unknown (etcd did not answer in time: it may have applied the claim).
* **Registration**: a live daemon keeps its node key on an etcd lease (renewed every third of its
  TTL), revoked when it stops cleanly; `pymacvlan cluster reclaim` refuses a registered node.
* **Refused by etcd** (`EtcdAccessDenied`: a certificate either side does not trust, a wrong
  password) is handled as etcd down (allocation inside this host's blocks goes on, nothing
  falls back to a plan without the cluster) but said as what it is: logged once, as an error,
  and named in `problems()` and in what fails, since waiting does not fix it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ipam.addresses import AddressRange, Subnet, format_address
from ipam.cluster.cache import BlockCache, CachedBlock
from ipam.cluster.claims import (
    CLAIM_ATTEMPTS,
    BlockClaims,
    ClaimedBlock,
    Registration,
)
from ipam.cluster.config import ClusterConfig, check_node_name
from ipam.cluster.etcd import EtcdClient, EtcdStats
from ipam.cluster.kv import KeyValue
from ipam.cluster.layout import Layout, Scope, describe_block
from ipam.errors import (
    AddressOwnedElsewhere,
    ClusterError,
    ClusterUnavailable,
    EtcdAccessDenied,
    IpamError,
    NoAvailableAddresses,
    StoreError,
)
from ipam.hostranges import HostRangeSet, LocalUsage, StaticPlan
from ipam.options import PoolSpec
from ipam.state_file import StateFiles
from ipam.store_thread import run_on

T = TypeVar("T")

# After a failed contact with etcd, optional claims (a new block while resting addresses are
# left) are skipped for this long; claims that are the only way to an address still try.
UNREACHABLE_HOLDOFF = 5.0

# Blocks given back per sweep round, so that one round never holds the cluster lock for long.
RELEASES_PER_SWEEP = 16

# Nodes named in "no free block is left" (the ones holding the most blocks of the subnet).
HOLDERS_SHOWN = 8

# (level, event, fields): how cluster mode reports what it does in the background; the daemon
# sends it to its log. ipam/ itself does not log.
EventSink = Callable[[str, str, Mapping[str, object]], None]


def _ignore(level: str, event: str, fields: Mapping[str, object]) -> None:
    return None


def scope_of(spec: PoolSpec) -> Scope:
    return Scope(spec.address_space, spec.lan, spec.family)


def describe_blocks(blocks: list[Subnet], node: str) -> str:
    if not blocks:
        return f'no block of node "{node}" yet'
    shown = ", ".join(describe_block(b) for b in blocks[:4])
    more = f" and {len(blocks) - 4} more" if len(blocks) > 4 else ""
    noun = "block" if len(blocks) == 1 else "blocks"
    return f'{noun} {shown}{more} of node "{node}"'


def describe_holders(per_node: Mapping[str, int]) -> str:
    """Who holds the blocks of a full subnet, for its error message: every node when they are
    few, else the `HOLDERS_SHOWN` holding the most (a subnet shared by 500 hosts must not make
    an error message of 500 names)."""
    if len(per_node) <= HOLDERS_SHOWN:
        return ", ".join(f"{node} {count}" for node, count in sorted(per_node.items()))
    biggest = sorted(per_node.items(), key=lambda item: (-item[1], item[0]))[:HOLDERS_SHOWN]
    shown = ", ".join(f"{node} {count}" for node, count in biggest)
    more = len(per_node) - HOLDERS_SHOWN
    return f"{shown} and {more} more nodes; `pymacvlan cluster status` lists them"


class BlockPlan:
    """`HostRanges` from this host's blocks: a pool without an address plan draws from the
    blocks of its scope inside its span; a pool with a plan keeps its plan (`StaticPlan`).

    `ClusterMode` answers with it from its live blocks; `pymacvlan status` with a stopped
    daemon's cached blocks (`BlockCache.read`)."""

    def __init__(self, node: str, blocks: Callable[[Scope], list[Subnet]]) -> None:
        self.node = node
        self._blocks = blocks
        self._static = StaticPlan(node)

    def ranges_for(self, spec: PoolSpec) -> HostRangeSet:
        if spec.plan is not None:
            return self._static.ranges_for(spec)
        span = spec.span
        blocks = [b for b in self._blocks(scope_of(spec)) if b.overlaps(span)]
        ranges = tuple(
            AddressRange(span.family, max(b.first, span.first), min(b.last, span.last))
            for b in blocks
        )
        return HostRangeSet(ranges, describe_blocks(blocks, self.node))


class ClusterMode:
    """Blocks of this host: claimed in etcd, cached in `state_dir/cluster.sqlite3` (opened through
    `files`, the daemon's state-file policy)."""

    def __init__(
        self,
        config: ClusterConfig,
        node: str,
        state_dir: Path,
        *,
        files: StateFiles,
        kv: KeyValue | None = None,
        clock: Callable[[], float] = time.time,
        events: EventSink = _ignore,
    ) -> None:
        self.config = config
        self.node = check_node_name(node)
        self._kv: KeyValue = kv if kv is not None else EtcdClient.for_config(config)
        self._layout = Layout(config.prefix)
        self._cache = BlockCache(Path(state_dir) / BlockCache.FILE_NAME, files)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cluster-cache")
        self._clock = clock
        self._events = events
        self._plan = BlockPlan(self.node, self.blocks)
        self._blocks: dict[Scope, dict[Subnet, CachedBlock]] = {}
        self._retiring: set[tuple[Scope, Subnet]] = set()
        self._lock = asyncio.Lock()
        self._instance = ""
        self._claims: BlockClaims | None = None
        self._registration: Registration | None = None
        self._usage: LocalUsage | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._reachable: bool | None = None
        self._failed_at = -UNREACHABLE_HOLDOFF  # time.monotonic() of the last failed contact
        self._unreachable_reason = ""  # why the last failed contact failed
        # Set while etcd refuses this host (certificates, password): the refusal, logged once.
        self._denied: str | None = None
        self._registration_problem: str | None = None
        self._budget = 5 * config.timeout  # one claim or --ip check, lock wait included
        # A claim may be recorded in etcd that this host does not know (start; a claim that
        # timed out): the next claim looks for one first. The sweep settles it too.
        self._unsure = True

    # ------------------------------------------------------------ HostRanges

    def manages(self, spec: PoolSpec) -> bool:
        return spec.plan is None

    def recently_unreachable(self) -> bool:
        return time.monotonic() - self._failed_at < UNREACHABLE_HOLDOFF

    def ranges_for(self, spec: PoolSpec) -> HostRangeSet:
        return self._plan.ranges_for(spec)

    def blocks(self, scope: Scope) -> list[Subnet]:
        """This host's usable blocks in `scope`, in address order."""
        return sorted(b for b in self._blocks.get(scope, {}) if (scope, b) not in self._retiring)

    def all_blocks(self) -> dict[Scope, list[Subnet]]:
        return {scope: self.blocks(scope) for scope in self._blocks if self.blocks(scope)}

    @property
    def instance(self) -> str:
        return self._instance

    def describe_etcd(self) -> str:
        return self._kv.describe()

    # --------------------------------------------- what the daemon's health and metrics read

    @property
    def etcd_reachable(self) -> bool | None:
        """Whether the last contact with etcd succeeded; None before the first one."""
        return self._reachable

    @property
    def etcd_stats(self) -> EtcdStats | None:
        """What the calls to etcd did (None on a key-value store of the tests' own)."""
        return self._kv.stats if isinstance(self._kv, EtcdClient) else None

    def problems(self) -> list[str]:
        """What is wrong with this host's part of the cluster now, one line each: etcd not
        reachable at the last contact, another live daemon registered under this node name."""
        found = []
        if self._reachable is False:
            what = "etcd access denied" if self._denied is not None else "etcd unreachable"
            found.append(
                f"{what} ({self._kv.describe()}): {self._unreachable_reason}; "
                "allocating inside this host's blocks only"
            )
        if self._registration_problem is not None:
            found.append(self._registration_problem)
        return found

    def held_blocks(self) -> list[CachedBlock]:
        """This host's blocks with what it knows of each (for `pymacvlan status`)."""
        return [
            cached
            for scope, blocks in self._blocks.items()
            for block, cached in sorted(blocks.items())
            if (scope, block) not in self._retiring
        ]

    def _describe(self, blocks: list[Subnet]) -> str:
        return describe_blocks(blocks, self.node)

    def _owns(self, scope: Scope, value: int) -> bool:
        return any(value in b for b in self.blocks(scope))

    # ------------------------------------------------------------- lifecycle

    async def load(self) -> None:
        instance, cached = await self._in_thread(self._cache.open)
        self._instance = instance
        self._blocks.clear()
        for block in cached:
            self._blocks.setdefault(block.scope, {})[block.block] = block
        self._claims = BlockClaims(self._kv, self._layout, self.node, instance, self._clock)
        self._registration = Registration(
            self._kv, self._layout, self.node, instance, self.config.node_ttl, self._clock
        )

    def start(self, usage: LocalUsage) -> None:
        self._usage = usage
        self._tasks = [
            asyncio.create_task(self._registration_loop(), name="pymacvlan-cluster-registration"),
            asyncio.create_task(self._sweep_loop(), name="pymacvlan-cluster-sweep"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._registration is not None:
            try:
                async with asyncio.timeout(self.config.timeout):
                    await self._registration.withdraw()
            except (IpamError, TimeoutError):
                pass  # the lease runs out by itself within its TTL
        await self._kv.close()
        try:
            await self._in_thread(self._cache.close)
        finally:
            self._executor.shutdown(wait=True)

    def _require(self) -> BlockClaims:
        if self._claims is None:
            raise StoreError("the cluster state is not loaded")
        return self._claims

    # ------------------------------------------------------------ claiming

    async def claim_block(
        self,
        spec: PoolSpec,
        *,
        still_needed: Callable[[], bool],
        usable: Callable[[AddressRange], bool],
    ) -> None:
        claims = self._require()
        scope = scope_of(spec)
        try:
            async with asyncio.timeout(self._budget), self._lock:
                if not still_needed():
                    return  # another request claimed a block while this one waited
                result = await claims.find_and_claim(
                    scope,
                    spec.span,
                    spec.block_prefixlen,
                    pool=str(spec.subnet),
                    known=self._blocks.get(scope, {}).keys(),
                    usable=lambda block: usable(block.as_range()),
                    adopt=self._unsure,
                )
                self._unsure = False
                self._note_reachable()
                if result.block is None:
                    raise NoAvailableAddresses(self._no_free_block(spec, result.listing))
                await self._remember([result.block])
        except (ClusterUnavailable, TimeoutError) as exc:
            reason = self._unavailable_reason(exc)
            if isinstance(exc, EtcdAccessDenied):
                raise EtcdAccessDenied(
                    f"no available addresses in this host's blocks of {spec.span} and this "
                    f"host may not use the etcd cluster ({self._kv.describe()}) to claim "
                    f"another block: {reason}"
                ) from None
            raise ClusterUnavailable(
                f"no available addresses in this host's blocks of {spec.span} and the etcd "
                f"cluster ({self._kv.describe()}) cannot be reached to claim another block: "
                f"{reason}"
            ) from None
        self._events(
            "info",
            "cluster block adopted" if result.adopted else "cluster block claimed",
            {"block": str(result.block.block), "lan": str(scope), "pool": str(spec.subnet)},
        )
        await self._refresh()

    def _unavailable_reason(self, exc: Exception) -> str:
        self._unsure = True  # the claim may have been applied without this host hearing of it
        if isinstance(exc, TimeoutError):
            exc = ClusterUnavailable(f"no answer within {self._budget:g} s")
        self._note_unreachable(exc)
        return str(exc)

    async def claim_address(self, spec: PoolSpec, value: int) -> None:
        claims = self._require()
        scope = scope_of(spec)
        if self._owns(scope, value):
            return  # this host's own block: no round trip
        text = format_address(spec.family, value)
        try:
            async with asyncio.timeout(self._budget), self._lock:
                if self._owns(scope, value):
                    return
                await self._claim_address_locked(claims, spec, scope, value, text)
                self._note_reachable()
        except (ClusterUnavailable, TimeoutError) as exc:
            reason = self._unavailable_reason(exc)
            mine = self._describe(self.blocks(scope))
            denied = isinstance(exc, EtcdAccessDenied)
            cluster = f"the etcd cluster ({self._kv.describe()})"
            raise (EtcdAccessDenied if denied else ClusterUnavailable)(
                f"cannot check whether {text} is free on the other hosts: "
                + (f"this host may not use {cluster}" if denied else f"{cluster} cannot be reached")
                + f": {reason}; ask for an address in this host's blocks ({mine}) or for none "
                + ("until the etcd settings are fixed" if denied else "until etcd is back")
            ) from None
        await self._refresh()

    async def _claim_address_locked(
        self, claims: BlockClaims, spec: PoolSpec, scope: Scope, value: int, text: str
    ) -> None:
        for _ in range(CLAIM_ATTEMPTS):
            found = await claims.block_containing(scope, value)
            if found is not None:
                if claims.mine(found.owner):
                    await self._remember([found])
                    return
                raise AddressOwnedElsewhere(
                    f'requested address {text} belongs to node "{found.owner.node}": it is in '
                    f"block {describe_block(found.block)}, which that host claimed (in cluster "
                    "mode each host hands out the addresses of its own blocks); start the "
                    f"container on {found.owner.node}, or ask for another address"
                )
            # In no block yet: this host takes the single address, so that no other host's
            # future block can contain it.
            single = Subnet(spec.family, value, spec.family.bits)
            claimed = await claims.claim(scope, single, str(spec.subnet))
            if claimed is not None:
                await self._remember([claimed])
                self._events(
                    "info", "cluster address claimed", {"address": text, "lan": str(scope)}
                )
                return
        raise ClusterError(
            f"could not reserve {text} in the cluster: the blocks around it kept changing; "
            "try again"
        )

    def _no_free_block(self, spec: PoolSpec, listing: Iterable[ClaimedBlock]) -> str:
        span = spec.span
        in_span = [c for c in listing if c.block.overlaps(span)]
        per_node = Counter(c.owner.node for c in in_span)
        holders = describe_holders(per_node)
        blocks = self.blocks(scope_of(spec))
        mine = (
            f"this host's {self._describe(blocks)} {'is' if len(blocks) == 1 else 'are'} full"
            if blocks
            else ("this host has no block")
        )
        return (
            f"no available addresses on this pool: {spec.subnet}: {mine} and no free "
            f"/{spec.block_prefixlen} block is left in {span} ({len(in_span)} blocks claimed: "
            f"{holders or 'none'}); remove containers, or give back the blocks of a host that "
            "is gone with `pymacvlan cluster reclaim --node NAME`"
        )

    # --------------------------------------------------------------- upkeep

    async def sweep(self) -> None:
        """One round of upkeep: reconcile this host's blocks with etcd, give back empty ones.
        Raises `ClusterUnavailable` when etcd cannot be reached (nothing is changed then)."""
        claims = self._require()
        async with self._lock:
            if await self._reconcile(claims):
                await self._refresh()
            self._unsure = False
            await self._give_back(claims)

    async def _reconcile(self, claims: BlockClaims) -> bool:
        changed = False
        # Blocks the owner index says are this instance's and the cache lacks: adopt the ones
        # whose block key agrees; the others are stale index keys.
        adopt = []
        for indexed in await claims.list_mine():
            if indexed.block in self._blocks.get(indexed.scope, {}):
                continue
            current = await claims.read_block(indexed.scope, indexed.block)
            if current is not None and claims.mine(current.owner):
                adopt.append(current)
            else:
                await claims.drop_index(indexed)
        if adopt:
            await self._remember(adopt)
            for c in adopt:
                self._events(
                    "info", "cluster block adopted", {"block": str(c.block), "lan": str(c.scope)}
                )
            changed = True
        # The cached blocks against their keys in etcd (the truth; the index is not).
        lost: list[tuple[Scope, Subnet, ClaimedBlock]] = []
        for scope, blocks in list(self._blocks.items()):
            live = [b for b in blocks if (scope, b) not in self._retiring]
            entries = await claims.starting_inside(scope, live) if live else []
            for block in sorted(live):
                same = next((c for c in entries if c.block == block), None)
                if same is not None and claims.mine(same.owner):
                    continue
                other = same or next((c for c in entries if c.block.overlaps(block)), None)
                if other is None:
                    # Gone from etcd (reclaimed while this host was away, or a give-back that
                    # crashed half-way): this host may still use addresses in it, so take it
                    # back before anyone else does.
                    if await claims.claim(scope, block, blocks[block].pool) is not None:
                        self._events(
                            "warning",
                            "cluster block claimed again",
                            {"block": str(block), "lan": str(scope)},
                        )
                        continue
                    # A larger block of another host covers it now.
                    other = await claims.block_containing(scope, block.first)
                    if other is None or claims.mine(other.owner):
                        continue  # it changed meanwhile: the next sweep looks again
                lost.append((scope, block, other))
        if lost:
            usage = self._usage
            for scope, block, other in lost:
                busy = False
                if usage is not None:
                    async with usage.lock:
                        busy = usage.occupied(scope.address_space, scope.lan, block)
                self._events(
                    "error",
                    "cluster block lost",
                    {
                        "block": str(block),
                        "lan": str(scope),
                        "now_held_by": other.owner.node,
                        "problem": (
                            "this host's blocks were reclaimed while it was away and another "
                            "host claimed this one; this host no longer hands out its addresses"
                            + (", but containers here still use some: restart them" if busy else "")
                        ),
                    },
                )
            await self._forget([(scope, block) for scope, block, _ in lost])
            changed = True
        return changed

    async def _give_back(self, claims: BlockClaims) -> None:
        usage = self._usage
        if usage is None:
            return
        now = self._clock()
        retire: list[tuple[Scope, Subnet]] = []
        async with usage.lock:
            for scope, blocks in self._blocks.items():
                live = [b for b in blocks if (scope, b) not in self._retiring]
                empty = {
                    b
                    for b in live
                    if blocks[b].claimed_at + self.config.sweep_seconds <= now
                    and not usage.occupied(scope.address_space, scope.lan, b)
                }
                if not empty:
                    continue
                keep: set[Subnet] = set()
                for span in usage.cluster_spans(scope.address_space, scope.lan, scope.family):
                    inside = [b for b in live if b.overlaps(span)]
                    if inside and all(b in empty for b in inside):
                        # The pool has only empty blocks: keep its biggest for the next
                        # `docker run`, which then works with etcd down too.
                        keep.add(min(inside, key=lambda b: (b.prefixlen, b.first)))
                retire.extend((scope, b) for b in sorted(empty - keep))
            retire = retire[:RELEASES_PER_SWEEP]  # the rest next round
            if not retire:
                return
            self._retiring.update(retire)
            usage.refresh()
        released: list[tuple[Scope, Subnet]] = []
        try:
            for scope, block in retire:
                if await claims.release(scope, block):
                    released.append((scope, block))
        except ClusterError as exc:
            self._events(
                "warning",
                "giving back cluster blocks stopped",
                {"error": str(exc), "given_back": len(released), "kept": len(retire)},
            )
        finally:
            self._retiring.difference_update(retire)
            if released:
                await self._forget(released)
                for scope, block in released:
                    self._events(
                        "info", "cluster block given back", {"block": str(block), "lan": str(scope)}
                    )
            if len(released) != len(retire):
                await self._refresh()  # the ones not given back are usable again

    async def _registration_loop(self) -> None:
        registration = self._registration
        if registration is None:
            return
        interval = max(0.5, self.config.node_ttl / 3)
        while True:
            try:
                problem = await registration.renew()
            except ClusterUnavailable as exc:
                self._note_unreachable(exc)
            except IpamError as exc:
                self._events("error", "cluster registration failed", {"error": str(exc)})
            else:
                self._note_reachable()
                if problem != self._registration_problem:
                    self._registration_problem = problem
                    if problem is not None:
                        self._events("error", "cluster node name conflict", {"problem": problem})
            await asyncio.sleep(interval)

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except ClusterUnavailable as exc:
                self._note_unreachable(exc)
            except IpamError as exc:
                self._events("error", "cluster sweep failed", {"error": str(exc)})
            except Exception as exc:  # a bug of ours: report it, keep the daemon serving
                self._events(
                    "error", "cluster sweep crashed", {"error": f"{type(exc).__name__}: {exc}"}
                )
            else:
                self._note_reachable()
            await asyncio.sleep(self.config.sweep_seconds)

    # ------------------------------------------------------------- machinery

    def _note_unreachable(self, exc: Exception) -> None:
        self._failed_at = time.monotonic()
        self._unreachable_reason = str(exc)
        held = sum(len(blocks) for blocks in self._blocks.values())
        was_denied, self._denied = self._denied, None
        if isinstance(exc, EtcdAccessDenied):
            # Settings to fix, not an outage: an error, logged again only if it changes.
            self._denied = str(exc)
            self._reachable = False
            if was_denied != self._denied:
                self._events(
                    "error",
                    "etcd access denied",
                    {
                        "etcd": self._kv.describe(),
                        "error": str(exc),
                        "note": f"allocating inside this host's {held} blocks only",
                    },
                )
            return
        if self._reachable is not False or was_denied is not None:
            self._reachable = False
            self._events(
                "warning",
                "etcd unreachable",
                {
                    "etcd": self._kv.describe(),
                    "error": str(exc),
                    "note": f"allocating inside this host's {held} blocks only",
                },
            )

    def _note_reachable(self) -> None:
        if self._reachable is False:
            self._events("info", "etcd reachable again", {"etcd": self._kv.describe()})
        self._reachable = True
        self._denied = None
        self._failed_at = -UNREACHABLE_HOLDOFF

    async def _remember(self, claimed: list[ClaimedBlock]) -> None:
        cached = [CachedBlock(c.scope, c.block, c.owner.pool, c.owner.claimed_at) for c in claimed]
        await self._in_thread(self._cache.add, cached)
        for block in cached:
            self._blocks.setdefault(block.scope, {})[block.block] = block

    async def _forget(self, blocks: list[tuple[Scope, Subnet]]) -> None:
        for scope, block in blocks:
            self._blocks.get(scope, {}).pop(block, None)
            if not self._blocks.get(scope, True):
                del self._blocks[scope]
        await self._in_thread(self._cache.remove, blocks)

    async def _refresh(self) -> None:
        usage = self._usage
        if usage is not None:
            async with usage.lock:
                usage.refresh()

    async def _in_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await run_on(self._executor, "the cluster state", fn, *args)
