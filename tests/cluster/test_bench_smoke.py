"""The cluster benchmark still runs, at tiny sizes.

The real run: `python -m tests.bench.bench_cluster` (numbers in docs/performance.md).
"""

from __future__ import annotations

from tests.bench.bench_cluster import bench_claims, bench_inside_block
from tests.cluster.etcd_cluster import EtcdCluster


async def test_cluster_benchmark_runs(etcd: EtcdCluster) -> None:
    inside = await bench_inside_block(etcd, requests=5)
    assert [r.requests for r in inside] == [5, 5]
    assert inside[0].ratio_mean == 1.0
    claims = await bench_claims(etcd, claims=2)
    assert claims[0].count == 2
    assert claims[0].mean_ms > 0
