"""Cluster-mode benchmarks: what etcd costs an allocation, and what a block claim costs.

    .venv/bin/python -m tests.bench.bench_cluster            # about 15 s
    .venv/bin/python -m tests.bench.bench_cluster --quick    # fewer requests
    .venv/bin/python -m tests.bench.bench_cluster --json out.json

Needs Debian's etcd-server (`/usr/bin/etcd`): the benchmark starts its own 3-member etcd cluster
on loopback ports in a temporary directory and stops it (by pid) at the end.

Two parts, printed as Markdown tables for `docs/performance.md`:

1. Allocation inside a block this host holds already, local mode against cluster mode:
   `IpamService.request_address` one at a time, SQLite in WAL mode with `synchronous=FULL` (one
   fsync per answer), pool 198.18.0.0/16 with `block_size=20`, so that after one warm-up request
   every timed request falls in the block claimed then. A local-mode and a cluster-mode service
   run side by side and take turns, one request each, so that both see the same moments of the
   machine's load. The target: cluster within 1.2x of local (the allocation path is the same
   code; etcd is not on it).
2. Block claims: the same service with `block_size=28` (16 addresses), so every 16th request
   claims a block in etcd first. The latency of the requests that claimed is compared with those
   that did not; the raw round trip of one etcd transaction through the JSON gateway is shown
   for reference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ipam.cluster.config import ClusterConfig
from ipam.cluster.etcd import EtcdClient
from ipam.cluster.kv import Absent, Delete, Put
from ipam.cluster.mode import ClusterMode
from ipam.defaults import builtin_default_pools
from ipam.service import IpamService, IpamSettings
from plugin.state_files import StateFiles
from tests.bench.report import dec, num, plain, table
from tests.cluster.etcd_cluster import EtcdCluster

NODE = "bench"
POOL = "198.18.0.0/16"


def settings() -> IpamSettings:
    return IpamSettings(NODE, builtin_default_pools(NODE), 300.0)


def summary(latencies: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in latencies)
    p99 = statistics.quantiles(ms, n=100)[98] if len(ms) >= 100 else ms[-1]
    return {"mean": statistics.fmean(ms), "p50": statistics.median(ms), "p99": p99}


async def open_service(state_dir: Path, etcd: EtcdCluster | None, prefix: str) -> IpamService:
    cluster = None
    if etcd is not None:
        config = ClusterConfig.parse(etcd.endpoints, prefix=prefix, sweep_seconds=3600)
        assert config is not None
        cluster = ClusterMode(config, NODE, state_dir, files=StateFiles())
    service = IpamService.open_sqlite(state_dir, settings(), cluster=cluster, files=StateFiles())
    await service.load()
    return service


async def timed_requests(service: IpamService, pool_id: str, count: int) -> list[float]:
    latencies = []
    for n in range(count):
        started = time.perf_counter()
        await service.request_address(
            pool_id=pool_id, address="", options={"com.docker.network.endpoint.name": f"c{n}"}
        )
        latencies.append(time.perf_counter() - started)
    return latencies


# --------------------------------------------------------------- inside a block


@dataclass
class InsideResult:
    mode: str
    requests: int
    mean_ms: float
    p50_ms: float
    p99_ms: float
    ratio_mean: float  # this mode's mean over local mode's mean
    ratio_p50: float  # the same for the medians


async def bench_inside_block(etcd: EtcdCluster, requests: int) -> list[InsideResult]:
    with (
        tempfile.TemporaryDirectory(prefix="pymacvlan-bench-") as local_dir,
        tempfile.TemporaryDirectory(prefix="pymacvlan-bench-") as cluster_dir,
    ):
        local = await open_service(Path(local_dir), None, "")
        cluster = await open_service(Path(cluster_dir), etcd, f"/bench-{secrets.token_hex(4)}")
        try:
            pools = []
            for service in (local, cluster):
                grant = await service.request_pool(
                    address_space="local",
                    pool=POOL,
                    sub_pool="",
                    options={"block_size": "20"},
                    v6=False,
                )
                await timed_requests(service, grant.pool_id, 1)  # cluster mode claims here
                pools.append(grant.pool_id)
            # One request each, in turn: both modes see the same moments of the machine's load.
            timings: tuple[list[float], list[float]] = ([], [])
            for _ in range(requests):
                for service, pool_id, out in zip((local, cluster), pools, timings, strict=True):
                    out.extend(await timed_requests(service, pool_id, 1))
        finally:
            await local.close()
            await cluster.close()
    base = summary(timings[0])
    results = []
    for mode, latencies in zip(("local (SQLite only)", "cluster (etcd)"), timings, strict=True):
        s = summary(latencies)
        results.append(
            InsideResult(
                mode,
                len(latencies),
                s["mean"],
                s["p50"],
                s["p99"],
                s["mean"] / base["mean"],
                s["p50"] / base["p50"],
            )
        )
    return results


# ---------------------------------------------------------------------- claims


@dataclass
class ClaimResult:
    what: str
    count: int
    mean_ms: float
    p50_ms: float
    p99_ms: float


async def bench_claims(etcd: EtcdCluster, claims: int) -> list[ClaimResult]:
    with tempfile.TemporaryDirectory(prefix="pymacvlan-bench-") as tmp:
        service = await open_service(Path(tmp), etcd, f"/bench-{secrets.token_hex(4)}")
        try:
            grant = await service.request_pool(
                address_space="local",
                pool=POOL,
                sub_pool="",
                options={"block_size": "28"},
                v6=False,
            )
            mode = service.cluster
            assert isinstance(mode, ClusterMode)
            claimed: list[float] = []
            inside: list[float] = []
            n = 0
            while len(claimed) < claims:
                before = sum(len(b) for b in mode.all_blocks().values())
                started = time.perf_counter()
                await service.request_address(
                    pool_id=grant.pool_id,
                    address="",
                    options={"com.docker.network.endpoint.name": f"c{n}"},
                )
                elapsed = time.perf_counter() - started
                n += 1
                after = sum(len(b) for b in mode.all_blocks().values())
                (claimed if after > before else inside).append(elapsed)
        finally:
            await service.close()

    kv = EtcdClient(etcd.endpoints.split(","), 1.0)
    prefix = f"/bench-raw-{secrets.token_hex(4)}/"
    txns = []
    try:
        for i in range(claims):
            key = f"{prefix}{i}"
            started = time.perf_counter()
            assert await kv.txn([Absent(key)], [Put(key, b"x")])
            txns.append(time.perf_counter() - started)
        for i in range(claims):
            await kv.txn([], [Delete(f"{prefix}{i}")])
    finally:
        await kv.close()

    rows = []
    for what, latencies in (
        ("request that claimed a /28 block", claimed),
        ("request inside a held block", inside),
        ("one etcd transaction (reference)", txns),
    ):
        s = summary(latencies)
        rows.append(ClaimResult(what, len(latencies), s["mean"], s["p50"], s["p99"]))
    return rows


# ------------------------------------------------------------------------ main


async def run(etcd: EtcdCluster, quick: bool) -> dict[str, list[dict[str, object]]]:
    inside = await bench_inside_block(etcd, requests=400 if quick else 2000)
    claims = await bench_claims(etcd, claims=30 if quick else 100)
    return {"inside": [asdict(r) for r in inside], "claims": [asdict(r) for r in claims]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer requests and claims")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    etcd_binary = require_command_or_exit("etcd")
    with tempfile.TemporaryDirectory(prefix="pymacvlan-bench-etcd-") as tmp:
        etcd = EtcdCluster(etcd_binary, Path(tmp))
        try:
            etcd.start()
            results = asyncio.run(run(etcd, args.quick))
        finally:
            etcd.destroy()
    print("## Allocation inside a held block: local mode against cluster mode\n")
    print(
        table(
            results["inside"],
            [
                ("mode", "mode", plain),
                ("requests", "requests", num),
                ("mean_ms", "mean (ms)", dec),
                ("p50_ms", "p50 (ms)", dec),
                ("p99_ms", "p99 (ms)", dec),
                ("ratio_mean", "mean / local mean", dec),
                ("ratio_p50", "p50 / local p50", dec),
            ],
        )
    )
    print("\n## Block claims (3-member etcd on loopback)\n")
    print(
        table(
            results["claims"],
            [
                ("what", "what", plain),
                ("count", "count", num),
                ("mean_ms", "mean (ms)", dec),
                ("p50_ms", "p50 (ms)", dec),
                ("p99_ms", "p99 (ms)", dec),
            ],
        )
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def require_command_or_exit(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"bench_cluster needs the command {name!r} (apt-get install etcd-server)")
    return path


if __name__ == "__main__":
    main()
