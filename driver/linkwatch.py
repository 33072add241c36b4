"""Notice owned links that vanish while the plugin runs, and make them again.

Someone runs ``ip link del eth1.30`` or deletes the host shim, or a NIC is replugged (its VLAN
links and the shim on it go with it, and come back only if somebody makes them): the kernel says
so on its link notifications (driver/netlink/events.py), and this watcher runs the restore pass
(driver/restore.py) under the driver's lock. A parent that was missing and appears brings its
owned links and shim back the same way, and a network created before its parent existed gets
them when it comes.

Bounded, whatever the host does:

* one task, one subscription; notifications arrive as bounded batches of names and indices,
  never as a queue; a batch that lost some (the kernel's buffer overflowed) makes the pass look
  at everything (it always reads the kernel, never the notifications' contents);
* a change is acted on after ``settle`` seconds, so a burst (a replug) is one pass, and changes
  that concern none of our links (every container start makes some) cost nothing;
* a link made again (or tried) ``burst`` times within ``window`` seconds is being fought over (a
  program deletes what it does not know) or cannot be made: it is left alone until the window has
  passed, with one line;
* a restore that failed is tried again after ``retry`` seconds (within that limit); a
  subscription that failed, after ``retry`` seconds, doubling up to ``MAX_RETRY``.

Links that are not ours are never touched: the pass makes only links recorded as ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable

from driver.context import Context
from driver.errors import DriverError
from driver.links import LinkChanges, LinkChangeSource, LinkChangeStream
from driver.logs import log
from driver.restore import RestoreReport, log_waiting, restore_links
from driver.shim import host_address_of, shim_record
from driver.state import State

MAX_RETRY = 300.0  # seconds between attempts to subscribe, at most

# Runs a pass under the driver's lock (NetworkDriver._serialized).
Locked = Callable[[Callable[[], Awaitable[RestoreReport]]], Awaitable[RestoreReport]]


def watched_names(state: State) -> set[str]:
    """The link names whose changes concern the restore: our links, and the links they hang off
    (a base or parent that comes back brings them back)."""
    names: set[str] = set()
    for link in state.owned.values():
        names.add(link.name)
        if link.base:
            names.add(link.base)
    for config in state.networks.values():
        if host_address_of(config) is not None:
            names.update((config.parent.name, shim_record(config).name))
    return names


class RestoreLimiter:
    """At most ``burst`` restores of one link within ``window`` seconds. Holds the times of the
    last ``burst`` restores of each link we own, nothing more."""

    def __init__(self, burst: int, window: float) -> None:
        self._burst = burst
        self._window = window
        self._times: dict[str, deque[float]] = {}

    def held(self, now: float) -> set[str]:
        """The links whose restores are used up at ``now``."""
        return {name for name in self._times if self.free_at(name) > now}

    def free_at(self, name: str) -> float:
        """When ``name`` may be restored again (at once if that is in the past)."""
        times = self._times.get(name)
        if times is None or len(times) < self._burst:
            return float("-inf")
        return times[0] + self._window

    def record(self, names: Iterable[str], now: float) -> None:
        for name in names:
            self._times.setdefault(name, deque(maxlen=self._burst)).append(now)

    def keep_only(self, names: Collection[str]) -> None:
        """Forget links we no longer own."""
        for name in [n for n in self._times if n not in names]:
            del self._times[name]


class LinkWatcher:
    """The watching task: ``start()`` after the state is loaded, ``await stop()`` at shutdown."""

    def __init__(
        self,
        ctx: Context,
        source: LinkChangeSource,
        locked: Locked,
        *,
        waiting: Collection[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ctx = ctx
        self._source = source
        self._locked = locked
        self._timing = ctx.settings.link_watch
        self._clock = clock
        self._limiter = RestoreLimiter(self._timing.burst, self._timing.window)
        self._indices: set[int] = set()  # of our links as the last pass found them
        self._waiting: set[str] = set(waiting)  # links said to wait for a missing one
        self._held: set[str] = set()  # links said to be held back
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pymacvlan-link-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        retry = self._timing.retry
        while True:
            try:
                stream = await self._source.subscribe()
            except DriverError as exc:
                log.error("cannot watch the host's links", error=str(exc), retry_in_seconds=retry)
                await asyncio.sleep(retry)
                retry = min(retry * 2, MAX_RETRY)
                continue
            retry = self._timing.retry
            try:
                await self._follow(stream)
            except DriverError as exc:
                log.error(
                    "watching the host's links failed", error=str(exc), retry_in_seconds=retry
                )
                await asyncio.sleep(retry)
            except Exception:  # a bug of ours: worth its traceback, not the end of the watching
                log.exception("watching the host's links failed", retry_in_seconds=retry)
                await asyncio.sleep(retry)
            finally:
                stream.close()

    async def _follow(self, stream: LinkChangeStream) -> None:
        # Subscribed first, looked second: nothing that happens in between goes unseen.
        wake = await self._pass()
        loop = asyncio.get_running_loop()
        while True:
            deadline = None if wake is None else loop.time() + wake
            changes = await self._next(stream, deadline)
            while changes is not None and not self._concerns(changes):
                changes = await self._next(stream, deadline)
            await asyncio.sleep(self._timing.settle)
            wake = await self._pass()

    @staticmethod
    async def _next(stream: LinkChangeStream, deadline: float | None) -> LinkChanges | None:
        """The next batch, or None when ``deadline`` (loop time) comes first."""
        try:
            async with asyncio.timeout_at(deadline):
                return await stream.next()
        except TimeoutError:
            return None

    def _concerns(self, changes: LinkChanges) -> bool:
        return (
            changes.overrun
            or not changes.names.isdisjoint(watched_names(self._ctx.state))
            or not changes.indices.isdisjoint(self._indices)
        )

    async def _pass(self) -> float | None:
        """One restore pass; returns in how many seconds the next is due if nothing changes
        (None: only when something changes)."""
        hold = self._limiter.held(self._clock())
        report = await self._locked(lambda: restore_links(self._ctx, thorough=False, hold=hold))
        now = self._clock()
        self._limiter.record([*report.restored, *report.failed], now)
        self._limiter.keep_only(self._ctx.state.owned)
        self._indices = report.indices
        self._report(report, now)
        due = [self._limiter.free_at(name) - now for name in report.held]
        if report.failed:
            due.append(self._timing.retry)
        return max(0.0, min(due)) if due else None

    def _report(self, report: RestoreReport, now: float) -> None:
        """Say what waits or is held back, once each time it starts to."""
        log_waiting(report, already=self._waiting)
        self._waiting = set(report.waiting)
        for name in report.held:
            if name not in self._held:
                log.warning(
                    "a link of ours keeps vanishing (something deletes it) or cannot be made "
                    "again; leaving it alone for a while",
                    link=name,
                    restores=self._timing.burst,
                    within_seconds=self._timing.window,
                    again_in_seconds=round(self._limiter.free_at(name) - now, 1),
                )
        self._held = set(report.held)
