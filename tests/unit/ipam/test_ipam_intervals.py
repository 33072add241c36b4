"""IntervalSet against a plain Python set: every operation, every query, random sequences."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ipam.intervals import IntervalSet

SMALL = st.integers(min_value=0, max_value=60)
PAIRS = st.tuples(SMALL, SMALL).map(lambda p: (min(p), max(p)))


def members(s: IntervalSet) -> set[int]:
    return {x for lo, hi in s.intervals() for x in range(lo, hi + 1)}


def from_set(values: set[int]) -> IntervalSet:
    return IntervalSet.from_points(values)


class IntervalSetMachine(RuleBasedStateMachine):
    """Random add/remove sequences keep IntervalSet equal to a set, with its invariant intact."""

    def __init__(self) -> None:
        super().__init__()
        self.model: set[int] = set()
        self.real = IntervalSet()

    @rule(x=SMALL)
    def add(self, x: int) -> None:
        self.real.add(x)
        self.model.add(x)

    @rule(x=SMALL)
    def discard(self, x: int) -> None:
        self.real.discard(x)
        self.model.discard(x)

    @rule(r=PAIRS)
    def add_range(self, r: tuple[int, int]) -> None:
        self.real.add_range(*r)
        self.model.update(range(r[0], r[1] + 1))

    @rule(r=PAIRS)
    def remove_range(self, r: tuple[int, int]) -> None:
        self.real.remove_range(*r)
        self.model.difference_update(range(r[0], r[1] + 1))

    @rule(points=st.lists(SMALL, max_size=40))
    def update(self, points: list[int]) -> None:
        self.real.update(IntervalSet.from_points(points))
        self.model.update(points)

    @rule(x=st.integers(min_value=-2, max_value=64))
    def queries(self, x: int) -> None:
        assert (x in self.real) == (x in self.model)
        above = [m for m in self.model if m >= x]
        assert self.real.next_present(x) == (min(above) if above else None)
        absent = x
        while absent in self.model:
            absent += 1
        assert self.real.next_absent(x) == absent

    @rule(r=PAIRS)
    def range_queries(self, r: tuple[int, int]) -> None:
        span = set(range(r[0], r[1] + 1))
        assert self.real.overlaps(*r) == bool(span & self.model)
        assert self.real.covers(*r) == (span <= self.model)

    @invariant()
    def same_members(self) -> None:
        self.real._check()
        assert members(self.real) == self.model
        assert self.real.size() == len(self.model)
        assert self.real.first() == (min(self.model) if self.model else None)
        assert self.real.last() == (max(self.model) if self.model else None)


TestIntervalSetMachine = IntervalSetMachine.TestCase
TestIntervalSetMachine.settings = settings(max_examples=200, stateful_step_count=40)


@given(st.sets(SMALL), st.sets(SMALL))
def test_set_algebra_matches_python_sets(a: set[int], b: set[int]) -> None:
    sa, sb = from_set(a), from_set(b)
    for result, expected in (
        (sa.union(sb), a | b),
        (sa.difference(sb), a - b),
        (sa.intersection(sb), a & b),
    ):
        result._check()
        assert members(result) == expected
    assert sa.intersection_size(sb) == len(a & b)
    assert sa == from_set(a)
    assert (sa == sb) == (a == b)


@given(st.lists(PAIRS, max_size=12))
def test_constructor_merges_overlapping_and_touching_intervals(
    pairs: list[tuple[int, int]],
) -> None:
    built = IntervalSet(pairs)
    built._check()
    assert members(built) == {x for lo, hi in pairs for x in range(lo, hi + 1)}


def test_runs_are_coalesced_so_a_full_pool_is_one_interval() -> None:
    s = IntervalSet()
    for x in range(1, 255):
        s.add(x)
    assert list(s.intervals()) == [(1, 254)]
    s.discard(100)
    assert list(s.intervals()) == [(1, 99), (101, 254)]
    assert s.next_absent(1) == 100
    assert s.next_absent(101) == 255


def test_huge_ranges_cost_nothing() -> None:
    # An IPv6 /64 worth of members is two ints.
    s = IntervalSet([(0, 2**64 - 1)])
    s.discard(2**63)
    assert s.run_count == 2
    assert s.size() == 2**64 - 1
    assert s.next_absent(0) == 2**63
