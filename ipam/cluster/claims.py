"""Claiming, finding and giving back blocks in the cluster: the only logic that writes to etcd.

Rules:

* **Claim**: one transaction, "no overlapping block exists" -> put `{"node", "instance", ...}`
  and the block's owner-index key (`ipam.cluster.blocks.claim_compares`, `ipam.cluster.layout`).
  etcd applies it atomically, so a block never has two owners, whatever the timing. A failed
  compare means someone was faster: read again from that block on, a bounded number of times.
* **Search a page at a time**: a host looks for a free block from its own place in the span
  onwards, reading `SEARCH_PAGE` block keys first, then pages eight times as large each time,
  until it finds one; it reads the whole span only when it is (nearly) full, in a few round trips
  (a full span of 2,000 blocks: three reads). A claim therefore costs the same in a LAN of 10
  blocks and of 10,000, where reading every block for every claim made the whole cluster's boot
  cost grow with the square of the number of hosts (docs/performance.md, "Cluster mode at
  scale").
* **Adopt before claiming**: a block recorded under this host's instance that the caller does
  not know is this host's already (a claim whose answer was lost to a timeout, or a crash between
  the etcd write and the local one). It is taken back instead of claiming another, which is what
  makes a retried claim safe. The owner index finds such blocks with one small read.
* **Release**: read the block; if it is still this instance's, delete it (and its index key)
  under "unchanged since that read" (`mod_revision`). A block that is gone, or that someone else
  holds now, is left alone: a release never deletes a record it did not read as its own.
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
from ipam.cluster.blocks import block_count, claim_compares, free_blocks_between, start_index
from ipam.cluster.kv import Absent, Delete, Entry, KeyValue, Put, Unchanged
from ipam.cluster.layout import BlockOwner, Layout, NodeRecord, Scope, prefix_end
from ipam.errors import ClusterError
from ipam.intervals import IntervalSet

# Claim attempts per request: each failed one means another host claimed a candidate in between.
CLAIM_ATTEMPTS = 8
# Candidates rejected as useless (e.g. full of this host's gateway and aux addresses) before the
# search gives up: keeps a request's CPU bounded in huge IPv6 spans.
MAX_CANDIDATES = 4096
# Block keys read by the first page of a search for a free block (about 250 bytes each); each
# further page is eight times as large, so that a full span takes a few round trips, not dozens:
# when hundreds of hosts race for the last blocks, each round trip waits behind the others.
SEARCH_PAGE = 32


@dataclass(frozen=True, slots=True)
class ClaimedBlock:
    """A block as read from etcd."""

    scope: Scope
    block: Subnet
    owner: BlockOwner
    mod_revision: int


@dataclass(frozen=True, slots=True)
class IndexedBlock:
    """An owner-index key of this instance: the block it names, and the key to drop it by."""

    scope: Scope
    block: Subnet
    key: str
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

    async def list_mine(self) -> list[IndexedBlock]:
        """The owner index of this instance: its blocks in every LAN, one small read."""
        prefix = self.layout.owner_prefix(self.instance)
        found = []
        for entry in await self.kv.range(prefix, prefix_end(prefix)):
            parsed = self.layout.parse_owner_key(self.instance, entry.key)
            if parsed is not None:
                found.append(IndexedBlock(*parsed, entry.key, entry.mod_revision))
        return found

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

    async def starting_inside(self, scope: Scope, blocks: Iterable[Subnet]) -> list[ClaimedBlock]:
        """Every claimed block that starts inside one of `blocks`: one range read per run of
        adjacent blocks (a host's blocks mostly sit next to each other)."""
        found = []
        for first, last in _runs(blocks):
            start, end = self.layout.starting_within(scope, first, last)
            found += parse_blocks(self.layout, await self.kv.range(start, end))
        return found

    # ----------------------------------------------------------------- writes

    async def claim(self, scope: Scope, block: Subnet, pool: str) -> ClaimedBlock | None:
        """Claim `block` atomically; None when it, or a block overlapping it, is claimed."""
        owner = BlockOwner(self.node, self.instance, pool, self._clock())
        key = self.layout.block_key(scope, block)
        index = self.layout.owner_key(self.instance, scope, block)
        if await self.kv.txn(
            claim_compares(self.layout, scope, block), [Put(key, owner.encode()), Put(index, b"")]
        ):
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
        adopt: bool = True,
    ) -> ClaimResult:
        """A block of `span` for this host: one of its own that the caller does not know (looked
        for when `adopt`: after a claim whose outcome is unknown), else a newly claimed free one
        that `usable` accepts."""
        if adopt:
            adopted = await self._adoptable(scope, span, set(known), usable)
            if adopted is not None:
                return ClaimResult(adopted, True, ())
        size_bits = span.family.bits - prefixlen
        start = start_index(self.node, block_count(span, prefixlen))
        enclosing = False
        for _ in range(CLAIM_ATTEMPTS):
            candidate, seen = await self._search(
                scope, span, prefixlen, start, usable, enclosing=enclosing
            )
            if candidate is None:
                return ClaimResult(None, False, seen)
            claimed_now = await self.claim(scope, candidate, pool)
            if claimed_now is not None:
                return ClaimResult(claimed_now, False, seen)
            # Lost: search again from that block on, now also for a larger block that starts
            # before the search's first page and covers it (another pool's, rarely there).
            start = (candidate.first - span.first) >> size_bits
            enclosing = True
        raise ClusterError(
            f"could not claim a block of {span}: other hosts claimed each candidate first, "
            f"{CLAIM_ATTEMPTS} times in a row; try again"
        )

    async def _adoptable(
        self, scope: Scope, span: Subnet, known: set[Subnet], usable: Callable[[Subnet], bool]
    ) -> ClaimedBlock | None:
        for indexed in await self.list_mine():
            block = indexed.block
            inside = span.first <= block.first and block.last <= span.last
            if indexed.scope != scope or block in known or not inside:
                continue
            current = await self.read_block(scope, block)
            if current is not None and self.mine(current.owner) and usable(block):
                return current
        return None

    async def _search(
        self,
        scope: Scope,
        span: Subnet,
        prefixlen: int,
        start: int,
        usable: Callable[[Subnet], bool],
        *,
        enclosing: bool,
    ) -> tuple[Subnet | None, tuple[ClaimedBlock, ...]]:
        """The first free block that `usable` accepts, from block number `start` onwards and
        wrapping, reading the span's keys a page at a time; with every block read so far (the
        whole span when none is free)."""
        size = 1 << (span.family.bits - prefixlen)
        origin = span.first + start * size
        regions = [(origin, span.last)]
        if origin > span.first:
            regions.append((span.first, origin - 1))
        seen: dict[Subnet, ClaimedBlock] = {}
        taken = IntervalSet()

        def note(blocks: Iterable[ClaimedBlock]) -> None:
            for claimed in blocks:
                seen[claimed.block] = claimed
                taken.add_range(claimed.block.first, claimed.block.last)

        checked = 0
        limit = SEARCH_PAGE
        for lo, hi in regions:
            if enclosing:
                around = await self.block_containing(scope, lo)
                note([around] if around is not None else [])
            cursor = walked = lo
            while True:
                first_key, end_key = self.layout.starting_within(scope, cursor, hi)
                page = parse_blocks(
                    self.layout, await self.kv.range(first_key, end_key, limit=limit)
                )
                note(page)
                full = len(page) == limit
                # Keys are read in address order: with a full page, what starts after its last
                # block is not known yet, so candidates must end before that block starts.
                bound = page[-1].block.first - 1 if full else hi
                for block in free_blocks_between(span, prefixlen, taken, walked, bound):
                    checked += 1
                    if checked > MAX_CANDIDATES:
                        return None, tuple(seen.values())
                    if usable(block):
                        return block, tuple(seen.values())
                walked = max(walked, (bound + 1) // size * size)
                if not full:
                    break
                cursor = page[-1].block.first
                limit *= 8
            limit *= 8  # the part before the start is read as the next page would have been
        return None, tuple(seen.values())

    async def release(self, scope: Scope, block: Subnet) -> bool:
        """Give `block` back if it is still this instance's; True when it is gone (or was not
        ours any more: either way it is not ours now)."""
        current = await self.read_block(scope, block)
        if current is None or not self.mine(current.owner):
            return True
        key = self.layout.block_key(scope, block)
        index = self.layout.owner_key(self.instance, scope, block)
        if await self.kv.txn([Unchanged(key, current.mod_revision)], [Delete(key), Delete(index)]):
            return True
        after = await self.read_block(scope, block)
        return after is None or not self.mine(after.owner)

    async def drop_index(self, indexed: IndexedBlock) -> None:
        """Delete an owner-index key whose block is gone or another's (left by a reclaim of an
        older pymacvlan), unless it changed since it was read."""
        await self.kv.txn([Unchanged(indexed.key, indexed.mod_revision)], [Delete(indexed.key)])


def _runs(blocks: Iterable[Subnet]) -> list[tuple[int, int]]:
    """`blocks` as runs of adjacent addresses, in order."""
    runs: list[tuple[int, int]] = []
    for block in sorted(blocks, key=lambda b: b.first):
        if runs and block.first == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], block.last)
        else:
            runs.append((block.first, block.last))
    return runs


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
        index = layout.owner_key(claimed.owner.instance, claimed.scope, claimed.block)
        if await kv.txn([Unchanged(key, claimed.mod_revision)], [Delete(key), Delete(index)]):
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
