"""Per-host address plans: which part of a pool each node hands out automatically.

Rule: the same `docker network create` typed unchanged on every host must give each host its own
disjoint part of the pool, so a plan is a pure function of the options and the pool: nothing here
depends on which host evaluates it. Two ways to write one:

* `range.<node>=<r>[,<r>...]`: explicit ranges per node. A node may have several ranges (they are
  merged); ranges of *different* nodes must not overlap.
* `nodes=<a>,<b>,<c>`: the span (the ip-range, or the subnet minus its reserved addresses) is cut
  into N equal contiguous parts in the listed order; the last node also gets the remainder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ipam.addresses import AddressRange, describe_ranges, ranges_to_set, set_to_ranges
from ipam.errors import InvalidRequest

PlanSource = Literal["range", "nodes"]


@dataclass(frozen=True)
class NodePlan:
    """The plan of one pool (one family): node name -> that node's ranges (sorted, merged)."""

    source: PlanSource
    ranges: Mapping[str, tuple[AddressRange, ...]]

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(self.ranges)

    def describe_nodes(self) -> str:
        return ", ".join(f'"{node}"' for node in self.ranges)


def split_among_nodes(span: AddressRange, nodes: tuple[str, ...]) -> NodePlan:
    """Cut `span` into `len(nodes)` contiguous parts of equal size, the remainder to the last."""
    if not nodes:  # pragma: no cover - the option parser refuses an empty list
        raise InvalidRequest("invalid --ipam-opt nodes: expected at least one node name")
    if span.size < len(nodes):
        raise InvalidRequest(
            f"invalid --ipam-opt nodes={','.join(nodes)}: {span} has {span.size} usable "
            f"address{'es' if span.size != 1 else ''}, fewer than the {len(nodes)} nodes"
        )
    part = span.size // len(nodes)
    ranges: dict[str, tuple[AddressRange, ...]] = {}
    for index, node in enumerate(nodes):
        first = span.first + index * part
        last = span.last if index == len(nodes) - 1 else first + part - 1
        ranges[node] = (AddressRange(span.family, first, last),)
    return NodePlan("nodes", ranges)


def plan_from_ranges(node_ranges: Mapping[str, tuple[AddressRange, ...]]) -> NodePlan:
    """Merge each node's own ranges and refuse overlaps between different nodes.

    After merging, each node's ranges are disjoint, so a sweep in address order that compares
    every range with the one reaching furthest so far finds any overlap between nodes (if a range
    overlaps anything earlier, it overlaps the one reaching furthest, and that one belongs to
    another node because a node's own merged ranges never overlap).
    """
    merged: dict[str, tuple[AddressRange, ...]] = {}
    for node, ranges in node_ranges.items():
        family = ranges[0].family
        merged[node] = set_to_ranges(family, ranges_to_set(list(ranges)))
    sweep = sorted(
        ((r, node) for node, ranges in merged.items() for r in ranges),
        key=lambda item: (item[0].first, item[0].last),
    )
    furthest: tuple[AddressRange, str] | None = None
    for current, node in sweep:
        if furthest is not None and current.first <= furthest[0].last:
            other_range, other_node = furthest
            raise InvalidRequest(
                f'invalid address plan: ranges of nodes "{other_node}" '
                f"({_as_given(node_ranges[other_node], current)}) and "
                f'"{node}" ({_as_given(node_ranges[node], other_range)}) overlap'
            )
        if furthest is None or current.last > furthest[0].last:
            furthest = (current, node)
    return NodePlan("range", merged)


def _as_given(ranges: tuple[AddressRange, ...], other: AddressRange) -> str:
    """The ranges as the user wrote them that overlap `other`, for the message."""
    hits = [r for r in ranges if r.overlaps(other)]
    return describe_ranges(hits or list(ranges))
