"""Cluster mode at scale: N simulated hosts booting at once against a real 3-member etcd, a subnet
whose blocks run out, and etcd and host failures during a 100-host run.

    .venv/bin/python -m tests.bench.bench_cluster_scale             # N = 10, 100, 500 + faults
    .venv/bin/python -m tests.bench.bench_cluster_scale --hosts 10,100 --no-faults
    .venv/bin/python -m tests.bench.bench_cluster_scale --quick     # N = 10, 100; 30-host faults
    .venv/bin/python -m tests.bench.bench_cluster_scale --json scale.json

Needs Debian's etcd-server. The benchmark starts its own 3-member etcd on loopback ports (data
on disk, in a temporary directory), and stops it by pid at the end.

Each simulated host is the daemon's own IPAM service and cluster-mode code (`SimHost`, see
tests/bench/cluster_sim.py) with its own node name, state directory, block cache and etcd client;
all hosts of a run are tasks of this one process and its one event loop (the loop's lag is
measured and printed: it says whether the loop, rather than etcd, was the bottleneck). Their
SQLite state lives on a tmpfs (/dev/shm) so that the VM's one disk serves etcd alone, as on real
hosts, each of which has a disk of its own.

One scale run, per N, each step with every host at the same moment and measured apart
(`PhaseMeter`: claims and their latency, lost races, failed requests, etcd requests and bytes
per host, CPU of the hosts and of the etcd members, event-loop lag):

1. **Start**: every host loads its state (registers, first sweep), creates the network
   (198.18.0.0/15, /26 blocks) and asks for one address: one claim each. Also measured: the
   time until every host has its first address.
2. **Fill**: `--per-host` addresses each in all (70 by default: a second claim at the 65th).
3. **One sweep** per host (what every host does every 30 s by default): the steady cost.
4. **Exhaustion**: a second network, on a LAN of its own, on a subnet of N to 2N /28 blocks
   (fewer than the hosts want): every host allocates until it is refused. Checked: every host
   ends with the "no free block left" error, every block of the subnet is claimed exactly once
   and used by its owner, every address of the subnet was handed out once.

A request that fails is tried again after `RETRY_PAUSE`, at most `MAX_FAILURES` times in a row.

Throughout, `Ledger` checks every address granted (never two holders, always inside the
granting host's blocks). The fault run is tests/bench/cluster_faults.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ipam.addresses import Subnet, parse_subnet
from ipam.cluster.claims import list_blocks
from ipam.cluster.etcd import EtcdClient
from ipam.cluster.layout import Layout, prefix_end
from ipam.errors import IpamError, NoAvailableAddresses
from tests.bench.cluster_faults import fault_run, print_faults
from tests.bench.cluster_sim import (
    Ledger,
    LoopLag,
    SimHost,
    SimSettings,
    Traffic,
    classify,
    cpu_seconds,
    overlaps,
    percentile,
)
from tests.bench.report import dec, num, plain, table
from tests.cluster.etcd_cluster import EtcdCluster

GROWTH_SUBNET = "198.18.0.0/15"
GROWTH_BLOCK = 26
EXHAUST_BLOCK = 28
# The exhaustion network is another LAN (`--ipam-opt lan=`): its subnet may then lie inside the
# first network's, and its blocks are counted apart.
EXHAUST_LAN = "exhaust"
# A host whose request failed tries again after this long, at most this many times in a row
# (a user whose `docker run` failed runs it again).
RETRY_PAUSE = 1.0
MAX_FAILURES = 10


@dataclass
class ExhaustResult:
    subnet: str
    blocks: int  # /28 blocks in the subnet
    capacity: int  # addresses a host can be given (the subnet minus network and broadcast)
    granted: int
    seconds: float
    claims: int
    conflicts_per_claim: float
    kib_per_host: float  # etcd traffic of the whole phase, per host
    hosts_refused_clearly: int  # hosts whose last answer was "no free block left"
    errors: dict[str, int]  # other failed requests, by kind
    blocks_claimed: int  # in etcd
    blocks_free: int  # not claimed at the end (must be 0)
    blocks_twice: int  # blocks two hosts allocate from (must be 0)
    blocks_lost: int  # claimed in etcd but in no host's memory (must be 0)
    example: str  # one host's final error


@dataclass
class PhaseNumbers:
    """What one step of a scale run cost, all hosts together or per host."""

    seconds: float
    claims: int  # blocks claimed
    claim_p50_ms: float  # claim_block, lock wait and retries included
    claim_p99_ms: float
    conflicts_per_claim: float  # claim transactions lost to another host, per block claimed
    failed: int  # requests that failed (and were tried again)
    errors: dict[str, int]
    requests_per_host: float  # etcd requests
    kib_per_host: float  # etcd JSON, both ways
    cpu_hosts: float  # CPU seconds of this process (every host)
    cpu_etcd: float  # CPU seconds of the three etcd members
    loop_lag_p99_ms: float


class PhaseMeter:
    """Takes the numbers of one step: `async with PhaseMeter(...) as meter: ...`."""

    def __init__(self, hosts: list[SimHost], etcd_pids: list[int | None]) -> None:
        self.hosts = hosts
        self.etcd_pids = etcd_pids
        self.errors: Counter[str] = Counter()
        self.numbers: PhaseNumbers | None = None

    async def __aenter__(self) -> PhaseMeter:
        self._claims = {h.name: len(h.claims) for h in self.hosts}
        self._conflicts = sum(h.conflicts for h in self.hosts)
        self._traffic = Traffic.of(h.stats for h in self.hosts if h.is_open)
        self._cpu = (time.process_time(), sum(cpu_seconds(p) for p in self.etcd_pids))
        self._started = time.perf_counter()
        self._lag = LoopLag().__enter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._lag.__exit__()
        seconds = time.perf_counter() - self._started
        claims = [c for h in self.hosts for c in h.claims[self._claims[h.name] :]]
        won = [c.seconds * 1000 for c in claims if c.outcome == "claimed"]
        traffic = Traffic.of(h.stats for h in self.hosts if h.is_open).minus(self._traffic)
        n = len(self.hosts)
        self.numbers = PhaseNumbers(
            seconds=seconds,
            claims=len(won),
            claim_p50_ms=percentile(won, 50),
            claim_p99_ms=percentile(won, 99),
            conflicts_per_claim=(sum(h.conflicts for h in self.hosts) - self._conflicts)
            / max(1, len(won)),
            failed=sum(self.errors.values()),
            errors=dict(self.errors),
            requests_per_host=traffic.total_requests / n,
            kib_per_host=(traffic.sent + traffic.received) / 1024 / n,
            cpu_hosts=time.process_time() - self._cpu[0],
            cpu_etcd=sum(cpu_seconds(p) for p in self.etcd_pids) - self._cpu[1],
            loop_lag_p99_ms=self._lag.p99_ms,
        )


@dataclass
class ScaleResult:
    hosts: int
    first_all_seconds: float  # until every host had its first address
    first_p50_seconds: float
    start: PhaseNumbers  # every host starts and asks for one address, all at once
    fill: PhaseNumbers  # then for `per_host - 1` more, all at once
    sweep: PhaseNumbers  # then one sweep each, all at once
    allocations: int
    blocks_held: int  # in the first network, after the fill
    requests_by_call: dict[str, float]  # per host, start + fill
    keepalive_bytes: float  # one registration renewal, both ways
    block_keys: int  # of the first network
    node_keys: int
    keys_total: int  # everything under the prefix: blocks of both networks, index, nodes
    etcd_db_mib: float
    wall_seconds: float
    violations: list[str]
    exhaust: ExhaustResult | None = None


@contextmanager
def host_root() -> Iterator[Path]:
    """A temporary directory for the hosts' state, on tmpfs when there is one."""
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() else None
    with tempfile.TemporaryDirectory(prefix="pymacvlan-sim-", dir=base) as tmp:
        yield Path(tmp)


def etcd_status(etcd: EtcdCluster) -> dict[str, object]:
    for member in etcd.members:
        if member.running:
            status = etcd.call(member, "maintenance/status", {})
            if isinstance(status, dict):
                return status
    return {}


def exhaust_subnet(hosts: int) -> str:
    """A subnet of N to 2N /28 blocks (at least 4) inside 198.19.0.0/16."""
    blocks = max(4, 1 << math.ceil(math.log2(max(hosts, 1))))
    prefixlen = EXHAUST_BLOCK - int(math.log2(blocks))
    return f"198.19.0.0/{prefixlen}"


async def scale_run(
    etcd: EtcdCluster,
    count: int,
    root: Path,
    *,
    per_host: int = 70,
    exhaust: bool = True,
    log: bool = True,
) -> ScaleResult:
    prefix = f"/scale-{secrets.token_hex(4)}"
    # Sweeps only at start (as a daemon does) and once more in step 3: the rest of a host's
    # steady cost (its registration renewals) is measured apart.
    settings = SimSettings(etcd.endpoints, prefix, sweep_seconds=3600.0)
    base = root / prefix.strip("/")
    hosts = [SimHost(f"host{i:04d}", base / f"h{i}", settings) for i in range(count)]
    ledger = Ledger()
    firsts: dict[str, float] = {}
    pools: dict[str, str] = {}
    reader = EtcdClient(etcd.endpoints.split(","), 2.0)
    layout = Layout(prefix)
    etcd_pids = [m.process.pid for m in etcd.members]
    wall = time.perf_counter()

    def say(text: str) -> None:
        if log:
            print(f"[{count} hosts, {time.perf_counter() - wall:6.1f} s] {text}", file=sys.stderr)

    async def allocate(host: SimHost, want: int, errors: Counter[str]) -> None:
        pool_id = pools[host.name]
        failures = 0
        while len(host.held[pool_id]) < want:
            try:
                address = await host.allocate(pool_id)
            except IpamError as exc:
                errors[classify(exc)] += 1
                failures += 1
                if failures >= MAX_FAILURES:
                    return
                await asyncio.sleep(RETRY_PAUSE)
                continue
            failures = 0
            ledger.hold(host.name, address, inside=host.inside_blocks(pool_id, address))

    async def start(host: SimHost, started: float, errors: Counter[str]) -> None:
        await host.open()
        pools[host.name] = await host.pool(GROWTH_SUBNET, GROWTH_BLOCK)
        await allocate(host, 1, errors)
        firsts[host.name] = time.perf_counter() - started

    try:
        say("start: every host loads and asks for one address")
        async with PhaseMeter(hosts, etcd_pids) as starting:
            began = time.perf_counter()
            await asyncio.gather(*(start(h, began, starting.errors) for h in hosts))
        say(f"started: {starting.numbers}")

        say(f"fill: {per_host - 1} more addresses each")
        async with PhaseMeter(hosts, etcd_pids) as filling:
            await asyncio.gather(*(allocate(h, per_host, filling.errors) for h in hosts))
        say(f"filled: {filling.numbers}")
        allocations = ledger.granted
        blocks_held = sum(len(h.blocks()) for h in hosts)
        by_call = Traffic.of(h.stats for h in hosts).requests

        say("one sweep per host")
        async with PhaseMeter(hosts, etcd_pids) as sweeping:
            swept = await asyncio.gather(*(h.mode.sweep() for h in hosts), return_exceptions=True)
            for result in swept:
                if isinstance(result, Exception):
                    sweeping.errors[classify(result)] += 1
        say(f"swept: {sweeping.numbers}")

        exhausted = None
        if exhaust:
            say("exhaustion")
            exhausted = await exhaust_run(hosts, ledger, reader, layout)
            say(f"exhausted: {exhausted}")

        listing = await list_blocks(reader, layout)
        nodes = await reader.range(layout.nodes_prefix, prefix_end(layout.nodes_prefix))
        everything = await reader.range(layout.root, prefix_end(layout.root))
        status = etcd_status(etcd)
        keepalive = [
            (c.sent + c.received) / max(1, sum(c.outcomes.values()))
            for h in hosts
            for call, c in h.stats.calls.items()
            if call == "lease/keepalive"
        ]
    finally:
        say("closing")
        await asyncio.gather(*(h.close() for h in hosts), return_exceptions=True)
        await reader.close()
    assert starting.numbers is not None
    assert filling.numbers is not None
    assert sweeping.numbers is not None
    return ScaleResult(
        hosts=count,
        first_all_seconds=max(firsts.values(), default=math.nan),
        first_p50_seconds=percentile(list(firsts.values()), 50),
        start=starting.numbers,
        fill=filling.numbers,
        sweep=sweeping.numbers,
        allocations=allocations,
        blocks_held=blocks_held,
        requests_by_call={k: v / count for k, v in sorted(by_call.items())},
        keepalive_bytes=percentile(keepalive, 50),
        block_keys=sum(1 for c in listing if c.scope.lan == "default"),
        node_keys=len(nodes),
        keys_total=len(everything),
        etcd_db_mib=float(str(status.get("dbSize", 0))) / 2**20,
        wall_seconds=time.perf_counter() - wall,
        violations=ledger.violations + overlaps(listing),
        exhaust=exhausted,
    )


async def exhaust_run(
    hosts: list[SimHost], ledger: Ledger, reader: EtcdClient, layout: Layout
) -> ExhaustResult:
    """Step 3 of the module's docstring."""
    subnet = exhaust_subnet(len(hosts))
    span = parse_subnet(subnet)
    blocks = 1 << (EXHAUST_BLOCK - span.prefixlen)
    pools = {h.name: await h.pool(subnet, EXHAUST_BLOCK, lan=EXHAUST_LAN) for h in hosts}
    errors: Counter[str] = Counter()
    final: dict[str, str] = {}
    granted = 0
    claims_before = {h.name: len(h.claims) for h in hosts}
    traffic_before = Traffic.of(h.stats for h in hosts)
    conflicts_before = sum(h.conflicts for h in hosts)
    clear = f"no free /{EXHAUST_BLOCK} block is left in {subnet}"

    async def fill(host: SimHost) -> None:
        nonlocal granted
        failures = 0
        while True:
            try:
                address = await host.allocate(pools[host.name])
            except NoAvailableAddresses as exc:
                if clear in str(exc):
                    final[host.name] = str(exc)
                    return
                errors[classify(exc)] += 1
            except IpamError as exc:
                errors[classify(exc)] += 1
            else:
                granted += 1
                failures = 0
                pool_id = pools[host.name]
                inside = host.inside_blocks(pool_id, address)
                ledger.hold(host.name, address, lan=EXHAUST_LAN, inside=inside)
                continue
            failures += 1
            if failures >= MAX_FAILURES:
                return
            await asyncio.sleep(RETRY_PAUSE)

    started = time.perf_counter()
    await asyncio.gather(*(fill(h) for h in hosts))
    seconds = time.perf_counter() - started
    traffic = Traffic.of(h.stats for h in hosts).minus(traffic_before)
    in_memory: Counter[Subnet] = Counter(
        b
        for h in hosts
        for scope, blocks in h.mode.all_blocks().items()
        if scope.lan == EXHAUST_LAN
        for b in blocks
    )
    in_etcd = {c.block for c in await list_blocks(reader, layout) if c.scope.lan == EXHAUST_LAN}
    claims = [c for h in hosts for c in h.claims[claims_before[h.name] :] if c.outcome == "claimed"]
    return ExhaustResult(
        subnet=subnet,
        blocks=blocks,
        capacity=span.size - 2,
        granted=granted,
        seconds=seconds,
        claims=len(claims),
        conflicts_per_claim=(sum(h.conflicts for h in hosts) - conflicts_before)
        / max(1, len(claims)),
        kib_per_host=(traffic.sent + traffic.received) / 1024 / len(hosts),
        hosts_refused_clearly=len(final),
        errors=dict(errors),
        blocks_claimed=len(in_etcd),
        blocks_free=blocks - len(in_etcd),
        blocks_twice=sum(1 for n in in_memory.values() if n > 1),
        blocks_lost=len(in_etcd - set(in_memory)),
        example=next(iter(final.values()), ""),
    )


# ------------------------------------------------------------------------ main


def print_scale(results: list[ScaleResult]) -> None:
    rows = []
    for r in results:
        for name, phase in (("start", r.start), ("fill", r.fill), ("one sweep", r.sweep)):
            rows.append({"hosts": r.hosts, "step": name, **asdict(phase)})
    print(
        "## Steps: every host starts and asks for one address; then the others; then one "
        "sweep each (all hosts at once in every step)\n"
    )
    print(
        table(
            rows,
            [
                ("hosts", "hosts", num),
                ("step", "step", plain),
                ("seconds", "seconds", dec),
                ("claims", "claims", num),
                ("claim_p50_ms", "claim p50 (ms)", dec),
                ("claim_p99_ms", "claim p99 (ms)", dec),
                ("conflicts_per_claim", "lost races per claim", dec),
                ("failed", "failed requests", num),
                ("requests_per_host", "etcd requests per host", dec),
                ("kib_per_host", "KiB per host", dec),
                ("cpu_hosts", "CPU hosts (s)", dec),
                ("cpu_etcd", "CPU etcd (s)", dec),
                ("loop_lag_p99_ms", "loop lag p99 (ms)", dec),
            ],
        )
    )
    print("\n## Summary\n")
    print(
        table(
            [asdict(r) for r in results],
            [
                ("hosts", "hosts", num),
                ("first_all_seconds", "every host has an address (s)", dec),
                ("first_p50_seconds", "half of them (s)", dec),
                ("allocations", "addresses", num),
                ("blocks_held", "blocks", num),
                ("block_keys", "block keys", num),
                ("keys_total", "keys in all", num),
                ("etcd_db_mib", "etcd db (MiB)", dec),
                ("keepalive_bytes", "renewal (bytes)", num),
                ("wall_seconds", "wall (s)", dec),
            ],
        )
    )
    exhausted = [{"hosts": r.hosts, **asdict(r.exhaust)} for r in results if r.exhaust is not None]
    if exhausted:
        print("\n## Exhaustion: /28 blocks, fewer than the hosts want\n")
        print(
            table(
                exhausted,
                [
                    ("hosts", "hosts", num),
                    ("subnet", "subnet", plain),
                    ("blocks", "blocks", num),
                    ("capacity", "addresses", num),
                    ("granted", "granted", num),
                    ("seconds", "seconds", dec),
                    ("conflicts_per_claim", "lost races per claim", dec),
                    ("kib_per_host", "KiB per host", dec),
                    ("hosts_refused_clearly", "hosts told 'no free block left'", num),
                    ("blocks_free", "blocks left free", num),
                    ("blocks_twice", "blocks held twice", num),
                    ("blocks_lost", "blocks lost", num),
                ],
            )
        )
    for r in results:
        phases = {"start": r.start.errors, "fill": r.fill.errors, "sweep": r.sweep.errors}
        if r.exhaust is not None:
            phases["exhaustion"] = r.exhaust.errors
        failed = {k: v for k, v in phases.items() if v}
        if failed:
            print(f"\nfailed requests, {r.hosts} hosts: {failed}")
        if r.violations:
            print(f"\nVIOLATIONS, {r.hosts} hosts: {r.violations[:10]}")


def require_etcd() -> str:
    path = shutil.which("etcd")
    if path is None:
        raise SystemExit("this benchmark needs the command 'etcd' (apt-get install etcd-server)")
    return path


async def run_all(etcd: EtcdCluster, sizes: list[int], args: argparse.Namespace) -> int:
    results: dict[str, object] = {}
    scale: list[ScaleResult] = []
    with host_root() as root:
        for size in sizes:
            scale.append(await scale_run(etcd, size, root, per_host=args.per_host))
            results["scale"] = scale
            if args.json:
                args.json.write_text(json.dumps(jsonable(results), indent=2))
        print_scale(scale)
        bad = any(r.violations for r in scale)
        if not args.no_faults:
            if args.quick:
                faults = await fault_run(
                    etcd, root, hosts=30, victims=5, phase_seconds=4.0, down_seconds=2.0
                )
            else:
                faults = await fault_run(etcd, root)
            results["faults"] = faults
            print_faults(faults)
            bad = bad or bool(faults.violations)
    if args.json:
        args.json.write_text(json.dumps(jsonable(results), indent=2))
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--hosts", help="comma-separated host counts (default 10,100,500)")
    parser.add_argument(
        "--quick", action="store_true", help="10 and 100 hosts, and a 30-host fault run"
    )
    parser.add_argument("--per-host", type=int, default=70, help="addresses per host")
    parser.add_argument("--no-faults", action="store_true", help="skip the 100-host fault run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    hosts = args.hosts or ("10,100" if args.quick else "10,100,500")
    sizes = [int(x) for x in hosts.split(",") if x.strip()]
    with tempfile.TemporaryDirectory(prefix="pymacvlan-bench-etcd-") as tmp:
        etcd = EtcdCluster(require_etcd(), Path(tmp))
        try:
            etcd.start()
            return asyncio.run(run_all(etcd, sizes, args))
        finally:
            etcd.destroy()


def jsonable(value: object) -> object:
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)  # type: ignore[call-overload]
    return value


if __name__ == "__main__":
    sys.exit(main())
