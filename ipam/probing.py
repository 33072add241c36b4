"""Asking the LAN before handing an address out: what was asked lately, and what runs ahead.

A probe (an ARP probe, IPv6 duplicate address detection) waits a fraction of a second for an
answer. A `docker run` must not wait for it, so the IPAM probes the next candidates of a pool
ahead of time, after each hand-out and when a network appears, and remembers for a short while
which addresses nobody answered for. A request whose candidate was verified moments ago gets it
at once; only a cold pool (or an `--ip`) waits for its probe. For `KEEP_READY_FOR` seconds after a
pool's last hand-out (or its network's creation) its next candidates are probed again before the
memory gets old, so a container started now and then does not wait either; an idle pool sends
nothing.

Bounded: at most `VERIFIED_LIMIT` remembered answers (oldest forgotten first), one prefetch task
and one pending refresh per pool at a time.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Coroutine

# How long "nobody answered" stays true. Long enough to cover the pause between two `docker run`s
# of a script, short enough that a device switched on since then is seen by the next probe.
VERIFIED_FOR = 30.0
VERIFIED_LIMIT = 4096
# Candidates probed ahead of the next request, per pool.
PREFETCH = 2
# A pool in use probes its next candidates again every REFRESH_EVERY seconds, those verified more
# than REFRESH_OLDER_THAN seconds ago: a verified address is then never older than VERIFIED_FOR
# (12 + 10 + a probe's longest wait, 5 s, < 30). Two probes per pool every 20 s or so, for
# KEEP_READY_FOR seconds after the pool's last hand-out.
REFRESH_EVERY = 10.0
REFRESH_OLDER_THAN = 12.0
KEEP_READY_FOR = 600.0
# Candidates one request probes before it gives up (each one found in use is recorded).
MAX_CANDIDATES_PER_REQUEST = 8
# A pool whose request had to wait for its probe is in a burst (`docker compose up`, a script of
# `docker run -d`): for BURST_FOR seconds it probes this many candidates ahead, all at once, so
# that one wait serves the next BURST_PREFETCH containers instead of each waiting in turn.
BURST_PREFETCH = 16
BURST_FOR = 30.0


class Probing:
    """The verified-address memory and the prefetch tasks of one IPAM service."""

    def __init__(self) -> None:
        # (table key, address) -> when the LAN last stayed silent about it; insertion order.
        self._verified: OrderedDict[tuple[str, int], float] = OrderedDict()
        self._prefetching: dict[str, asyncio.Task[None]] = {}
        self._refresh: dict[str, asyncio.TimerHandle] = {}
        # Pools whose candidates changed while their prefetch ran: one more pass right after.
        self._again: dict[str, Callable[[], Coroutine[None, None, None]]] = {}
        # Pool ID -> when one of its requests last waited for a probe (bounded like _verified).
        self._missed: dict[str, float] = {}

    def missed(self, pool_id: str, now: float) -> None:
        """A request of `pool_id` found no verified candidate and waits for its probe."""
        self._missed.pop(pool_id, None)
        self._missed[pool_id] = now
        while len(self._missed) > VERIFIED_LIMIT:
            del self._missed[next(iter(self._missed))]

    def depth(self, pool_id: str, now: float) -> int:
        """How many candidates of `pool_id` to keep verified ahead."""
        last = self._missed.get(pool_id)
        if last is not None and 0 <= now - last <= BURST_FOR:
            return BURST_PREFETCH
        self._missed.pop(pool_id, None)
        return PREFETCH

    def verified(self, key: str, address: int, now: float, within: float = VERIFIED_FOR) -> bool:
        """Whether the LAN stayed silent about `address` in the last `within` seconds."""
        checked = self._verified.get((key, address))
        return checked is not None and 0 <= now - checked <= within

    def remember(self, key: str, address: int, now: float) -> None:
        self._verified.pop((key, address), None)
        self._verified[(key, address)] = now
        while len(self._verified) > VERIFIED_LIMIT:
            self._verified.popitem(last=False)

    def forget(self, key: str, address: int) -> None:
        self._verified.pop((key, address), None)

    @property
    def remembered(self) -> int:
        return len(self._verified)

    def prefetch(self, pool_id: str, work: Callable[[], Coroutine[None, None, None]]) -> None:
        """Run `work` for `pool_id` now, or right after the prefetch of that pool that runs."""
        running = self._prefetching.get(pool_id)
        if running is not None and not running.done():
            self._again[pool_id] = work
            return
        task = asyncio.create_task(work(), name=f"pymacvlan-probe-ahead-{pool_id[:40]}")
        self._prefetching[pool_id] = task
        task.add_done_callback(lambda t: self._done(pool_id, t))

    def refresh_later(self, pool_id: str, work: Callable[[], Coroutine[None, None, None]]) -> None:
        """Run `work` for `pool_id` again in `REFRESH_EVERY` seconds (replacing a pending one)."""
        pending = self._refresh.pop(pool_id, None)
        if pending is not None:
            pending.cancel()
        loop = asyncio.get_running_loop()
        self._refresh[pool_id] = loop.call_later(REFRESH_EVERY, self._fire, pool_id, work)

    def _fire(self, pool_id: str, work: Callable[[], Coroutine[None, None, None]]) -> None:
        self._refresh.pop(pool_id, None)
        self.prefetch(pool_id, work)

    def _done(self, pool_id: str, task: asyncio.Task[None]) -> None:
        if self._prefetching.get(pool_id) is task:
            del self._prefetching[pool_id]
        if not task.cancelled():
            task.exception()  # reported by the work itself; never "never retrieved"
            again = self._again.pop(pool_id, None)
            if again is not None:
                self.prefetch(pool_id, again)

    async def close(self) -> None:
        for pending in self._refresh.values():
            pending.cancel()
        self._refresh.clear()
        self._again.clear()
        tasks = list(self._prefetching.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._prefetching.clear()
