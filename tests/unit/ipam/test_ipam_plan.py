"""Per-host plans: `nodes=` splits are disjoint and cover the span; overlaps are always caught."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipam.addresses import AddressRange, Family
from ipam.errors import InvalidRequest
from ipam.plan import plan_from_ranges, split_among_nodes

NAMES = st.lists(
    st.from_regex(r"[a-z][a-z0-9.-]{0,8}", fullmatch=True), min_size=1, max_size=12, unique=True
)


@given(
    family=st.sampled_from(Family),
    first=st.integers(min_value=0, max_value=2**32 - 10_001),
    size=st.integers(min_value=1, max_value=10_000),
    nodes=NAMES,
)
def test_nodes_split_is_disjoint_contiguous_ordered_and_covers_the_span(
    family: Family, first: int, size: int, nodes: list[str]
) -> None:
    span = AddressRange(family, first, first + size - 1)
    if size < len(nodes):
        with pytest.raises(InvalidRequest, match="fewer than the"):
            split_among_nodes(span, tuple(nodes))
        return
    plan = split_among_nodes(span, tuple(nodes))
    assert plan.nodes == tuple(nodes)
    parts = [plan.ranges[n][0] for n in nodes]
    assert all(len(plan.ranges[n]) == 1 for n in nodes)
    assert parts[0].first == span.first
    assert parts[-1].last == span.last
    for a, b in itertools.pairwise(parts):
        assert a.last + 1 == b.first  # contiguous, in order, hence disjoint
    equal = size // len(nodes)
    assert all(p.size == equal for p in parts[:-1])
    assert parts[-1].size == equal + size % len(nodes)


def test_nodes_split_works_for_a_huge_ipv6_span() -> None:
    span = AddressRange(Family.V6, 1, 2**64 - 1)
    plan = split_among_nodes(span, ("a", "b", "c"))
    assert sum(plan.ranges[n][0].size for n in "abc") == span.size


RANGES = st.lists(
    st.tuples(st.sampled_from("abcd"), st.integers(0, 100), st.integers(0, 20)),
    min_size=1,
    max_size=10,
)


@given(RANGES)
def test_overlaps_between_nodes_are_refused_and_only_those(
    entries: list[tuple[str, int, int]],
) -> None:
    node_ranges: dict[str, tuple[AddressRange, ...]] = {}
    owners: dict[int, set[str]] = {}
    for node, first, length in entries:
        r = AddressRange(Family.V4, first, first + length)
        node_ranges[node] = (*node_ranges.get(node, ()), r)
        for x in range(r.first, r.last + 1):
            owners.setdefault(x, set()).add(node)
    clash = any(len(nodes) > 1 for nodes in owners.values())
    if clash:
        with pytest.raises(InvalidRequest, match=r"^invalid address plan: ranges of nodes "):
            plan_from_ranges(node_ranges)
    else:
        plan = plan_from_ranges(node_ranges)
        for node, ranges in plan.ranges.items():
            covered = {x for r in ranges for x in range(r.first, r.last + 1)}
            assert covered == {x for x, nodes in owners.items() if node in nodes}
