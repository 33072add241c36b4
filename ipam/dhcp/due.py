"""When each DHCP lease needs attention next: one min-heap for all of them.

Rule: one entry per lease is live (`put` replaces, `remove` forgets); the heap deletes lazily and
is rebuilt whenever stale entries outnumber the live ones, so it stays within twice the number of
leases (plus a small slack) however often leases are rescheduled. No I/O, no clock of its own.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Final, Generic, TypeVar

K = TypeVar("K", bound=Hashable)

_SLACK: Final = 64


class DueQueue(Generic[K]):
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._live: dict[K, tuple[float, int]] = {}
        self._order = itertools.count()  # ties keep insertion order; keys are never compared

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    @property
    def entries(self) -> int:
        """Heap entries, stale ones included (what the bound is about)."""
        return len(self._heap)

    def put(self, key: K, due: float) -> None:
        seq = next(self._order)
        self._live[key] = (due, seq)
        heapq.heappush(self._heap, (due, seq, key))
        if len(self._heap) > 2 * len(self._live) + _SLACK:
            self._compact()

    def remove(self, key: K) -> None:
        self._live.pop(key, None)

    def due_of(self, key: K) -> float | None:
        entry = self._live.get(key)
        return entry[0] if entry is not None else None

    def next_due(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> K | None:
        """The key due earliest, if it is due at `now`; it leaves the queue."""
        self._drop_stale()
        if not self._heap or self._heap[0][0] > now:
            return None
        _, _, key = heapq.heappop(self._heap)
        del self._live[key]
        return key

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap and self._live.get(heap[0][2]) != heap[0][:2]:
            heapq.heappop(heap)

    def _compact(self) -> None:
        self._heap = [(due, seq, key) for key, (due, seq) in self._live.items()]
        heapq.heapify(self._heap)
