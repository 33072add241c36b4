"""The soak in short (tests/bench/bench_soak.py runs 10,000 cycles): container-like cycles on a
real daemon in a namespace, one kill -9 and restart half-way, and what must stay flat.

The RSS bound is what a leak the size of the one fixed in issue 8 (~25 KB per cycle: netlink
acknowledgements nobody read) would exceed several times over within one daemon's lifetime.
"""

from __future__ import annotations

from tests.harness.netns import NetnsLab
from tests.harness.plugind import PluginDaemons
from tests.harness.soak import Sample, Soak

CYCLES = 1_300
CHECKPOINT = 100
KILL_AT = 1_000
WARM_UP = 300  # cycles before the RSS baseline: caches, the WAL and the allocator settle
# A claim watcher, a burst's prefetch (16), the window's probes and sockets still closing on a
# worker thread; a leak of one per probe would pass this within the first hundred cycles.
MAX_PACKET_SOCKETS = 32
MAX_RSS_GROWTH_KIB = 4 * 1024  # over KILL_AT - WARM_UP = 700 cycles; a 25 KB/cycle leak is 17 MB


def _at(samples: list[Sample], cycles: int, restarts: int) -> Sample:
    return next(s for s in samples if s.cycles == cycles and s.restarts == restarts)


def test_container_cycles_with_a_kill_leave_nothing_behind_and_memory_flat(
    netns_lab: NetnsLab, plugin_daemons: PluginDaemons
) -> None:
    soak = Soak(netns_lab, plugin_daemons, window=4)
    result = soak.run(CYCLES, checkpoint_every=CHECKPOINT, kill_every=KILL_AT)

    # No address was handed out twice (Soak raises at once), and every one came back.
    assert result.addresses_handed_out == CYCLES
    assert result.leftover_links == []
    quarantine = result.final_rows.pop("quarantine")
    assert quarantine <= 254  # released addresses rest (and expire); the pool bounds them
    assert result.final_rows == {
        "networks": 0,
        "endpoints": 0,
        "owned_links": 0,
        "leases": 0,
        "allocations": 0,
    }

    for sample in result.samples:  # shown when the test fails
        print(sample.as_json())
    baseline = _at(result.samples, WARM_UP, restarts=0)
    before_kill = _at(result.samples, KILL_AT, restarts=0)
    growth = before_kill.rss_kib - baseline.rss_kib
    assert growth < MAX_RSS_GROWTH_KIB, (
        f"RSS grew {growth} KiB over {KILL_AT - WARM_UP} cycles "
        f"({growth * 1024 // (KILL_AT - WARM_UP)} bytes per cycle)"
    )
    assert before_kill.fds == baseline.fds
    # Packet sockets come and go with probes: bounded, never growing with the cycles.
    assert max(s.packet_sockets for s in result.samples) <= MAX_PACKET_SOCKETS
    assert before_kill.threads == baseline.threads
    steady = [s for s in result.samples if 0 < s.cycles < CYCLES]
    # The window's links (one per live container, in the host namespace here) and no more.
    assert max(s.links for s in steady) <= result.samples[0].links + soak.window + 1
    assert max(s.rows["endpoints"] for s in steady) <= soak.window + 1
    # Released addresses rest in quarantine, which is bounded by the pool, not by the cycles.
    assert max(s.rows["quarantine"] for s in steady) <= 254
