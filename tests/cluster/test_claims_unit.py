"""Unit tests (no etcd) of the claim logic against `MemoryKV`, the in-memory fake of etcd's
semantics: atomic claims never overlap, adoption, guarded release, reclaim, registration."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipam.addresses import Family, Subnet, parse_subnet
from ipam.cluster.admin import read_status, reclaim
from ipam.cluster.claims import BlockClaims, Registration, list_blocks
from ipam.cluster.kv import MemoryKV
from ipam.cluster.layout import BlockOwner, Layout, Scope
from ipam.errors import ClusterUnavailable

V4 = Scope("local", "default", Family.V4)
LAYOUT = Layout("/pymacvlan")
SPAN = parse_subnet("198.18.0.0/24")


def net(text: str) -> Subnet:
    return parse_subnet(text)


def claimer(kv: MemoryKV, node: str, instance: str | None = None) -> BlockClaims:
    return BlockClaims(kv, LAYOUT, node, instance or f"{node}-i", clock=lambda: 1000.0)


def anything(_: Subnet) -> bool:
    return True


def assert_disjoint(blocks: list[Subnet]) -> None:
    ordered = sorted(blocks, key=lambda b: b.first)
    for a, b in itertools.pairwise(ordered):
        assert a.last < b.first, f"{a} and {b} overlap"


async def test_a_claimed_block_has_one_owner() -> None:
    kv = MemoryKV()
    one, two = claimer(kv, "node1"), claimer(kv, "node2")
    assert await one.claim(V4, net("198.18.0.64/26"), "198.18.0.0/24") is not None
    assert await two.claim(V4, net("198.18.0.64/26"), "198.18.0.0/24") is None
    # Nor any block inside it, nor one around it.
    assert await two.claim(V4, net("198.18.0.96/27"), "198.18.0.0/24") is None
    assert await two.claim(V4, net("198.18.0.70/32"), "198.18.0.0/24") is None
    assert await two.claim(V4, net("198.18.0.0/25"), "198.18.0.0/24") is None
    assert await two.claim(V4, net("198.18.0.128/26"), "198.18.0.0/24") is not None
    owners = {c.block: c.owner.node for c in await list_blocks(kv, LAYOUT)}
    assert owners == {net("198.18.0.64/26"): "node1", net("198.18.0.128/26"): "node2"}


async def test_other_lans_and_families_are_separate() -> None:
    kv = MemoryKV()
    one = claimer(kv, "node1")
    assert await one.claim(V4, net("198.18.0.0/26"), "p") is not None
    other_lan = Scope("local", "vlan20", Family.V4)
    assert await one.claim(other_lan, net("198.18.0.0/26"), "p") is not None
    assert await one.claim(Scope("global", "default", Family.V4), net("198.18.0.0/26"), "p")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 255), st.sampled_from([24, 25, 26, 28, 32])),
        min_size=1,
        max_size=40,
    )
)
def test_claims_of_mixed_sizes_never_overlap(attempts: list[tuple[int, int, int]]) -> None:
    async def run() -> None:
        kv = MemoryKV()
        nodes = [claimer(kv, f"node{i}") for i in range(3)]
        for who, offset, prefixlen in attempts:
            size = 1 << (32 - prefixlen)
            first = SPAN.first + (offset // size) * size
            await nodes[who].claim(V4, Subnet(Family.V4, first, prefixlen), "p")
        assert_disjoint([c.block for c in await list_blocks(kv, LAYOUT)])

    asyncio.run(run())


async def test_concurrent_claimers_get_disjoint_blocks_until_none_is_left() -> None:
    kv = MemoryKV()
    nodes = [claimer(kv, f"node{i}") for i in range(5)]
    known: dict[str, set[Subnet]] = {c.node: set() for c in nodes}

    async def grab(c: BlockClaims) -> None:
        while True:
            result = await c.find_and_claim(
                V4, SPAN, 28, pool="198.18.0.0/24", known=known[c.node], usable=anything
            )
            if result.block is None:
                return
            known[c.node].add(result.block.block)

    await asyncio.gather(*(grab(c) for c in nodes))
    blocks = [c.block for c in await list_blocks(kv, LAYOUT)]
    assert len(blocks) == 16  # every /28 of the /24, each claimed once
    assert_disjoint(blocks)
    assert sum(len(s) for s in known.values()) == 16
    # Each claimer knows exactly the blocks etcd records as its own.
    for c in nodes:
        recorded = {b.block for b in await list_blocks(kv, LAYOUT) if c.mine(b.owner)}
        assert recorded == known[c.node]


async def test_a_lost_answer_is_adopted_instead_of_claiming_another_block() -> None:
    kv = MemoryKV()
    one = claimer(kv, "node1")
    first = await one.find_and_claim(V4, SPAN, 26, pool="p", known=(), usable=anything)
    assert first.block is not None
    assert not first.adopted
    # The caller never learned about it (timeout, crash before the local write): asking again
    # gives the same block back, adopted, with no second claim.
    txns = kv.txns
    again = await one.find_and_claim(V4, SPAN, 26, pool="p", known=(), usable=anything)
    assert again.adopted
    assert again.block is not None
    assert again.block.block == first.block.block
    assert kv.txns == txns
    # A block of the same node *name* but another instance (another state dir) is not ours.
    other = claimer(kv, "node1", instance="reinstalled")
    result = await other.find_and_claim(V4, SPAN, 26, pool="p", known=(), usable=anything)
    assert result.block is not None
    assert not result.adopted
    assert result.block.block != first.block.block


async def test_unusable_blocks_are_skipped_and_none_left_is_reported() -> None:
    kv = MemoryKV()
    one = claimer(kv, "node1")
    unusable = net("198.18.0.0/26")
    result = await one.find_and_claim(
        V4, SPAN, 26, pool="p", known=(), usable=lambda b: b != unusable
    )
    assert result.block is not None
    assert result.block.block != unusable
    for _ in range(2):
        await one.find_and_claim(
            V4,
            SPAN,
            26,
            pool="p",
            known=[c.block for c in await list_blocks(kv, LAYOUT)],
            usable=lambda b: b != unusable,
        )
    nothing = await one.find_and_claim(
        V4,
        SPAN,
        26,
        pool="p",
        known=[c.block for c in await list_blocks(kv, LAYOUT)],
        usable=lambda b: b != unusable,
    )
    assert nothing.block is None
    assert len(nothing.listing) == 3


async def test_block_containing_finds_the_only_candidate() -> None:
    kv = MemoryKV()
    one = claimer(kv, "node1")
    await one.claim(V4, net("198.18.0.64/26"), "p")
    await one.claim(V4, net("198.18.0.200/32"), "p")
    found = await one.block_containing(V4, net("198.18.0.127/32").first)
    assert found is not None
    assert found.block == net("198.18.0.64/26")
    assert await one.block_containing(V4, net("198.18.0.128/32").first) is None
    single = await one.block_containing(V4, net("198.18.0.200/32").first)
    assert single is not None
    assert single.block == net("198.18.0.200/32")
    assert await one.block_containing(V4, net("198.18.0.201/32").first) is None


async def test_release_deletes_only_a_record_it_read_as_its_own() -> None:
    kv = MemoryKV()
    one, two = claimer(kv, "node1"), claimer(kv, "node2")
    await one.claim(V4, net("198.18.0.0/26"), "p")
    # node2 cannot release node1's block ...
    assert await two.release(V4, net("198.18.0.0/26"))  # "not ours" ...
    assert len(await list_blocks(kv, LAYOUT)) == 1  # ... and it is still there
    assert await one.release(V4, net("198.18.0.0/26"))
    assert await list_blocks(kv, LAYOUT) == []
    assert await one.release(V4, net("198.18.0.0/26"))  # idempotent


async def test_reclaim_refuses_a_running_node_and_frees_a_gone_one() -> None:
    kv = MemoryKV()
    three = claimer(kv, "node3")
    registration = Registration(kv, LAYOUT, "node3", three.instance, ttl=20)
    assert await registration.renew() is None
    for _ in range(2):
        await three.find_and_claim(
            V4,
            SPAN,
            26,
            pool="198.18.0.0/24",
            known=[c.block for c in await list_blocks(kv, LAYOUT)],
            usable=anything,
        )
    refused = await reclaim(kv, LAYOUT, "node3")
    assert refused.refused is not None
    assert 'node "node3" is running' in refused.refused
    assert len(refused.blocks) == 2
    assert len(await list_blocks(kv, LAYOUT)) == 2
    kv.expire(registration.lease)  # node3 died: its registration ran out
    dry = await reclaim(kv, LAYOUT, "node3", dry_run=True)
    assert (dry.refused, len(dry.blocks), dry.reclaimed) == (None, 2, 0)
    done = await reclaim(kv, LAYOUT, "node3")
    assert (done.refused, done.reclaimed) == (None, 2)
    assert await list_blocks(kv, LAYOUT) == []
    # Another node can claim them now.
    one = claimer(kv, "node1")
    got = await one.find_and_claim(V4, SPAN, 24, pool="198.18.0.0/24", known=(), usable=anything)
    assert got.block is not None
    assert got.block.block == SPAN


async def test_registration_takes_over_its_own_record_and_reports_a_twin() -> None:
    kv = MemoryKV()
    first = Registration(kv, LAYOUT, "node1", "instance-a", ttl=20)
    assert await first.renew() is None
    # The same instance restarted before its old lease ran out: it takes its record over.
    restarted = Registration(kv, LAYOUT, "node1", "instance-a", ttl=20)
    assert await restarted.renew() is None
    assert restarted.lease != first.lease
    # Another state directory under the same node name: reported, not registered.
    twin = Registration(kv, LAYOUT, "node1", "instance-b", ttl=20)
    problem = await twin.renew()
    assert problem is not None
    assert "two hosts must not share a node name" in problem
    assert twin.lease == 0
    # A lease lost during an outage is replaced on the next renewal.
    kv.expire(restarted.lease)
    assert await restarted.renew() is None
    assert restarted.lease in kv.leases
    await restarted.withdraw()
    status = await read_status(kv, LAYOUT)
    assert status.running == {}


async def test_status_counts_blocks_per_node_and_free_blocks() -> None:
    kv = MemoryKV()
    for node, block in [
        ("node1", "198.18.0.0/26"),
        ("node1", "198.18.0.64/26"),
        ("n2", "198.18.0.200/32"),
    ]:
        owner = BlockOwner(node, node, "198.18.0.0/24", 1.0)
        kv.put_raw(LAYOUT.block_key(V4, net(block)), owner.encode())
    status = await read_status(kv, LAYOUT)
    assert status.blocks_per_node == {"node1": 2, "n2": 1}
    (pool,) = status.pools
    assert (pool.block_prefixlen, pool.total_blocks, pool.free_blocks) == (26, 4, 1)
    assert pool.claimed_addresses == 129


async def test_an_unreachable_cluster_raises_cluster_unavailable() -> None:
    kv = MemoryKV()
    kv.unreachable = "http://127.0.0.1:2379: connection refused"
    with pytest.raises(ClusterUnavailable, match="connection refused"):
        await claimer(kv, "node1").find_and_claim(V4, SPAN, 26, pool="p", known=(), usable=anything)


async def test_reclaim_of_an_earlier_instance_while_the_node_runs_again() -> None:
    kv = MemoryKV()
    old = claimer(kv, "node2", instance="old-state")
    await old.claim(V4, net("198.18.0.0/26"), "p")
    new = claimer(kv, "node2", instance="new-state")  # its state directory was reset
    await new.claim(V4, net("198.18.0.64/26"), "p")
    assert await Registration(kv, LAYOUT, "node2", "new-state", ttl=20).renew() is None
    status = await read_status(kv, LAYOUT)
    assert status.instances == {"node2": {"old-state": 1, "new-state": 1}}
    assert (await reclaim(kv, LAYOUT, "node2")).refused is not None
    assert (await reclaim(kv, LAYOUT, "node2", instance="new-state")).refused is not None
    done = await reclaim(kv, LAYOUT, "node2", instance="old-state")
    assert (done.refused, done.reclaimed) == (None, 1)
    assert [c.block for c in await list_blocks(kv, LAYOUT)] == [net("198.18.0.64/26")]
