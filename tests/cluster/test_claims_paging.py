"""What a claim and a sweep read from etcd: a page of the LAN from the host's own place, and the
host's own blocks, whatever the number of blocks (and so of hosts) in the LAN.

Against `MemoryKV` (etcd's semantics, no server) that counts the keys each read returns. Before,
every claim and every sweep read the whole LAN, so that hosts booting together cost etcd a number
of bytes that grows with the square of their number (docs/performance.md, "Cluster mode at
scale"). The other rules of the claim (atomic, adopt before claiming, never two owners) are in
test_claims_unit.py and, against a real etcd, test_service_etcd.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipam.addresses import Family, Subnet, parse_subnet
from ipam.cluster.blocks import block_count, free_blocks, start_index, taken_set
from ipam.cluster.claims import SEARCH_PAGE, BlockClaims, list_blocks, reclaim_blocks
from ipam.cluster.config import ClusterConfig
from ipam.cluster.kv import Entry, MemoryKV
from ipam.cluster.layout import BlockOwner, Layout, Scope
from ipam.cluster.mode import ClusterMode
from ipam.errors import NoAvailableAddresses
from ipam.service import IpamService
from plugin.state_files import StateFiles
from tests.unit.ipam.helpers import make_settings

V4 = Scope("local", "default", Family.V4)
LAYOUT = Layout("/pymacvlan")
SPAN = parse_subnet("198.18.0.0/15")  # 2,048 blocks of /26


class CountingKV(MemoryKV):
    """`MemoryKV` that counts the keys its range reads return."""

    def __init__(self) -> None:
        super().__init__()
        self.keys_read = 0
        self.reads = 0

    async def range(
        self, key: str, range_end: str = "", *, limit: int = 0, descending: bool = False
    ) -> list[Entry]:
        found = await super().range(key, range_end, limit=limit, descending=descending)
        self.keys_read += len(found)
        self.reads += 1
        return found


def fill(kv: MemoryKV, count: int) -> None:
    """`count` blocks of other hosts, every other /26 of the span, so that free blocks are
    everywhere (a LAN shared by `count` hosts)."""
    for i in range(count):
        block = Subnet(Family.V4, SPAN.first + 2 * i * 64, 26)
        owner = BlockOwner(f"other{i}", f"other{i}-i", str(SPAN), 1000.0)
        kv.put_raw(LAYOUT.block_key(V4, block), owner.encode())


@pytest.mark.parametrize("others", [10, 1000])
async def test_a_claim_reads_one_page_of_the_lan_not_all_of_it(others: int) -> None:
    kv = CountingKV()
    fill(kv, others)
    one = BlockClaims(kv, LAYOUT, "node1", "node1-i", clock=lambda: 1000.0)
    result = await one.find_and_claim(V4, SPAN, 26, pool=str(SPAN), known=(), usable=lambda _: True)
    assert result.block is not None
    assert not result.adopted
    assert kv.keys_read <= SEARCH_PAGE, f"{kv.keys_read} keys read for one claim"


async def test_a_full_span_is_read_whole_and_reported_with_every_holder() -> None:
    kv = CountingKV()
    span = parse_subnet("198.18.0.0/20")  # 64 blocks: two full pages and more
    one = BlockClaims(kv, LAYOUT, "node1", "node1-i", clock=lambda: 1000.0)
    two = BlockClaims(kv, LAYOUT, "node2", "node2-i", clock=lambda: 1000.0)
    mine: set[Subnet] = set()
    for claimer in (one, two) * 32:
        got = await claimer.find_and_claim(
            V4, span, 26, pool=str(span), known=mine, usable=lambda _: True, adopt=False
        )
        assert got.block is not None
        mine.add(got.block.block)
    nothing = await one.find_and_claim(
        V4, span, 26, pool=str(span), known=mine, usable=lambda _: True, adopt=False
    )
    assert nothing.block is None
    assert len(nothing.listing) == 64  # the message counts every holder's blocks
    assert {c.owner.node for c in nothing.listing} == {"node1", "node2"}


async def test_a_full_span_takes_a_few_round_trips_not_one_per_page() -> None:
    kv = CountingKV()
    fill(kv, 1024)  # every other block of the /15: the other half is not "usable" below
    one = BlockClaims(kv, LAYOUT, "node1", "node1-i", clock=lambda: 1000.0)
    nothing = await one.find_and_claim(
        V4, SPAN, 26, pool=str(SPAN), known=(), usable=lambda _: False, adopt=False
    )
    assert nothing.block is None
    assert len(nothing.listing) == 1024
    # Pages of 32, 256, 2,048 keys: 1,024 keys in 3 reads (32 pages of 32 before).
    assert kv.reads <= 4, f"{kv.reads} reads to look through a full span"


async def test_a_larger_block_before_the_first_page_is_seen_after_one_lost_claim() -> None:
    kv = MemoryKV()
    span = parse_subnet("198.18.0.0/24")
    one = BlockClaims(kv, LAYOUT, "node1", "node1-i", clock=lambda: 1000.0)
    assert start_index("node1", 16) == 9  # node1 starts at 198.18.0.144/28 ...
    other = BlockClaims(kv, LAYOUT, "node2", "node2-i", clock=lambda: 1000.0)
    big = parse_subnet("198.18.0.128/25")  # ... inside another pool's /25, whose key is before
    assert await other.claim(V4, big, "198.18.0.128/25") is not None
    got = await one.find_and_claim(
        V4, span, 28, pool=str(span), known=(), usable=lambda _: True, adopt=False
    )
    assert got.block is not None
    assert str(got.block.block) == "198.18.0.0/28"  # wrapped around, past the /25
    assert kv.txns == 3  # the /25, node1's claim that lost to it once, node1's claim


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[IpamService, ClusterMode, CountingKV]]:
    kv = CountingKV()
    config = ClusterConfig(endpoints=("http://127.0.0.1:2379",), sweep_seconds=3600.0)
    mode = ClusterMode(config, "node1", tmp_path, files=StateFiles(), kv=kv)
    service = IpamService.open_sqlite(
        tmp_path, make_settings("node1", 0.0), cluster=mode, files=StateFiles()
    )
    await service.load()
    try:
        yield service, mode, kv
    finally:
        await service.close()


async def test_a_sweep_reads_this_hosts_blocks_not_the_lan(
    node: tuple[IpamService, ClusterMode, CountingKV],
) -> None:
    service, mode, kv = node
    fill(kv, 1000)
    grant = await service.request_pool(
        address_space="local", pool=str(SPAN), sub_pool="", options={"probe": "off"}, v6=False
    )
    for _ in range(130):  # three /26 blocks
        await service.request_address(pool_id=grant.pool_id, address="", options={})
    (blocks,) = mode.all_blocks().values()
    assert len(blocks) == 3
    kv.keys_read = 0
    await mode.sweep()
    # Its owner index (3 keys) and the keys inside its own blocks (3): not the 1,003 blocks.
    assert kv.keys_read <= 2 * len(blocks), f"{kv.keys_read} keys read by one sweep"
    assert mode.all_blocks() == {V4: blocks}


async def test_a_sweep_adopts_a_block_etcd_has_and_the_cache_lacks_and_drops_stale_index_keys(
    node: tuple[IpamService, ClusterMode, CountingKV],
) -> None:
    _, mode, kv = node
    # A crash between the etcd write of a claim and the cache write: etcd has it, the host not.
    own = BlockClaims(kv, LAYOUT, "node1", mode.instance)  # claimed now: within the grace
    lost_answer = parse_subnet("198.18.1.0/26")
    assert await own.claim(V4, lost_answer, str(SPAN)) is not None
    # An older pymacvlan's reclaim deleted a block key but not its index key.
    stale = parse_subnet("198.18.2.0/26")
    assert await own.claim(V4, stale, str(SPAN)) is not None
    (claimed,) = [c for c in await list_blocks(kv, LAYOUT) if c.block == stale]
    assert await reclaim_blocks(kv, LAYOUT, [claimed]) == 1
    kv.put_raw(LAYOUT.owner_key(mode.instance, V4, stale), b"")
    await mode.sweep()
    assert mode.all_blocks() == {V4: [lost_answer]}
    assert [i.block for i in await own.list_mine()] == [lost_answer]


async def test_a_full_subnet_of_hundreds_of_hosts_is_told_in_a_short_message(
    node: tuple[IpamService, ClusterMode, CountingKV],
) -> None:
    service, _, kv = node
    span = parse_subnet("198.18.0.0/22")  # 64 blocks of /28
    for i in range(63):  # 63 other hosts hold one block each, one of them two
        block = Subnet(Family.V4, span.first + i * 16, 28)
        owner = BlockOwner("other07" if i == 63 - 1 else f"other{i:02d}", f"i{i}", str(span), 1.0)
        kv.put_raw(LAYOUT.block_key(V4, block), owner.encode())
    grant = await service.request_pool(
        address_space="local",
        pool=str(span),
        sub_pool="",
        options={"block_size": "28", "probe": "off"},
        v6=False,
    )
    for _ in range(15):  # the last block: 15 addresses (the subnet's broadcast is not one)
        await service.request_address(pool_id=grant.pool_id, address="", options={})
    with pytest.raises(NoAvailableAddresses) as caught:
        await service.request_address(pool_id=grant.pool_id, address="", options={})
    message = str(caught.value)
    assert "no free /28 block is left in 198.18.0.0/22 (64 blocks claimed: other07 2, " in message
    assert "and 55 more nodes; `pymacvlan cluster status` lists them" in message
    assert len(message) < 600, message  # not a line per host of the LAN


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 255), st.sampled_from([24, 26, 27, 28])), max_size=150),
    st.text(alphabet="abcdefgh0123456789", min_size=1, max_size=8),
    st.sampled_from([27, 28]),
)
def test_a_paged_search_claims_the_block_a_whole_read_would_have_chosen(
    claimed: list[tuple[int, int]], node: str, prefixlen: int
) -> None:
    span = parse_subnet("198.18.0.0/20")  # 256 slots of /28: several pages
    kv = MemoryKV()
    blocks: list[Subnet] = []
    for slot, length in claimed:  # other hosts' blocks of mixed sizes, never overlapping
        size = 1 << (32 - length)
        block = Subnet(Family.V4, (span.first + slot * 16) // size * size, length)
        if not any(block.overlaps(b) for b in blocks):
            blocks.append(block)
            owner = BlockOwner("other", "other-i", str(span), 1.0)
            kv.put_raw(LAYOUT.block_key(V4, block), owner.encode())
    start = start_index(node, block_count(span, prefixlen))
    expected = next(free_blocks(span, prefixlen, taken_set(blocks), start), None)
    one = BlockClaims(kv, LAYOUT, node, "node-i", clock=lambda: 1000.0)
    got = asyncio.run(
        one.find_and_claim(
            V4, span, prefixlen, pool=str(span), known=(), usable=lambda _: True, adopt=False
        )
    )
    assert (got.block.block if got.block is not None else None) == expected
