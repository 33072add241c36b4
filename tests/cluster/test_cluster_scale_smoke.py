"""The scale benchmark and the fault run, at tiny sizes, with their invariants asserted.

The real runs: `python -m tests.bench.bench_cluster_scale` (N = 10, 100, 500 and the 100-host
fault run; numbers in docs/performance.md). Here: six simulated hosts (the daemon's own IPAM and
cluster-mode code, each with its own state directory, node name and etcd client) on the real
3-member etcd, so that the harness cannot rot and the rules it checks are held in every run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bench.bench_cluster_scale import host_root, scale_run
from tests.bench.cluster_faults import fault_run
from tests.cluster.etcd_cluster import EtcdCluster


@pytest.fixture
def root() -> Iterator[Path]:
    with host_root() as path:
        yield path


async def test_hosts_booting_at_once_and_a_subnet_that_runs_out(
    etcd: EtcdCluster, root: Path
) -> None:
    result = await scale_run(etcd, 6, root, per_host=70, log=False)
    assert result.violations == []
    for step in (result.start, result.fill, result.sweep):
        assert step.failed == 0, step.errors
        assert step.requests_per_host > 0
        assert step.kib_per_host > 0
    assert result.allocations == 6 * 70
    # Every host claimed a block for its first address and another one for its 65th.
    assert result.start.claims == result.fill.claims == 6
    assert result.blocks_held == result.block_keys == 12
    assert result.node_keys == 6  # every host registered
    assert result.first_all_seconds > 0
    exhausted = result.exhaust
    assert exhausted is not None
    # Every host is told, in words, that the subnet has no block left; nothing is lost.
    assert exhausted.hosts_refused_clearly == 6, exhausted.errors
    assert "no available addresses on this pool: 198.19.0.0/25" in exhausted.example
    assert "no free /28 block is left in 198.19.0.0/25" in exhausted.example
    assert "remove containers, or give back the blocks of a host that is gone" in exhausted.example
    assert exhausted.granted == exhausted.capacity == 126
    assert exhausted.blocks_claimed == exhausted.blocks == 8
    assert (exhausted.blocks_free, exhausted.blocks_twice, exhausted.blocks_lost) == (0, 0, 0)
    # Keys in etcd: per block its key and its owner-index key, per running host its registration.
    assert result.keys_total == 2 * (result.block_keys + exhausted.blocks) + 6


async def test_members_restarted_and_hosts_killed_while_hosts_allocate(
    own_etcd: EtcdCluster, root: Path
) -> None:
    result = await fault_run(
        own_etcd,
        root,
        hosts=6,
        victims=2,
        block_size=28,  # small blocks: claims during every phase
        boot=5,
        interval=0.2,
        keep=5,
        phase_seconds=1.5,
        down_seconds=1.0,
        node_ttl=2,
        log=False,
    )
    assert result.violations == []
    assert [p.name for p in result.phases] == [
        "boot",
        "steady",
        "follower down",
        "follower back",
        "leader down",
        "leader back",
        "quorum lost",
        "quorum back",
        "hosts killed",
        "after reclaim",
    ]
    for phase in result.phases:
        # A request fails only when it needs a block and etcd cannot be reached, and says so.
        assert set(phase.errors) <= {"etcd unreachable or too slow"}, phase
        if phase.name != "quorum lost":
            # Every survivor kept getting addresses; with no quorum, those whose blocks are
            # full get the resting address released longest ago, or that error.
            assert phase.hosts_allocating == 4, phase
    lost = next(p for p in result.phases if p.name == "quorum lost")
    assert lost.allocations > 0
    assert sum(p.claims for p in result.phases[1:]) > 0  # claims happened during the faults
    assert result.leader != result.follower
    # Reclaim is refused while a killed host's registration lives, then frees all its blocks.
    assert 'node "gone000" is running' in result.refused
    assert result.victim_blocks > 0
    assert result.reclaimed_blocks >= result.victim_blocks
    assert result.victim_addresses >= 2 * 5
    assert result.audits > 5
    assert result.final_allocations > 0
