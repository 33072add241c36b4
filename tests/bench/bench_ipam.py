"""IPAM benchmarks: allocation rate, memory and start-up time as pools and allocations grow.

    .venv/bin/python -m tests.bench.bench_ipam            # full run (a few minutes)
    .venv/bin/python -m tests.bench.bench_ipam --quick    # 10k cases only
    .venv/bin/python -m tests.bench.bench_ipam --json out.json

Three parts, each printed as a Markdown table for `docs/performance.md`:

1. Allocator only (memory, no store): fill a pool to N live allocations, then churn (release a
   random live address, allocate one; quarantine on, so the table fragments the way a busy host's
   does; the churn runs 1000 simulated seconds, so quarantine expires and free addresses end up
   scattered). Rates are measured without tracemalloc; memory in a separate traced run.
2. Service with SQLite (WAL, synchronous=FULL, one fsync per answer): N allocations preloaded in
   one transaction, then allocations through `IpamService.request_address`, one at a time and
   100 concurrent.
3. Start-up: `IpamService.load()` of N stored allocations (time and traced peak memory).

Pools: 192.0.2.0/24, 198.18.0.0/16, 198.18.0.0/15, 10.0.0.0/8 (numbers only, never on a link)
and 2001:db8::/64.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import tracemalloc
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from driver.store import open_store
from ipam.addresses import format_address
from ipam.allocator import Allocator, record_for_spec
from ipam.defaults import builtin_default_pools
from ipam.hostranges import StaticPlan
from ipam.options import PoolSpec, build_pool_spec, parse_pool_request
from ipam.records import AllocationRecord, Change, CursorRecord, Kind
from ipam.requests import AddressRequest
from ipam.service import IpamService, IpamSettings
from ipam.sqlite_store import SqliteStore
from plugin.state_files import StateFiles
from tests.bench.report import dec, num, plain, table

NODE = "bench"
DYNAMIC = AddressRequest(None, None, Kind.DYNAMIC, "c", None)


def pool_spec(subnet: str) -> PoolSpec:
    request = parse_pool_request(
        address_space="local", pool=subnet, sub_pool="", options={}, v6=":" in subnet
    )
    assert request.subnet is not None
    return build_pool_spec(request, request.subnet)


# ------------------------------------------------------------------ allocator


@dataclass
class AllocatorResult:
    pool: str
    live: int
    fill_per_s: float
    churn_per_s: float
    state_mib: float
    peak_mib: float
    runs: int  # runs of the unavailable interval set after churn (fragmentation)


class Driver:
    """Plan + apply, exactly what the service does minus the store and the lock."""

    def __init__(self, subnet: str, quarantine: float) -> None:
        self.allocator = Allocator(StaticPlan(NODE), quarantine)
        self.now = 1_000_000.0
        spec = pool_spec(subnet)
        self.pool_id = spec.pool_id
        self.family = spec.subnet.family
        self.allocator.apply(self.allocator.plan_request_pool(spec, self.now))

    def take(self) -> int:
        self.allocator.prune(self.now)
        change, value = self.allocator.plan_request_address(self.pool_id, DYNAMIC, self.now)
        self.allocator.apply(change)
        return value

    def give(self, value: int) -> None:
        self.allocator.prune(self.now)
        change = self.allocator.plan_release_address(self.pool_id, self.family, value, self.now)
        self.allocator.apply(change)


def bench_allocator(subnet: str, live: int, churn: int, seed: int = 1) -> AllocatorResult:
    rng = random.Random(seed)

    def fill_and_churn(d: Driver) -> tuple[float, float]:
        held: list[int] = []
        started = time.perf_counter()
        for _ in range(live):
            held.append(d.take())
        fill = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(churn):
            i = rng.randrange(len(held))
            held[i], held[-1] = held[-1], held[i]
            d.give(held.pop())
            # 20 releases a second: after 300 s the first releases leave quarantine, so freed
            # addresses scatter over the pool the way they do on a long-running busy host.
            d.now += 0.05
            held.append(d.take())
        return fill, time.perf_counter() - started

    timed = Driver(subnet, quarantine=300)
    fill, churned = fill_and_churn(timed)
    runs = timed.allocator.leases[timed.pool_id].table.unavailable.run_count

    tracemalloc.start()
    traced = Driver(subnet, quarantine=300)
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(live):
        traced.take()
    state = tracemalloc.get_traced_memory()[0] - base
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return AllocatorResult(
        pool=subnet,
        live=live,
        fill_per_s=live / fill,
        churn_per_s=churn / churned if churn else 0.0,
        state_mib=state / 2**20,
        peak_mib=peak / 2**20,
        runs=runs,
    )


# -------------------------------------------------------------------- service


@dataclass
class ServiceResult:
    pool: str
    live: int
    load_s: float
    load_peak_mib: float
    sequential_per_s: float
    sequential_p99_ms: float
    concurrent_per_s: float


def preload(state_dir: Path, subnet: str, live: int) -> str:
    """Store `live` allocations (the first usable addresses) in one transaction."""
    spec = pool_spec(subnet)
    lease = record_for_spec(spec, 0.0)
    first = spec.subnet.usable_span().first
    rows = tuple(
        AllocationRecord(
            spec.table_key,
            format_address(spec.subnet.family, first + n),
            spec.pool_id,
            Kind.DYNAMIC,
            1,
            None,
            f"c{n}",
            0.0,
        )
        for n in range(live)
    )
    cursor = (CursorRecord(spec.pool_id, rows[-1].address),) if rows else ()
    # A state directory as a daemon leaves it: both files, carrying one state ID (a lone
    # ipam.sqlite3 with allocations is refused at start-up as lost state).
    files = StateFiles(state_id=uuid.uuid4().hex)
    store = SqliteStore(state_dir / SqliteStore.FILE_NAME, files)
    store.load()
    store.commit(Change(put_leases=(lease,), put_allocations=rows, put_cursors=cursor))
    store.close()
    driver_store = open_store(state_dir, files)
    driver_store.load()
    driver_store.close()
    return spec.pool_id


def settings() -> IpamSettings:
    return IpamSettings(NODE, builtin_default_pools(NODE), 300.0)


async def bench_service(subnet: str, live: int, requests: int) -> ServiceResult:
    with tempfile.TemporaryDirectory(prefix="pymacvlan-bench-") as tmp:
        state_dir = Path(tmp)
        pool_id = preload(state_dir, subnet, live)

        service = IpamService.open_sqlite(state_dir, settings(), files=StateFiles())
        started = time.perf_counter()
        await service.load()
        load_s = time.perf_counter() - started
        try:
            latencies = []
            for n in range(requests):
                t0 = time.perf_counter()
                await service.request_address(
                    pool_id=pool_id,
                    address="",
                    options={"com.docker.network.endpoint.name": f"s{n}"},
                )
                latencies.append(time.perf_counter() - t0)
            sequential = requests / sum(latencies)
            p99 = statistics.quantiles(latencies, n=100)[98] if requests >= 100 else max(latencies)

            async def one(n: int) -> None:
                await service.request_address(
                    pool_id=pool_id,
                    address="",
                    options={"com.docker.network.endpoint.name": f"p{n}"},
                )

            started = time.perf_counter()
            for batch in range(0, requests, 100):
                await asyncio.gather(*(one(n) for n in range(batch, min(batch + 100, requests))))
            concurrent = requests / (time.perf_counter() - started)
        finally:
            await service.close()

        # Peak memory of a start-up, in a separate traced run (tracing slows the load).
        tracemalloc.start()
        traced = IpamService.open_sqlite(state_dir, settings(), files=StateFiles())
        await traced.load()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        await traced.close()
    return ServiceResult(
        pool=subnet,
        live=live,
        load_s=load_s,
        load_peak_mib=peak / 2**20,
        sequential_per_s=sequential,
        sequential_p99_ms=p99 * 1000,
        concurrent_per_s=concurrent,
    )


# ----------------------------------------------------------------------- main


ALLOCATOR_CASES = [
    ("192.0.2.0/24", 253),
    ("198.18.0.0/16", 10_000),
    ("10.0.0.0/8", 10_000),
    ("10.0.0.0/8", 100_000),
    ("2001:db8::/64", 10_000),
    ("2001:db8::/64", 100_000),
]
SERVICE_CASES = [
    ("192.0.2.0/24", 100),
    ("198.18.0.0/16", 10_000),
    ("198.18.0.0/15", 100_000),
    ("2001:db8::/64", 10_000),
    ("2001:db8::/64", 100_000),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="only the cases up to 10k")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    limit = 10_000 if args.quick else None

    allocator_rows = [
        asdict(bench_allocator(subnet, live, churn=min(live, 20_000)))
        for subnet, live in ALLOCATOR_CASES
        if limit is None or live <= limit
    ]
    print("## Allocator only (in memory)\n")
    print(
        table(
            allocator_rows,
            [
                ("pool", "pool", plain),
                ("live", "live allocations", num),
                ("fill_per_s", "fill (allocs/s)", num),
                ("churn_per_s", "churn at N live (release+alloc/s)", num),
                ("runs", "runs after churn", num),
                ("state_mib", "state (MiB)", dec),
                ("peak_mib", "peak (MiB)", dec),
            ],
        )
    )

    service_rows = [
        asdict(asyncio.run(bench_service(subnet, live, requests=2_000 if live > 1_000 else 50)))
        for subnet, live in SERVICE_CASES
        if limit is None or live <= limit
    ]
    print("\n## Service with SQLite (one fsync'd transaction per answer)\n")
    print(
        table(
            service_rows,
            [
                ("pool", "pool", plain),
                ("live", "live allocations", num),
                ("sequential_per_s", "allocs/s (one at a time)", num),
                ("sequential_p99_ms", "p99 latency (ms)", dec),
                ("concurrent_per_s", "allocs/s (100 concurrent)", num),
                ("load_s", "start-up load (s)", dec),
                ("load_peak_mib", "load peak (MiB)", dec),
            ],
        )
    )
    if args.json:
        args.json.write_text(
            json.dumps({"allocator": allocator_rows, "service": service_rows}, indent=2)
        )


if __name__ == "__main__":
    main()
