"""Simulated cluster-mode hosts: the daemon's own IPAM and claim code, many hosts per process.

A simulated host is what a `pymacvlan serve` daemon runs for cluster mode, minus its unix socket
and its links: an `IpamService` on its own SQLite state directory, in cluster mode through a
`ClusterMode` with its own node name, its own block cache (`cluster.sqlite3`), its own instance
ID and its own `EtcdClient` (so that its etcd traffic is counted apart). It registers on an etcd
lease, sweeps, claims and gives back blocks with the daemon's code; the benchmark drives it with
`request_address` / `release_address`, as Docker's RequestAddress / ReleaseAddress would.

Two small things wrap it, and only observe: `TimedClusterMode` times every `claim_block` (what
the service calls when the host needs another block) and keeps its outcome; `CountingKV` counts
the claim transactions that lost the race (another host claimed that candidate first).

The referees:

* `Ledger`: every address granted is recorded at once with its host. An address granted to a
  second host while the first still holds it is a violation, and so is an address outside the
  blocks of the host that granted it.
* `Audit`: etcd's blocks never overlap, and every block a host allocates from is recorded in
  etcd as that host's (by instance). A host adds a block to its memory only after etcd has it,
  and takes it out of its memory before it gives it back, so a mismatch that is still there at
  the next look is a real one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ipam.addresses import AddressRange, Subnet, parse_address
from ipam.cluster.claims import ClaimedBlock, list_blocks
from ipam.cluster.config import NODE_TTL_SECONDS, ClusterConfig
from ipam.cluster.etcd import EtcdClient, EtcdStats
from ipam.cluster.kv import Absent, Compare, Entry, KeyValue, Op, Put
from ipam.cluster.layout import Layout
from ipam.cluster.mode import ClusterMode, EventSink
from ipam.defaults import builtin_default_pools
from ipam.errors import ClusterUnavailable, NoAvailableAddresses
from ipam.options import PoolSpec
from ipam.service import IpamService, IpamSettings
from ipam.state_file import StateFiles
from plugin.state_files import StateFiles as PluginStateFiles

# The message a host gives when the subnet has no free block left (ipam/cluster/mode.py).
NO_BLOCK_LEFT = "no free /{prefixlen} block is left in {span}"


@dataclass(frozen=True)
class SimSettings:
    """What every simulated host of one run shares: the etcd cluster and the daemon settings."""

    endpoints: str
    prefix: str
    timeout: float = 1.0  # --etcd-timeout
    sweep_seconds: float = 30.0  # --cluster-sweep-seconds
    node_ttl: int = NODE_TTL_SECONDS  # the registration lease
    quarantine: float = 300.0  # --quarantine-seconds


@dataclass(frozen=True)
class Claim:
    """One `claim_block` call: how long it took, lock wait included, and how it ended."""

    seconds: float
    outcome: str  # claimed | not needed | none left | unavailable | failed


class TimedClusterMode(ClusterMode):
    """`ClusterMode` that times its claims; nothing else differs."""

    def __init__(
        self,
        config: ClusterConfig,
        node: str,
        state_dir: Path,
        *,
        files: StateFiles,
        kv: KeyValue,
        events: EventSink,
    ) -> None:
        super().__init__(config, node, state_dir, files=files, kv=kv, events=events)
        self.claims: list[Claim] = []

    async def claim_block(
        self,
        spec: PoolSpec,
        *,
        still_needed: Callable[[], bool],
        usable: Callable[[AddressRange], bool],
    ) -> None:
        before = self._held()
        started = time.perf_counter()
        outcome = "failed"
        try:
            await super().claim_block(spec, still_needed=still_needed, usable=usable)
            outcome = "claimed" if self._held() > before else "not needed"
        except NoAvailableAddresses:
            outcome = "none left"
            raise
        except ClusterUnavailable:
            outcome = "unavailable"
            raise
        finally:
            self.claims.append(Claim(time.perf_counter() - started, outcome))

    def _held(self) -> int:
        return sum(len(blocks) for blocks in self.all_blocks().values())


class CountingKV:
    """The host's `EtcdClient`, counting claim transactions won and lost (a lost one: another
    host claimed an overlapping block between this host's read and its transaction)."""

    def __init__(self, client: EtcdClient, layout: Layout) -> None:
        self.client = client
        self.layout = layout
        self.won = 0
        self.lost = 0

    def describe(self) -> str:
        return self.client.describe()

    async def range(
        self, key: str, range_end: str = "", *, limit: int = 0, descending: bool = False
    ) -> list[Entry]:
        return await self.client.range(key, range_end, limit=limit, descending=descending)

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op]) -> bool:
        applied = await self.client.txn(compares, success)
        claim = any(isinstance(c, Absent) for c in compares) and any(
            isinstance(op, Put) and self.layout.parse_block_key(op.key) is not None
            for op in success
        )
        if claim:
            if applied:
                self.won += 1
            else:
                self.lost += 1
        return applied

    async def grant(self, ttl: int) -> int:
        return await self.client.grant(ttl)

    async def keepalive(self, lease: int) -> int:
        return await self.client.keepalive(lease)

    async def revoke(self, lease: int) -> None:
        await self.client.revoke(lease)

    async def close(self) -> None:
        await self.client.close()


def _kv(counting: CountingKV) -> KeyValue:
    return counting  # mypy checks here that CountingKV is a complete KeyValue


class SimHost:
    """One simulated host: see the module's docstring."""

    def __init__(self, name: str, state_dir: Path, settings: SimSettings) -> None:
        self.name = name
        self.state_dir = state_dir
        self.settings = settings
        self.events: list[tuple[str, str, dict[str, object]]] = []
        self.held: dict[str, list[str]] = {}  # pool ID -> addresses, oldest first
        self.lans: dict[str, str] = {}  # pool ID -> its LAN
        self._serial = itertools.count(1)
        self._service: IpamService | None = None
        self._mode: TimedClusterMode | None = None
        self._kv: CountingKV | None = None

    # ------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Load the host as a daemon does at start: state, registration, first sweep."""
        s = self.settings
        config = ClusterConfig.parse(
            s.endpoints, prefix=s.prefix, timeout=s.timeout, sweep_seconds=s.sweep_seconds
        )
        assert config is not None
        config = dataclasses.replace(config, node_ttl=s.node_ttl)
        self._kv = CountingKV(EtcdClient.for_config(config), Layout(config.prefix))
        sink: EventSink = self._event
        self._mode = TimedClusterMode(
            config,
            self.name,
            self.state_dir,
            files=PluginStateFiles(),
            kv=_kv(self._kv),
            events=sink,
        )
        settings = IpamSettings(self.name, builtin_default_pools(self.name), s.quarantine)
        self._service = IpamService.open_sqlite(
            self.state_dir, settings, cluster=self._mode, files=PluginStateFiles()
        )
        await self._service.load()

    async def close(self) -> None:
        """Stop as a daemon stops cleanly (the registration is withdrawn)."""
        if self._service is not None:
            service, self._service = self._service, None
            await service.close()

    def _event(self, level: str, event: str, fields: Mapping[str, object]) -> None:
        self.events.append((level, event, dict(fields)))

    # ----------------------------------------------------------------- parts

    @property
    def service(self) -> IpamService:
        assert self._service is not None, f"{self.name} is not open"
        return self._service

    @property
    def mode(self) -> TimedClusterMode:
        assert self._mode is not None, f"{self.name} is not open"
        return self._mode

    @property
    def is_open(self) -> bool:
        return self._kv is not None

    @property
    def stats(self) -> EtcdStats:
        assert self._kv is not None, f"{self.name} is not open"
        return self._kv.client.stats

    @property
    def conflicts(self) -> int:
        return self._kv.lost if self._kv is not None else 0

    @property
    def claims(self) -> list[Claim]:
        return self._mode.claims if self._mode is not None else []

    def blocks(self) -> list[Subnet]:
        """The blocks this host allocates from now (every LAN and family)."""
        return [b for blocks in self.mode.all_blocks().values() for b in blocks]

    def inside_blocks(self, pool_id: str, address: str) -> bool:
        """Whether `address` of the pool lies in one of this host's blocks of the pool's LAN."""
        _, value = parse_address(address)
        lan = self.lans[pool_id]
        return any(
            value in block
            for scope, blocks in self.mode.all_blocks().items()
            if scope.lan == lan
            for block in blocks
        )

    # ----------------------------------------------------------- what Docker does

    async def pool(self, subnet: str, block_size: int, lan: str = "") -> str:
        """`docker network create --subnet SUBNET --ipam-opt block_size=N` on this host (and
        `--ipam-opt lan=LAN`, when given)."""
        options = {"block_size": str(block_size), "probe": "off"}
        if lan:
            options["lan"] = lan
        grant = await self.service.request_pool(
            address_space="local", pool=subnet, sub_pool="", options=options, v6=False
        )
        self.held.setdefault(grant.pool_id, [])
        self.lans[grant.pool_id] = lan or "default"
        return grant.pool_id

    async def allocate(self, pool_id: str) -> str:
        """One container's address (RequestAddress with an endpoint name, as Docker 29 sends)."""
        name = f"{self.name}-c{next(self._serial)}"
        grant = await self.service.request_address(
            pool_id=pool_id, address="", options={"com.docker.network.endpoint.name": name}
        )
        address = grant.address.split("/")[0]
        self.held.setdefault(pool_id, []).append(address)
        return address

    async def release(self, pool_id: str, address: str) -> None:
        await self.service.release_address(pool_id=pool_id, address=address)
        self.held[pool_id].remove(address)


# ------------------------------------------------------------------ referees


@dataclass
class Ledger:
    """Who holds which address, as the hosts' answers said; see the module's docstring."""

    holders: dict[tuple[str, str], str] = field(default_factory=dict)  # (LAN, address) -> host
    violations: list[str] = field(default_factory=list)
    granted: int = 0

    def hold(self, host: str, address: str, *, lan: str = "default", inside: bool = True) -> None:
        self.granted += 1
        other = self.holders.get((lan, address))
        if other is not None and other != host:
            self.violations.append(f"{address} granted to {host} while {other} holds it")
        elif other == host:
            self.violations.append(f"{address} granted twice to {host}")
        self.holders[(lan, address)] = host
        if not inside:
            self.violations.append(f"{address} granted by {host} outside its blocks")

    def drop(self, host: str, address: str, *, lan: str = "default") -> None:
        if self.holders.get((lan, address)) == host:
            del self.holders[(lan, address)]

    def forget(self, host: str) -> int:
        """`host` is gone and reclaimed: what it held is free for the others. Returns how many."""
        gone = [a for a, h in self.holders.items() if h == host]
        for address in gone:
            del self.holders[address]
        return len(gone)


@dataclass
class Audit:
    """Compares etcd's blocks with the hosts' memory; see the module's docstring."""

    reader: KeyValue
    layout: Layout
    checks: int = 0
    violations: list[str] = field(default_factory=list)
    _suspects: set[str] = field(default_factory=set)

    async def check(self, hosts: Iterable[SimHost]) -> list[ClaimedBlock]:
        # Memory first, etcd second: a block enters a host's memory only after etcd has it.
        memory = {(h.name, h.mode.instance): h.blocks() for h in hosts}
        listing = await list_blocks(self.reader, self.layout)
        self.checks += 1
        found = overlaps(listing)
        owners = {(c.scope.family, c.block): c.owner.instance for c in listing}
        suspects = set()
        for (name, instance), blocks in memory.items():
            for block in blocks:
                if owners.get((block.family, block)) != instance:
                    suspects.add(f"{name} allocates from {block}, which etcd does not give it")
        # Twice in a row: a block given back between the two reads above is not a violation.
        found += sorted(suspects & self._suspects)
        self._suspects = suspects
        self.violations += [f for f in found if f not in self.violations]
        return listing


def overlaps(listing: Sequence[ClaimedBlock]) -> list[str]:
    """Pairs of blocks of one LAN and family that overlap (must be none)."""
    found = []
    ordered = sorted(listing, key=lambda c: (c.scope, c.block.first))
    for a, b in itertools.pairwise(ordered):
        if a.scope == b.scope and b.block.first <= a.block.last:
            found.append(f"{a.block} of {a.owner.node} overlaps {b.block} of {b.owner.node}")
    return found


# ------------------------------------------------------------------- numbers


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank), 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class Traffic:
    """etcd requests and JSON bytes, by kind of call, summed over hosts."""

    requests: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    received: int = 0

    @classmethod
    def of(cls, stats: Iterable[EtcdStats]) -> Traffic:
        total = cls()
        for one in stats:
            for call, calls in one.calls.items():
                count = sum(calls.outcomes.values())
                total.requests[call] = total.requests.get(call, 0) + count
                total.sent += calls.sent
                total.received += calls.received
        return total

    def minus(self, earlier: Traffic) -> Traffic:
        return Traffic(
            {k: v - earlier.requests.get(k, 0) for k, v in self.requests.items()},
            self.sent - earlier.sent,
            self.received - earlier.received,
        )

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


class LoopLag:
    """How late the event loop wakes a 50 ms sleeper: is one loop the bottleneck?"""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(0.05)
            self.lags.append(loop.time() - started - 0.05)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()

    @property
    def p99_ms(self) -> float:
        return 1000 * percentile(self.lags, 99)

    @property
    def max_ms(self) -> float:
        return 1000 * max(self.lags, default=0.0)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of `pid` so far (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def classify(exc: BaseException) -> str:
    """A short name for a failed request, for the tables (the full text goes to the log)."""
    text = str(exc)
    if isinstance(exc, ClusterUnavailable):  # a sweep's or a claim's: etcd did not answer in time
        return "etcd unreachable or too slow"
    for fragment, name in (
        ("no free /", "no free block left"),
        ("times in a row", "lost every claim race"),
        ("cannot be reached", "etcd unreachable or too slow"),
    ):
        if fragment in text:
            return name
    return f"{type(exc).__name__}: {text[:60]}"
