"""Sets of integers stored as sorted, disjoint, non-adjacent closed intervals.

Rule: memory and time depend on the number of runs, never on the number of members, so an IPv6
/64 (2**64 members) costs the same as a /24 when it is used the same way. Every operation is a
binary search plus at most one slice replacement (`list` memmove in C); nothing iterates over
members. The invariant, checked by `_check` in tests: `starts[i] <= ends[i] < starts[i+1] - 1`
(intervals are disjoint *and* never touch, so each run of consecutive members is one interval,
which is what lets `next_absent` jump over a whole run in one step).

This module knows nothing about IP addresses; `ipam.addresses` gives the integers their meaning.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator


class IntervalSet:
    """A mutable set of ints kept as sorted closed intervals `[start, end]`."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, intervals: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        pairs = sorted((lo, hi) for lo, hi in intervals if lo <= hi)
        for lo, hi in pairs:
            # Sorted input: each interval merges only with the last one kept.
            if self._ends and lo <= self._ends[-1] + 1:
                if hi > self._ends[-1]:
                    self._ends[-1] = hi
            else:
                self._starts.append(lo)
                self._ends.append(hi)

    @classmethod
    def from_points(cls, points: Iterable[int]) -> IntervalSet:
        """Build from members in any order in O(n log n), coalescing consecutive ones."""
        result = cls()
        starts, ends = result._starts, result._ends
        for x in sorted(set(points)):
            if ends and x == ends[-1] + 1:
                ends[-1] = x
            else:
                starts.append(x)
                ends.append(x)
        return result

    def copy(self) -> IntervalSet:
        result = IntervalSet()
        result._starts = self._starts.copy()
        result._ends = self._ends.copy()
        return result

    # ----------------------------------------------------------------- queries

    def __contains__(self, x: object) -> bool:
        if not isinstance(x, int):
            return False
        i = bisect_right(self._starts, x) - 1
        return i >= 0 and self._ends[i] >= x

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IntervalSet):
            return NotImplemented
        return self._starts == other._starts and self._ends == other._ends

    def __hash__(self) -> int:  # pragma: no cover - mutable, like set
        raise TypeError("unhashable type: 'IntervalSet'")

    def __repr__(self) -> str:
        return f"IntervalSet({list(self.intervals())!r})"

    def intervals(self) -> Iterator[tuple[int, int]]:
        """The runs, in ascending order, as closed `(start, end)` pairs."""
        return zip(self._starts, self._ends, strict=True)

    @property
    def run_count(self) -> int:
        return len(self._starts)

    def size(self) -> int:
        """Number of members. O(runs); meant for messages and statistics, not the hot path."""
        return sum(self._ends) - sum(self._starts) + len(self._starts)

    def first(self) -> int | None:
        return self._starts[0] if self._starts else None

    def last(self) -> int | None:
        return self._ends[-1] if self._ends else None

    def next_present(self, x: int) -> int | None:
        """The smallest member `>= x`, or None."""
        i = bisect_right(self._starts, x) - 1
        if i >= 0 and self._ends[i] >= x:
            return x
        i += 1
        return self._starts[i] if i < len(self._starts) else None

    def next_absent(self, x: int) -> int:
        """The smallest integer `>= x` that is not a member (jumps over the whole run)."""
        i = bisect_right(self._starts, x) - 1
        if i >= 0 and self._ends[i] >= x:
            return self._ends[i] + 1
        return x

    def overlaps(self, lo: int, hi: int) -> bool:
        """Whether any member lies in `[lo, hi]`."""
        nxt = self.next_present(lo)
        return nxt is not None and nxt <= hi

    def covers(self, lo: int, hi: int) -> bool:
        """Whether every integer of `[lo, hi]` is a member."""
        i = bisect_right(self._starts, lo) - 1
        return i >= 0 and self._ends[i] >= hi

    def intersection_size(self, other: IntervalSet) -> int:
        """|self ∩ other| in O(runs of both)."""
        total = 0
        a, b = self._starts, self._ends
        c, d = other._starts, other._ends
        i = j = 0
        while i < len(a) and j < len(c):
            lo = max(a[i], c[j])
            hi = min(b[i], d[j])
            if lo <= hi:
                total += hi - lo + 1
            if b[i] < d[j]:
                i += 1
            else:
                j += 1
        return total

    # --------------------------------------------------------------- mutation

    def add(self, x: int) -> None:
        self.add_range(x, x)

    def discard(self, x: int) -> None:
        self.remove_range(x, x)

    def add_range(self, lo: int, hi: int) -> None:
        """Add `[lo, hi]`, merging with every run it overlaps or touches."""
        if lo > hi:
            return
        starts, ends = self._starts, self._ends
        # First run that ends at or after lo - 1 (touching counts) ...
        j = bisect_left(ends, lo - 1)
        # ... up to the last run that starts at or before hi + 1.
        k = bisect_right(starts, hi + 1)
        if j < k:
            lo = min(lo, starts[j])
            hi = max(hi, ends[k - 1])
        starts[j:k] = [lo]
        ends[j:k] = [hi]

    def remove_range(self, lo: int, hi: int) -> None:
        """Remove `[lo, hi]`, splitting the runs that straddle its edges."""
        if lo > hi:
            return
        starts, ends = self._starts, self._ends
        j = bisect_left(ends, lo)  # first run that ends at or after lo
        k = bisect_right(starts, hi)  # runs j..k-1 overlap [lo, hi]
        if j >= k:
            return
        new_starts: list[int] = []
        new_ends: list[int] = []
        if starts[j] < lo:
            new_starts.append(starts[j])
            new_ends.append(lo - 1)
        if ends[k - 1] > hi:
            new_starts.append(hi + 1)
            new_ends.append(ends[k - 1])
        starts[j:k] = new_starts
        ends[j:k] = new_ends

    def update(self, other: IntervalSet) -> None:
        """In-place union. Linear merge when `other` is large, per-run insert when it is small."""
        if other.run_count <= 8:
            for lo, hi in other.intervals():
                self.add_range(lo, hi)
            return
        merged = IntervalSet([*self.intervals(), *other.intervals()])
        self._starts, self._ends = merged._starts, merged._ends

    def difference_update(self, other: IntervalSet) -> None:
        for lo, hi in other.intervals():
            self.remove_range(lo, hi)

    def union(self, other: IntervalSet) -> IntervalSet:
        result = self.copy()
        result.update(other)
        return result

    def difference(self, other: IntervalSet) -> IntervalSet:
        result = self.copy()
        result.difference_update(other)
        return result

    def intersection(self, other: IntervalSet) -> IntervalSet:
        out: list[tuple[int, int]] = []
        a, b = self._starts, self._ends
        c, d = other._starts, other._ends
        i = j = 0
        while i < len(a) and j < len(c):
            lo = max(a[i], c[j])
            hi = min(b[i], d[j])
            if lo <= hi:
                out.append((lo, hi))
            if b[i] < d[j]:
                i += 1
            else:
                j += 1
        return IntervalSet(out)

    def _check(self) -> None:
        """Assert the representation invariant (used by the property tests)."""
        assert len(self._starts) == len(self._ends)
        for i, (lo, hi) in enumerate(self.intervals()):
            assert lo <= hi
            if i + 1 < len(self._starts):
                assert hi + 1 < self._starts[i + 1], "runs must neither overlap nor touch"
