"""Claiming, finding and giving back blocks in the cluster: the only logic that writes to etcd.

Rules:

* **Claim**: one transaction, "no overlapping block exists" -> put `{"node", "instance", ...}`
  (`ipam.cluster.blocks.claim_compares`). etcd applies it atomically, so a block never has two
  owners, whatever the timing. A failed compare means someone was faster: read again, pick the
  next free block, a bounded number of times.
* **Adopt before claiming**: a block recorded under this host's instance that the caller does
  not know is this host's already (a claim whose answer was lost to a timeout, or a crash between
  the etcd write and the local one). It is taken back instead of claiming another, which is what
  makes a retried claim safe.
* **Release**: read the block; if it is still this instance's, delete it under "unchanged since
  that read" (`mod_revision`). A block that is gone, or that someone else holds now, is left
  alone: a release never deletes a record it did not read as its own.
* **Reclaim** (an operator's command for a host that is gone) deletes another node's blocks with
  the same guard; nothing ever does it automatically.
* **Registration**: a live daemon keeps `<prefix>/v1/nodes/<node>` on an etcd lease. It is how
  `cluster status` and `cluster reclaim` tell a running host from one that is gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ipam.addresses import Subnet
from ipam.cluster.blocks import claim_compares, free_blocks, start_index, taken_set
from ipam.cluster.kv import Absent, Delete, Entry, KeyValue, Put, Unchanged
from ipam.cluster.layout import BlockOwner, Layout, NodeRecord, Scope, prefix_end
from ipam.errors import ClusterError

# Claim attempts per request: each failed one means another host claimed a candidate in between.
CLAIM_ATTEMPTS = 8
# Candidates rejected as useless (e.g. full of this host's gateway and aux addresses) before the
# search gives up: keeps a request's CPU bounded in huge IPv6 spans.
MAX_CANDIDATES = 4096


@dataclass(frozen=True, slots=True)
class ClaimedBlock:
    """A block as read from etcd."""

    scope: Scope
    block: Subnet
    owner: BlockOwner
    mod_revision: int


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """What a search for a new block found: a block (claimed now, or adopted), or None, with the
    listing it was chosen from (for the message when nothing is left)."""

    block: ClaimedBlock | None
    adopted: bool
    listing: tuple[ClaimedBlock, ...]


class BlockClaims:
    """Block operations of one node instance against a `KeyValue`."""

    def __init__(
        self,
        kv: KeyValue,
        layout: Layout,
        node: str,
        instance: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kv = kv
        self.layout = layout
        self.node = node
        self.instance = instance
        self._clock = clock

    def mine(self, owner: BlockOwner) -> bool:
        """Ownership is the instance's; the node name is only what people read."""
        return owner.instance == self.instance

    # ------------------------------------------------------------------ reads

    async def list_scope(self, scope: Scope) -> list[ClaimedBlock]:
        prefix = self.layout.scope_prefix(scope)
        return parse_blocks(self.layout, await self.kv.range(prefix, prefix_end(prefix)))

    async def list_all(self) -> list[ClaimedBlock]:
        return await list_blocks(self.kv, self.layout)

    async def block_containing(self, scope: Scope, value: int) -> ClaimedBlock | None:
        """The claimed block that contains `value`, if any (one read: blocks never overlap, so
        only the last block starting at or before `value` can)."""
        start, end = self.layout.starting_at_or_before(scope, value)
        entries = await self.kv.range(start, end, limit=1, descending=True)
        found = parse_blocks(self.layout, entries)
        if found and value in found[0].block:
            return found[0]
        return None

    async def read_block(self, scope: Scope, block: Subnet) -> ClaimedBlock | None:
        found = parse_blocks(self.layout, await self.kv.range(self.layout.block_key(scope, block)))
        return found[0] if found else None

    # ----------------------------------------------------------------- writes

    async def claim(self, scope: Scope, block: Subnet, pool: str) -> ClaimedBlock | None:
        """Claim `block` atomically; None when it, or a block overlapping it, is claimed."""
        owner = BlockOwner(self.node, self.instance, pool, self._clock())
        key = self.layout.block_key(scope, block)
        if await self.kv.txn(claim_compares(self.layout, scope, block), [Put(key, owner.encode())]):
            return ClaimedBlock(scope, block, owner, 0)
        # The answer may have been lost after etcd applied it (the client retries on another
        # endpoint, which then sees our own record): read back before calling it lost.
        current = await self.read_block(scope, block)
        if current is not None and self.mine(current.owner):
            return current
        return None

    async def find_and_claim(
        self,
        scope: Scope,
        span: Subnet,
        prefixlen: int,
        *,
        pool: str,
        known: Iterable[Subnet],
        usable: Callable[[Subnet], bool],
    ) -> ClaimResult:
        """A block of `span` for this host: one of its own that the caller does not know, else
        a newly claimed free one that `usable` accepts."""
        known_set = set(known)
        listing: list[ClaimedBlock] = []
        for _ in range(CLAIM_ATTEMPTS):
            listing = await self.list_scope(scope)
            for claimed in listing:
                if (
                    self.mine(claimed.owner)
                    and claimed.block not in known_set
                    and span.first <= claimed.block.first
                    and claimed.block.last <= span.last
                    and usable(claimed.block)
                ):
                    return ClaimResult(claimed, True, tuple(listing))
            taken = taken_set([c.block for c in listing])
            candidate = None
            start = start_index(self.node, 1 << (prefixlen - span.prefixlen))
            for checked, block in enumerate(free_blocks(span, prefixlen, taken, start)):
                if checked >= MAX_CANDIDATES:
                    break
                if usable(block):
                    candidate = block
                    break
            if candidate is None:
                return ClaimResult(None, False, tuple(listing))
            claimed_now = await self.claim(scope, candidate, pool)
            if claimed_now is not None:
                return ClaimResult(claimed_now, False, tuple(listing))
        raise ClusterError(
            f"could not claim a block of {span}: other hosts claimed each candidate first, "
            f"{CLAIM_ATTEMPTS} times in a row; try again"
        )

    async def release(self, scope: Scope, block: Subnet) -> bool:
        """Give `block` back if it is still this instance's; True when it is gone (or was not
        ours any more: either way it is not ours now)."""
        current = await self.read_block(scope, block)
        if current is None or not self.mine(current.owner):
            return True
        key = self.layout.block_key(scope, block)
        if await self.kv.txn([Unchanged(key, current.mod_revision)], [Delete(key)]):
            return True
        after = await self.read_block(scope, block)
        return after is None or not self.mine(after.owner)


def parse_blocks(layout: Layout, entries: Iterable[Entry]) -> list[ClaimedBlock]:
    """The block records among `entries`; other keys under the prefix are skipped, not misread."""
    result = []
    for entry in entries:
        parsed = layout.parse_block_key(entry.key)
        if parsed is None:
            continue
        scope, block = parsed
        owner = BlockOwner.decode(entry.value, entry.key)
        result.append(ClaimedBlock(scope, block, owner, entry.mod_revision))
    return result


async def list_blocks(kv: KeyValue, layout: Layout) -> list[ClaimedBlock]:
    """Every claimed block of every LAN."""
    prefix = layout.blocks_prefix
    return parse_blocks(layout, await kv.range(prefix, prefix_end(prefix)))


async def reclaim_blocks(kv: KeyValue, layout: Layout, blocks: Iterable[ClaimedBlock]) -> int:
    """Delete `blocks` (read from etcd) unless they changed since; returns how many went."""
    deleted = 0
    for claimed in blocks:
        key = layout.block_key(claimed.scope, claimed.block)
        if await kv.txn([Unchanged(key, claimed.mod_revision)], [Delete(key)]):
            deleted += 1
    return deleted


class Registration:
    """This daemon's liveness record: `<prefix>/v1/nodes/<node>` on an etcd lease."""

    def __init__(
        self,
        kv: KeyValue,
        layout: Layout,
        node: str,
        instance: str,
        ttl: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kv = kv
        self.layout = layout
        self.node = node
        self.instance = instance
        self.ttl = ttl
        self.lease = 0
        self._clock = clock
        self._started_at = clock()

    async def renew(self) -> str | None:
        """Keep the registration alive (re-create it after an outage); returns a problem to
        report (another live daemon registered under this node name), or None."""
        if self.lease:
            if await self.kv.keepalive(self.lease) > 0:
                return None
            self.lease = 0  # expired during an outage: register again
        lease = await self.kv.grant(self.ttl)
        key = self.layout.node_key(self.node)
        record = NodeRecord(self.node, self.instance, self._started_at).encode()
        if await self.kv.txn([Absent(key)], [Put(key, record, lease)]):
            self.lease = lease
            return None
        entries = await self.kv.range(key)
        if entries:
            existing = NodeRecord.decode(entries[0].value, key)
            # Our own record from before a restart, still on its old lease: take it over.
            if existing.instance == self.instance and await self.kv.txn(
                [Unchanged(key, entries[0].mod_revision)], [Put(key, record, lease)]
            ):
                self.lease = lease
                return None
            await self.kv.revoke(lease)
            return (
                f"another pymacvlan daemon (instance {existing.instance}) is registered as node "
                f'"{self.node}"; two hosts must not share a node name (set PYMACVLAN_NODE_NAME); '
                "this host's blocks stay its own, but `pymacvlan cluster status` and `reclaim` "
                "cannot tell the two apart"
            )
        await self.kv.revoke(lease)
        return None  # the other record vanished in between: the next renewal registers

    async def withdraw(self) -> None:
        """Stopping cleanly: the node is gone from `cluster status` at once."""
        if self.lease:
            lease, self.lease = self.lease, 0
            await self.kv.revoke(lease)


async def read_nodes(kv: KeyValue, layout: Layout) -> dict[str, NodeRecord]:
    """The registered (running) nodes."""
    prefix = layout.nodes_prefix
    entries = await kv.range(prefix, prefix_end(prefix))
    nodes = {}
    for entry in entries:
        record = NodeRecord.decode(entry.value, entry.key)
        nodes[record.node] = record
    return nodes
