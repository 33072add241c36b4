"""Carving blocks out of a pool, and the compares that make claiming one atomic. No I/O.

Rules:

* A block is an aligned CIDR (`198.18.0.64/26`), carved from the pool's span (its ip-range,
  else its subnet), which is itself a CIDR at least as large: a span is always a whole number of
  blocks.
* Two claimed blocks of one LAN and family never overlap. Blocks of different sizes may coexist
  (pools with different `block_size`, single-address blocks for `--ip`), so the claim
  transaction checks, atomically with the write, that no claimed block starts inside the new
  one (one key range, see `ipam.cluster.layout`) and that none of the blocks that could enclose
  it exists (one key per larger prefix length, down to `MIN_BLOCK_PREFIXLEN`). Two CIDRs overlap
  only if one contains the other, so these compares are complete.
* Each host starts its search at its own place in the span (a hash of its node name) and walks
  forward, wrapping: hosts that claim at the same moment rarely race for the same block, and one
  host's blocks tend to sit next to each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from ipam.addresses import Subnet
from ipam.cluster.kv import Absent
from ipam.cluster.layout import Layout, Scope
from ipam.intervals import IntervalSet
from ipam.options import MIN_BLOCK_PREFIXLEN


def block_count(span: Subnet, prefixlen: int) -> int:
    """How many /prefixlen blocks the span holds."""
    return 1 << (prefixlen - span.prefixlen)


def start_index(node: str, count: int) -> int:
    """Where `node` starts looking among `count` blocks: stable per node, spread across nodes."""
    digest = hashlib.sha256(node.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def free_blocks(span: Subnet, prefixlen: int, taken: IntervalSet, start: int) -> Iterator[Subnet]:
    """The /prefixlen blocks of `span` that overlap nothing in `taken`, from block number `start`
    onwards, wrapping around to the beginning.

    Each step yields a block or jumps past a whole run of `taken`, so the walk costs
    O(runs of `taken`) and not O(blocks): an IPv6 /64 holds 2**58 blocks of /122.
    """
    if prefixlen < span.prefixlen:
        raise ValueError(f"a /{prefixlen} block does not fit in {span}")
    size = 1 << (span.family.bits - prefixlen)
    first = span.first + (start % block_count(span, prefixlen)) * size
    yield from _walk(span, prefixlen, size, taken, first, span.last)
    yield from _walk(span, prefixlen, size, taken, span.first, first - 1)


def free_blocks_between(
    span: Subnet, prefixlen: int, taken: IntervalSet, lo: int, hi: int
) -> Iterator[Subnet]:
    """The /prefixlen blocks of `span` that lie wholly inside `[lo, hi]` and overlap nothing in
    `taken`, in address order (the part of the span a search has read so far)."""
    size = 1 << (span.family.bits - prefixlen)
    first = max(span.first, -(-lo // size) * size)
    yield from _walk(span, prefixlen, size, taken, first, min(hi, span.last))


def _walk(
    span: Subnet, prefixlen: int, size: int, taken: IntervalSet, lo: int, hi: int
) -> Iterator[Subnet]:
    x = lo
    while x + size - 1 <= hi:
        hit = taken.next_present(x)
        if hit is None or hit > x + size - 1:
            yield Subnet(span.family, x, prefixlen)
            x += size
            continue
        # Jump past the taken run, up to the next block boundary (blocks are aligned to their
        # size, in absolute terms, because the span is).
        beyond = taken.next_absent(hit)
        x = -(-beyond // size) * size


def taken_set(blocks: list[Subnet]) -> IntervalSet:
    return IntervalSet((b.first, b.last) for b in blocks)


def claim_compares(layout: Layout, scope: Scope, block: Subnet) -> list[Absent]:
    """The compares under which `block` may be written: no claimed block overlaps it."""
    family = block.family
    start, end = layout.starting_within(scope, block.first, block.last)
    compares = [Absent(start, end)]  # the block itself and every block inside it
    for prefixlen in range(MIN_BLOCK_PREFIXLEN[family], block.prefixlen):
        mask = ~((1 << (family.bits - prefixlen)) - 1)
        enclosing = Subnet(family, block.first & mask, prefixlen)
        if enclosing.first != block.first:  # those starting at block.first are in the range
            compares.append(Absent(layout.block_key(scope, enclosing)))
    return compares


def grid_blocks_touched(span: Subnet, prefixlen: int, blocks: list[Subnet]) -> int:
    """How many /prefixlen blocks of `span` overlap at least one of `blocks` (for status)."""
    size = 1 << (span.family.bits - prefixlen)
    touched: set[int] = set()
    extra = 0
    for block in blocks:
        if not (block.first <= span.last and span.first <= block.last):
            continue
        if block.size >= size:
            lo = max(block.first, span.first)
            hi = min(block.last, span.last)
            extra += (hi - lo + 1) // size
        else:
            touched.add(block.first // size)
    return extra + len(touched)
