"""The IPAM service in cluster mode against the real etcd cluster, in this process: claims on
exhaustion, --ip rules, gateways and aux addresses, giving blocks back, reconciling, offline.

Each node is an `IpamService` with its own SQLite state directory and a `ClusterMode` on the
session's 3-member etcd (its own key prefix per test); a hand-moved clock drives quarantine and
the give-back grace, and the sweep is called directly instead of waiting for its timer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ipam.cluster.claims import list_blocks, reclaim_blocks
from ipam.cluster.config import ClusterConfig
from ipam.cluster.etcd import EtcdClient
from ipam.cluster.layout import Layout
from ipam.cluster.mode import ClusterMode
from ipam.errors import (
    AddressInUse,
    AddressOwnedElsewhere,
    ClusterUnavailable,
    NoAvailableAddresses,
)
from ipam.service import IpamService
from plugin.state_files import StateFiles
from tests.cluster.etcd_cluster import EtcdCluster, free_ports
from tests.unit.ipam.helpers import GATEWAY, Clock, endpoint, make_settings

SUBNET = "198.18.0.0/24"


@dataclass
class Node:
    name: str
    service: IpamService
    mode: ClusterMode
    events: list[tuple[str, str, dict[str, object]]] = field(default_factory=list)

    async def pool(self, subnet: str = SUBNET, sub_pool: str = "", **options: str) -> str:
        grant = await self.service.request_pool(
            address_space="local", pool=subnet, sub_pool=sub_pool, options=options, v6=False
        )
        return grant.pool_id

    async def take(self, pool_id: str, address: str = "", **options: str) -> str:
        grant = await self.service.request_address(
            pool_id=pool_id, address=address, options=options
        )
        return grant.address.split("/")[0]

    async def give(self, pool_id: str, address: str) -> None:
        await self.service.release_address(pool_id=pool_id, address=address)

    def blocks(self) -> list[str]:
        return sorted(str(b) for blocks in self.mode.all_blocks().values() for b in blocks)


MakeNode = Callable[..., Awaitable[Node]]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make_node(
    etcd: EtcdCluster, etcd_prefix: str, tmp_path: Path, clock: Clock
) -> AsyncIterator[MakeNode]:
    """`await make_node("node1", endpoints=..., quarantine=...)`: a loaded service, closed after."""
    opened: list[Node] = []

    async def make(
        name: str, *, endpoints: str | None = None, quarantine: float = 0.0, sweep: float = 60.0
    ) -> Node:
        config = ClusterConfig.parse(
            endpoints or etcd.endpoints, prefix=etcd_prefix, timeout=1.0, sweep_seconds=sweep
        )
        assert config is not None
        events: list[tuple[str, str, dict[str, object]]] = []

        def sink(level: str, event: str, fields: Mapping[str, object]) -> None:
            events.append((level, event, dict(fields)))

        state_dir = tmp_path / name
        mode = ClusterMode(config, name, state_dir, files=StateFiles(), clock=clock, events=sink)
        service = IpamService.open_sqlite(
            state_dir, make_settings(name, quarantine), clock, cluster=mode, files=StateFiles()
        )
        await service.load()
        node = Node(name, service, mode, events)
        opened.append(node)
        return node

    yield make
    for node in opened:
        await node.service.close()


def dead_endpoint() -> str:
    return f"http://127.0.0.1:{free_ports(1)[0]}"


def inside(address: str, blocks: list[str]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(b) for b in blocks)


async def test_each_host_allocates_inside_its_own_blocks(make_node: MakeNode) -> None:
    one, two = await make_node("node1"), await make_node("node2")
    p1, p2 = await one.pool(block_size="28"), await two.pool(block_size="28")
    assert p1 == p2  # the same `network create` on both hosts
    a = [await one.take(p1) for _ in range(40)]
    b = [await two.take(p2) for _ in range(40)]
    assert len(set(a) | set(b)) == 80
    assert all(inside(x, one.blocks()) for x in a)
    assert all(inside(x, two.blocks()) for x in b)
    assert not set(one.blocks()) & set(two.blocks())
    assert len(one.blocks()) == 3  # 40 addresses in /28 blocks (16, or 15 at the subnet's ends)


async def test_gateway_and_aux_addresses_are_accepted_on_every_host(make_node: MakeNode) -> None:
    one, two = await make_node("node1"), await make_node("node2")
    p1, p2 = await one.pool(), await two.pool()
    # Whatever block they fall into, and even before any block exists: they are LAN-wide.
    for node, pool_id in ((one, p1), (two, p2)):
        assert await node.take(pool_id, "198.18.0.1", **GATEWAY) == "198.18.0.1"
        assert await node.take(pool_id, "198.18.0.2") == "198.18.0.2"  # --aux-address
    # ... and never handed out automatically by the host whose block holds them.
    taken = [await one.take(p1) for _ in range(120)] + [await two.take(p2) for _ in range(120)]
    assert "198.18.0.1" not in taken
    assert "198.18.0.2" not in taken
    assert len(set(taken)) == 240


async def test_an_ip_in_another_hosts_block_is_refused_naming_the_owner(
    make_node: MakeNode,
) -> None:
    one, two = await make_node("node1"), await make_node("node2")
    p1, p2 = await one.pool(), await two.pool()
    first = await one.take(p1)
    with pytest.raises(AddressOwnedElsewhere) as caught:
        await two.take(p2, first, **endpoint("web"))
    message = str(caught.value)
    assert f'requested address {first} belongs to node "node1"' in message
    assert "start the container on node1, or ask for another address" in message
    assert isinstance(caught.value, AddressInUse)
    # In this host's own block: no question asked.
    mine = await one.take(p1)
    await one.give(p1, mine)
    assert await one.take(p1, mine, **endpoint("db")) == mine


async def test_an_ip_outside_every_block_is_held_by_this_host_alone(make_node: MakeNode) -> None:
    one, two = await make_node("node1"), await make_node("node2")
    p1 = await one.pool("198.18.0.0/26", block_size="28")
    p2 = await two.pool("198.18.0.0/26", block_size="28")
    assert await one.take(p1, "198.18.0.20", **endpoint("web")) == "198.18.0.20"
    assert one.blocks() == ["198.18.0.20/32"]
    # node2 fills the subnet: it never gets .20, nor the /28 around it.
    taken = [await two.take(p2) for _ in range(15 + 16 + 15)]
    with pytest.raises(NoAvailableAddresses) as caught:
        await two.take(p2)
    assert "198.18.0.20" not in taken
    assert len(taken) == 15 + 16 + 15  # the three /28 blocks that do not contain .20
    assert "no free /28 block is left in 198.18.0.0/26" in str(caught.value)
    assert "4 blocks claimed: node1 1, node2 3" in str(caught.value)
    with pytest.raises(AddressOwnedElsewhere, match='belongs to node "node1"'):
        await two.take(p2, "198.18.0.20", **endpoint("x"))


async def test_empty_blocks_are_given_back_after_the_quarantine(
    make_node: MakeNode, clock: Clock, etcd_prefix: str, etcd: EtcdCluster
) -> None:
    one = await make_node("node1", quarantine=30.0, sweep=10.0)
    pool_id = await one.pool(block_size="28")
    taken = [await one.take(pool_id) for _ in range(20)]
    assert len(one.blocks()) == 2
    first_block, second_block = (
        [a for a in taken if inside(a, [b])] for b in sorted(one.blocks(), key=_first)
    )
    for address in second_block:
        await one.give(pool_id, address)
    clock.advance(11)  # past the grace of a new block, but the addresses still rest
    await one.mode.sweep()
    assert len(one.blocks()) == 2
    clock.advance(30)
    await one.mode.sweep()
    assert len(one.blocks()) == 1
    assert await etcd_blocks(etcd, etcd_prefix) == one.blocks()
    # The last block of a pool that still exists is kept, even empty ...
    for address in first_block:
        await one.give(pool_id, address)
    clock.advance(31)
    await one.mode.sweep()
    assert len(one.blocks()) == 1
    # ... until the pool goes (`docker network rm`).
    await one.service.release_pool(pool_id)
    clock.advance(31)
    await one.mode.sweep()
    assert one.blocks() == []
    assert await etcd_blocks(etcd, etcd_prefix) == []
    assert any(event == "cluster block given back" for _, event, _ in one.events)


async def test_a_host_cut_off_from_etcd_allocates_inside_its_blocks(
    make_node: MakeNode, etcd: EtcdCluster
) -> None:
    online = await make_node("node1")
    pool_id = await online.pool(block_size="28")
    before = [await online.take(pool_id) for _ in range(5)]
    blocks = online.blocks()
    await online.service.close()
    # The same host restarts with etcd out of reach (here: endpoints where nothing listens).
    dead = dead_endpoint()
    offline = await make_node("node1", endpoints=dead)
    assert offline.blocks() == blocks
    after = [await offline.take(pool_id) for _ in range(len(_hosts_of(blocks)) - 5)]
    assert not set(before) & set(after)
    assert all(inside(a, blocks) for a in after)
    with pytest.raises(ClusterUnavailable) as caught:
        await offline.take(pool_id)
    message = str(caught.value)
    assert message.startswith(
        "no available addresses in this host's blocks of 198.18.0.0/24 and the etcd cluster "
        f"(endpoints {dead}) cannot be reached to claim another block: "
    )
    assert "connection refused" in message
    # An --ip outside its blocks cannot be checked: refused, saying why.
    with pytest.raises(ClusterUnavailable, match=r"cannot check whether 198\.18\.0\.200 is free"):
        await offline.take(pool_id, "198.18.0.200", **endpoint("web"))
    # Addresses in its own blocks still work with --ip.
    await offline.give(pool_id, after[0])
    assert await offline.take(pool_id, after[0], **endpoint("web")) == after[0]
    await offline.service.close()
    # etcd is back: the next request claims a new block.
    back = await make_node("node1")
    assert inside(await back.take(pool_id), [b for b in back.blocks() if b not in blocks])


async def test_a_block_reclaimed_while_away_is_claimed_again_or_dropped_if_taken(
    make_node: MakeNode, etcd: EtcdCluster, etcd_prefix: str
) -> None:
    one = await make_node("node1")
    pool_id = await one.pool(block_size="28")
    await one.take(pool_id)
    (block,) = one.blocks()
    kv = EtcdClient(etcd.endpoints.split(","), 1.0)
    layout = Layout(etcd_prefix)
    try:
        (claimed,) = await list_blocks(kv, layout)
        assert await reclaim_blocks(kv, layout, [claimed]) == 1
        await one.mode.sweep()  # missing from etcd: this host still uses it, so it takes it back
        assert [str(c.block) for c in await list_blocks(kv, layout)] == [block]
        assert one.blocks() == [block]
        assert any(event == "cluster block claimed again" for _, event, _ in one.events)
        # This time another host claims it before node1 looks again.
        (claimed,) = await list_blocks(kv, layout)
        await reclaim_blocks(kv, layout, [claimed])
        two = await make_node("node2")
        p2 = await two.pool(block_size="28")
        # node2's --ip inside the vacant block makes node2 the owner of that address.
        await two.take(p2, str(ipaddress.ip_network(block).network_address + 5), **endpoint("x"))
        await one.mode.sweep()
        assert one.blocks() == []
        lost = [f for level, event, f in one.events if event == "cluster block lost"]
        assert lost
        assert lost[0]["now_held_by"] == "node2"
        assert "containers here still use some: restart them" in str(lost[0]["problem"])
    finally:
        await kv.close()


async def test_restart_keeps_blocks_and_allocations(make_node: MakeNode) -> None:
    one = await make_node("node1")
    pool_id = await one.pool()
    taken = [await one.take(pool_id) for _ in range(10)]
    blocks = one.blocks()
    await one.service.close()
    again = await make_node("node1")
    assert again.blocks() == blocks
    more = [await again.take(pool_id) for _ in range(10)]
    assert not set(taken) & set(more)
    assert again.blocks() == blocks  # no new claim: the block had room
    with pytest.raises(AddressInUse):
        await again.take(pool_id, taken[0], **endpoint("web"))


async def etcd_blocks(etcd: EtcdCluster, prefix: str) -> list[str]:
    kv = EtcdClient(etcd.endpoints.split(","), 1.0)
    try:
        return sorted(str(c.block) for c in await list_blocks(kv, Layout(prefix)))
    finally:
        await kv.close()


def _first(block: str) -> int:
    return int(ipaddress.ip_network(block).network_address)


def _hosts_of(blocks: list[str]) -> list[str]:
    """The automatic addresses of `blocks` inside 198.18.0.0/24 (no network, no broadcast)."""
    subnet = ipaddress.ip_network(SUBNET)
    return [
        str(a)
        for b in blocks
        for a in ipaddress.ip_network(b)
        if a not in (subnet.network_address, subnet.broadcast_address)
    ]


async def test_ipv6_pools_claim_blocks_of_122(make_node: MakeNode) -> None:
    one, two = await make_node("node1"), await make_node("node2")
    grants = [
        await node.service.request_pool(
            address_space="local", pool="2001:db8::/64", sub_pool="", options={}, v6=True
        )
        for node in (one, two)
    ]
    a = [await one.take(grants[0].pool_id) for _ in range(70)]
    b = [await two.take(grants[1].pool_id) for _ in range(70)]
    assert len(set(a) | set(b)) == 140
    assert all(b.endswith("/122") for b in one.blocks() + two.blocks())
    assert len(one.blocks()) == 2
    assert all(inside(x, one.blocks()) for x in a)


async def test_networks_with_different_ip_ranges_share_the_lan_and_keep_their_ranges(
    make_node: MakeNode,
) -> None:
    one = await make_node("node1")
    front = await one.pool(sub_pool="198.18.0.0/25")
    back = await one.pool(sub_pool="198.18.0.128/25", block_size="27")
    f = [await one.take(front) for _ in range(70)]
    b = [await one.take(back) for _ in range(40)]
    assert all(inside(x, ["198.18.0.0/25"]) for x in f)
    assert all(inside(x, ["198.18.0.128/25"]) for x in b)
    assert sorted(one.blocks(), key=_first) == [
        "198.18.0.0/26",
        "198.18.0.64/26",
        *sorted((x for x in one.blocks() if x.endswith("/27")), key=_first),
    ]


async def test_blocks_never_cover_another_networks_address_plan(make_node: MakeNode) -> None:
    one = await make_node("node1")
    # A planned network and a cluster-managed one on the same LAN and subnet: the plan's
    # ranges are LAN-wide facts, so no block may contain them.
    planned = await one.pool(**{"range.node1": "198.18.0.10-198.18.0.19", "range.x": "198.18.0.70"})
    managed = await one.pool(block_size="28")
    assert planned != managed
    assert await one.take(planned) == "198.18.0.10"
    taken = [await one.take(managed) for _ in range(100)]
    plan = {f"198.18.0.{i}" for i in (*range(10, 20), 70)}
    assert not plan & set(taken)
    assert not any(inside(x, one.blocks()) for x in plan)


async def test_a_new_block_comes_before_reusing_a_resting_address(
    make_node: MakeNode, clock: Clock
) -> None:
    one = await make_node("node1", quarantine=300.0)
    pool_id = await one.pool(block_size="28")
    first = await one.take(pool_id)
    (block,) = one.blocks()
    rest = [await one.take(pool_id) for _ in range(len(_hosts_of([block])) - 1)]
    await one.give(pool_id, first)  # it rests for 300 s
    clock.advance(1)
    fresh = await one.take(pool_id)
    assert fresh != first
    assert len(one.blocks()) == 2  # claimed rather than reuse the resting address
    assert not inside(fresh, [block])
    assert first not in rest


async def test_offline_a_resting_address_is_reused_rather_than_failing(
    make_node: MakeNode, clock: Clock
) -> None:
    online = await make_node("node1", quarantine=300.0)
    pool_id = await online.pool(block_size="28")
    taken = [await online.take(pool_id)]
    (block,) = online.blocks()
    taken += [await online.take(pool_id) for _ in range(len(_hosts_of([block])) - 1)]
    await online.give(pool_id, taken[3])
    await online.service.close()
    offline = await make_node("node1", endpoints=dead_endpoint(), quarantine=300.0)
    clock.advance(1)
    assert await offline.take(pool_id) == taken[3]  # the resting one, as etcd is down
    with pytest.raises(ClusterUnavailable, match="cannot be reached to claim another block"):
        await offline.take(pool_id)
