"""What an operator sees and does from the command line: `pymacvlan cluster status | reclaim`.

Rules:

* These read and write etcd directly, not through a daemon: they work from any host that
  reaches etcd, also when the host being looked at is gone.
* **Reclaim is never automatic** and refuses a node that is running (its registration is alive
  in etcd): giving a running host's blocks to others would hand out addresses its containers
  use, and its next sweep would claim back every block nobody took meanwhile anyway. A host that
  died is seen as gone once its registration expires (`NODE_TTL_SECONDS`); one that was stopped
  cleanly, at once. `force` overrides the refusal for a registration that lingers on a host you
  know is gone. `instance` limits the reclaim to the blocks of one instance of the node (a host
  whose state directory was reset is a new instance; its old instance's blocks can be reclaimed
  while the new one runs).
* Each block is deleted under "unchanged since it was read", so a reclaim never deletes a block
  that changed hands while it ran.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from ipam.addresses import Subnet, parse_subnet
from ipam.cluster.blocks import block_count, grid_blocks_touched
from ipam.cluster.claims import ClaimedBlock, list_blocks, read_nodes, reclaim_blocks
from ipam.cluster.config import NODE_TTL_SECONDS
from ipam.cluster.kv import KeyValue
from ipam.cluster.layout import Layout, NodeRecord, Scope
from ipam.errors import InvalidRequest


@dataclass(frozen=True)
class PoolStatus:
    """The blocks claimed for one pool (subnet) of one LAN."""

    scope: Scope
    pool: str
    blocks: tuple[ClaimedBlock, ...]
    block_prefixlen: int | None  # the usual block size there; None without blocks
    total_blocks: int | None  # how many blocks of that size the subnet holds
    free_blocks: int | None  # how many of them no block overlaps

    @property
    def claimed_addresses(self) -> int:
        return sum(c.block.size for c in self.blocks)


@dataclass(frozen=True)
class ClusterStatus:
    etcd: str
    prefix: str
    running: dict[str, NodeRecord]
    pools: tuple[PoolStatus, ...]
    blocks_per_node: dict[str, int] = field(default_factory=dict)
    instances: dict[str, dict[str, int]] = field(default_factory=dict)  # node -> instance -> blocks

    @property
    def nodes(self) -> list[str]:
        return sorted(set(self.running) | set(self.blocks_per_node))


async def read_status(kv: KeyValue, layout: Layout) -> ClusterStatus:
    running = await read_nodes(kv, layout)
    blocks = await list_blocks(kv, layout)
    by_scope: dict[Scope, list[ClaimedBlock]] = defaultdict(list)
    by_pool: dict[tuple[Scope, str], list[ClaimedBlock]] = defaultdict(list)
    for claimed in blocks:
        by_scope[claimed.scope].append(claimed)
        by_pool[(claimed.scope, claimed.owner.pool)].append(claimed)
    pools = []
    for (scope, pool), claimed_blocks in sorted(by_pool.items(), key=_pool_order):
        pools.append(_pool_status(scope, pool, claimed_blocks, by_scope[scope]))
    per_node = Counter(c.owner.node for c in blocks)
    instances: dict[str, dict[str, int]] = defaultdict(dict)
    for (node, instance), count in Counter(
        (c.owner.node, c.owner.instance) for c in blocks
    ).items():
        instances[node][instance] = count
    return ClusterStatus(
        kv.describe(), layout.prefix, running, tuple(pools), dict(per_node), dict(instances)
    )


def _pool_order(item: tuple[tuple[Scope, str], list[ClaimedBlock]]) -> tuple[Scope, int, str]:
    (scope, pool), _ = item
    try:
        return scope, parse_subnet(pool).first, pool
    except InvalidRequest:
        return scope, -1, pool


def _pool_status(
    scope: Scope, pool: str, blocks: list[ClaimedBlock], lan_blocks: list[ClaimedBlock]
) -> PoolStatus:
    ordered = tuple(sorted(blocks, key=lambda c: c.block.first))
    sizes = Counter(c.block.prefixlen for c in blocks if c.block.prefixlen < scope.family.bits)
    subnet: Subnet | None
    try:
        subnet = parse_subnet(pool)
    except InvalidRequest:
        subnet = None
    if not sizes or subnet is None:
        return PoolStatus(scope, pool, ordered, None, None, None)
    prefixlen = sizes.most_common(1)[0][0]
    if prefixlen < subnet.prefixlen:
        return PoolStatus(scope, pool, ordered, prefixlen, None, None)
    total = block_count(subnet, prefixlen)
    # Every block of the LAN counts: another pool's block that overlaps this subnet takes room.
    touched = grid_blocks_touched(subnet, prefixlen, [c.block for c in lan_blocks])
    return PoolStatus(scope, pool, ordered, prefixlen, total, total - touched)


@dataclass(frozen=True)
class ReclaimResult:
    node: str
    running: NodeRecord | None
    blocks: tuple[ClaimedBlock, ...]  # the node's blocks found
    reclaimed: int  # how many were deleted (0 on a dry run or a refusal)
    refused: str | None = None


async def reclaim(
    kv: KeyValue,
    layout: Layout,
    node: str,
    *,
    instance: str | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> ReclaimResult:
    """Give back every block of `node` (of one `instance` of it, if given); see the rules above."""
    running = (await read_nodes(kv, layout)).get(node)
    blocks = tuple(
        c
        for c in await list_blocks(kv, layout)
        if c.owner.node == node and (instance is None or c.owner.instance == instance)
    )
    touches_running = running is not None and instance in (None, running.instance)
    if touches_running and running is not None and not force:
        refusal = (
            f'node "{node}" is running: its pymacvlan daemon (instance {running.instance}) keeps '
            "its registration in etcd alive, and giving its blocks to other hosts would let them "
            "hand out addresses its containers use (its next sweep would also claim back every "
            f"block nobody took meanwhile). Stop pymacvlan on {node} first: a stopped daemon "
            f"withdraws its registration at once, a dead one's expires within "
            f"{NODE_TTL_SECONDS} s. To free only the blocks of an earlier instance of {node} "
            "(its state directory was reset), pass --instance ID (see `cluster status`). Pass "
            f"--force only if {node} is gone for good and its registration lingers"
        )
        return ReclaimResult(node, running, blocks, 0, refusal)
    if dry_run or not blocks:
        return ReclaimResult(node, running, blocks, 0)
    reclaimed = await reclaim_blocks(kv, layout, blocks)
    return ReclaimResult(node, running, blocks, reclaimed)
