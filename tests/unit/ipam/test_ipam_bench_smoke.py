"""The IPAM benchmark still runs, at tiny sizes (real run: python -m tests.bench.bench_ipam)."""

from __future__ import annotations

from tests.bench.bench_ipam import bench_allocator, bench_service


def test_allocator_benchmark_runs() -> None:
    result = bench_allocator("2001:db8::/64", live=200, churn=200)
    assert result.live == 200
    assert result.fill_per_s > 0
    assert result.state_mib > 0


async def test_service_benchmark_runs() -> None:
    result = await bench_service("192.0.2.0/24", live=20, requests=10)
    assert result.sequential_per_s > 0
    assert result.concurrent_per_s > 0
