"""Keeping DHCP leases alive for as long as their containers run: one background task for all.

Rules:

* **One loop, one heap.** Every lease has one due time in a `DueQueue`; the loop sleeps until the
  earliest (or until a lease is added or removed, or at most `recheck` seconds, so that a jump of
  the wall clock is noticed) and starts the due attempts, at most `parallel` at a time. Memory and
  tasks are bounded by the number of leases, never by time.
* **The timeline is RFC 2131's** (`ipam.dhcp.timeline`): renew at T1, rebind at T2, spaced retries.
  Every success is committed (state "bound") before the next step is planned, so a restart
  resumes from the books: leases loaded at start-up are scheduled at once when overdue.
* **Nothing is silent.** A failed renewal is recorded (state "renewing"/"rebinding" and the
  problem) and logged when the state changes; a NAK ("refused") and the end of a lease
  ("expired") are ERROR lines naming the container's address, MAC and what failed. The container
  keeps its address (it cannot be readdressed while it runs), and the plugin asks the server for
  that same address again every `retry_floor` seconds until it gets it. A routine renewal is a
  debug line.
* **The books win races.** A lease released (or taken again) while the LAN was asked is never
  written back; a grant nobody holds any more is released on the LAN.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from ipam.dhcp.books import (
    Books,
    LeaseKey,
    grant_of,
    identity_of,
    place_of,
    plan_save,
    renewed,
)
from ipam.dhcp.due import DueQueue
from ipam.dhcp.exchange import Failed, Failure, Granted, exchange, release
from ipam.dhcp.settings import DhcpSettings
from ipam.dhcp.timeline import (
    BOUND,
    EXPIRED,
    LOST,
    REBINDING,
    REFUSED,
    RENEWING,
    Action,
    action_at,
    due_after_failure,
    first_due,
)
from ipam.errors import IpamError
from ipam.lan import DhcpGrant, DhcpIdentity, PoolPlace
from ipam.records import DhcpLeaseRecord

LOOP_NAME: Final = "pymacvlan-dhcp-renewals"


class LeaseKeeper:
    def __init__(self, books: Books, settings: DhcpSettings) -> None:
        self._books = books
        self._settings = settings
        self._queue: DueQueue[LeaseKey] = DueQueue()
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._running: dict[asyncio.Task[None], LeaseKey] = {}
        # Leases whose last attempt failed: tried again at once when a LAN is attached.
        self._failing: set[LeaseKey] = set()
        self._lans = 0  # LANs attached so far: an attempt that began on an older one retries
        self._closed = False

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Schedule every lease in the books and start the loop (after the service loaded)."""
        if self._loop is not None or self._closed:
            return
        now = self._books.clock()
        for key, record in self._books.allocator().dhcp_leases.items():
            self._queue.put(key, first_due(record, now))
        self._loop = asyncio.create_task(self._run(), name=LOOP_NAME)

    async def close(self) -> None:
        self._closed = True
        tasks = [t for t in (self._loop, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop = None
        self._running.clear()

    @property
    def scheduled(self) -> int:
        """Leases waiting for their next step (diagnostics, and the bound's test)."""
        return len(self._queue)

    @property
    def queue_entries(self) -> int:
        return self._queue.entries

    # -------------------------------------------------- what the books tell it

    def track(self, record: DhcpLeaseRecord) -> None:
        """A lease was granted (or taken again): its timeline starts over."""
        key = (record.pool_id, record.address)
        self._failing.discard(key)
        self._queue.put(key, first_due(record, self._books.clock()))
        self._wake.set()

    def forget(self, key: LeaseKey) -> None:
        """A lease was released."""
        self._queue.remove(key)
        self._failing.discard(key)
        self._wake.set()

    def lan_attached(self) -> None:
        """A (new) LAN: what failed because the LAN could not be asked is tried again now."""
        now = self._books.clock()
        self._lans += 1
        for key in self._failing:
            if key in self._queue:
                self._queue.put(key, now)
        self._wake.set()

    # ----------------------------------------------------------------- loop

    async def _run(self) -> None:
        settings = self._settings
        while True:
            self._wake.clear()
            now = self._books.clock()
            # A finished attempt has rescheduled its lease (its last act); its done-callback may
            # not have run yet, so it must not count as busy, or its next step would be dropped.
            for task in [t for t in self._running if t.done()]:
                del self._running[task]
            busy = set(self._running.values())
            while len(self._running) < settings.parallel:
                key = self._queue.pop_due(now)
                if key is None:
                    break
                if key in busy:
                    continue  # its attempt still runs and schedules it again as it ends
                task = asyncio.create_task(self._attempt(key), name="pymacvlan-dhcp-renewal")
                self._running[task] = key
                busy.add(key)
                task.add_done_callback(self._ended)
            due = self._queue.next_due()
            if due is None or len(self._running) >= settings.parallel:
                await self._wake.wait()
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(max(due - now, 0.0), settings.recheck)):
                    await self._wake.wait()

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._wake.set()

    async def _attempt(self, key: LeaseKey) -> None:
        books = self._books
        record = books.allocator().dhcp_leases.get(key)
        if record is None:
            return
        # Every next step counts from when this one began (RFC 2131 times its retries from the
        # request), not from when the exchange ended.
        now = books.clock()
        lans = self._lans
        try:
            left, due = await self._step(record, now)
        except Exception as exc:  # a bug of ours: report it, keep the lease on the timeline
            books.report(
                "error",
                "DHCP lease upkeep crashed",
                {**self._fields(record), "error": f"{type(exc).__name__}: {exc}"},
            )
            left, due = record, now + self._settings.retry_floor
        current = books.allocator().dhcp_leases.get(key)
        if current is None or self._closed:
            return
        if current != left:
            due = first_due(current, now)  # granted again meanwhile: its own timeline
        elif key in self._failing and lans != self._lans:
            due = books.clock()  # it failed on the LAN it began with; there is a new one
        self._queue.put(key, due)

    async def _step(self, record: DhcpLeaseRecord, now: float) -> tuple[DhcpLeaseRecord, float]:
        """Do what is due for `record`; (the record left in the books, when to look again)."""
        books = self._books
        lease = books.allocator().leases.get(record.pool_id)
        if lease is None:
            return record, now + self._settings.retry_floor
        place = place_of(lease.record)
        action = action_at(record, now)
        if action is Action.WAIT:
            return record, first_due(record, now)
        if action is Action.EXPIRE:
            last = record.problem or "no DHCP server answered the renewals"
            saved = await self._save(record, record._replace(state=EXPIRED, problem=last))
            if saved is None:
                return record, now
            self._lost(saved, "DHCP lease expired", last)
            record, action = saved, Action.REACQUIRE
        if action is Action.REACQUIRE:
            return await self._reacquire(place, record, now)
        return await self._renew(place, record, now, rebinding=action is Action.REBIND)

    async def _renew(
        self, place: PoolPlace, record: DhcpLeaseRecord, now: float, *, rebinding: bool
    ) -> tuple[DhcpLeaseRecord, float]:
        books = self._books
        identity = identity_of(record)
        outcome = await exchange(
            lambda: books.lan().dhcp_renew(place, identity, grant_of(record), rebinding=rebinding),
            books.clock,
            self._settings.exchange_timeout,
        )
        if isinstance(outcome, Granted):
            grant = outcome.grant
            if grant.address != record.address:
                await self._release_stray(place, identity, grant, record)
                return await self._refused(
                    record, f"the server answered with another address, {grant.address}", now
                )
            new = renewed(record, grant, outcome.started)
            return await self._bound(place, identity, record, new, now)
        if outcome.failure is Failure.REFUSED:
            return await self._refused(record, outcome.detail, now)
        problem = _problem(outcome, record, rebinding=rebinding)
        state = REBINDING if rebinding else RENEWING
        saved = await self._save(record, record._replace(state=state, problem=problem))
        if saved is None:
            return record, now
        if state != record.state:
            books.report(
                "warning",
                "DHCP rebinding failed" if rebinding else "DHCP renewal failed",
                {**self._fields(saved), "problem": problem, "retry": "with RFC 2131 spacing"},
            )
        self._failing.add((record.pool_id, record.address))
        due = due_after_failure(saved, now, self._settings.retry_floor)
        if outcome.failure is Failure.UNAVAILABLE:
            due = min(due, now + self._settings.unavailable_retry)
        return saved, due

    async def _reacquire(
        self, place: PoolPlace, record: DhcpLeaseRecord, now: float
    ) -> tuple[DhcpLeaseRecord, float]:
        books = self._books
        identity = identity_of(record)
        outcome = await exchange(
            lambda: books.lan().dhcp_acquire(place, identity, record.address),
            books.clock,
            self._settings.exchange_timeout,
        )
        state = record.state
        retry = self._settings.retry_floor
        if isinstance(outcome, Granted):
            grant = outcome.grant
            if grant.address == record.address:
                new = renewed(record, grant, outcome.started)
                return await self._bound(place, identity, record, new, now)
            await self._release_stray(place, identity, grant, record)
            problem = (
                f"the DHCP server offers {grant.address} instead (the container cannot change "
                "its address while it runs)"
            )
        elif outcome.failure is Failure.REFUSED:
            state, problem = REFUSED, f"the DHCP server refused it: {outcome.detail}"
        else:
            problem = _problem(outcome, record, rebinding=True)
            if outcome.failure is Failure.UNAVAILABLE:
                retry = min(retry, self._settings.unavailable_retry)
        saved = await self._save(record, record._replace(state=state, problem=problem))
        if saved is None:
            return record, now
        if state != record.state:
            self._lost(saved, "DHCP lease refused", problem)
        self._failing.add((record.pool_id, record.address))
        return saved, now + retry

    async def _refused(
        self, record: DhcpLeaseRecord, reason: str, now: float
    ) -> tuple[DhcpLeaseRecord, float]:
        problem = f"the DHCP server refused it: {reason}"
        saved = await self._save(record, record._replace(state=REFUSED, problem=problem))
        if saved is None:
            return record, now
        if record.state != REFUSED:
            self._lost(saved, "DHCP lease refused", problem)
        self._failing.add((record.pool_id, record.address))
        return saved, now + self._settings.retry_floor

    async def _bound(
        self,
        place: PoolPlace,
        identity: DhcpIdentity,
        record: DhcpLeaseRecord,
        new: DhcpLeaseRecord,
        now: float,
    ) -> tuple[DhcpLeaseRecord, float]:
        books = self._books
        saved = await self._save(record, new)
        if saved is None:
            await self._release_stray(place, identity, grant_of(new), record)
            return record, now
        self._failing.discard((record.pool_id, record.address))
        if record.state != BOUND:
            books.report(
                "info",
                "DHCP lease regained" if record.state in LOST else "DHCP lease renewed",
                {**self._fields(saved), "after": record.problem or record.state},
            )
        else:
            # Routine (once per T1 per container): seen only by an operator who asks for it.
            books.report(
                "debug",
                "DHCP lease renewed",
                {**self._fields(saved), "lease_seconds": saved.lease_seconds},
            )
        return saved, first_due(saved, now)

    # ------------------------------------------------------------ machinery

    async def _save(
        self, expected: DhcpLeaseRecord, new: DhcpLeaseRecord
    ) -> DhcpLeaseRecord | None:
        """Commit `new` over `expected`: the record the books hold after it (`expected` when
        the store failed), None when the lease was released or taken again meanwhile."""
        books = self._books
        try:
            ours = await books.mutate(lambda now: plan_save(books.allocator(), expected, new))
        except IpamError as exc:
            books.report(
                "error",
                "DHCP lease state not saved",
                {**self._fields(new), "state": new.state, "error": str(exc)},
            )
            return expected
        return new if ours else None

    async def _release_stray(
        self, place: PoolPlace, identity: DhcpIdentity, grant: DhcpGrant, record: DhcpLeaseRecord
    ) -> None:
        await release_unheld(self._books, self._settings, place, identity, grant, record.pool_id)

    def _fields(self, record: DhcpLeaseRecord) -> dict[str, object]:
        lease = self._books.allocator().leases.get(record.pool_id)
        return _fields_of(record, lease.record.subnet if lease is not None else None)

    def _lost(self, record: DhcpLeaseRecord, event: str, problem: str) -> None:
        self._books.report(
            "error",
            event,
            {
                **self._fields(record),
                "problem": problem,
                "action": (
                    f"the container keeps {record.address} without a lease; asking the DHCP "
                    f"server for it again every {self._settings.retry_floor:g} s"
                ),
            },
        )


async def release_unheld(
    books: Books,
    settings: DhcpSettings,
    place: PoolPlace,
    identity: DhcpIdentity,
    grant: DhcpGrant,
    pool_id: str,
) -> None:
    """Give a grant back to the server, best effort, unless the books hold that address for the
    same client (then it is that lease's own binding on the server)."""
    current = books.allocator().dhcp_leases.get((pool_id, grant.address))
    if current is not None and current.client_id == identity.client_id.hex():
        return
    await send_release(books, settings, place, identity, grant)


async def send_release(
    books: Books, settings: DhcpSettings, place: PoolPlace, identity: DhcpIdentity, grant: DhcpGrant
) -> None:
    """A DHCPRELEASE, best effort: a LAN that cannot take it is logged, never an error."""
    problem = await release(
        lambda: books.lan().dhcp_release(place, identity, grant), settings.release_timeout
    )
    if problem is not None:
        books.report(
            "warning",
            "DHCP release not sent",
            {"address": grant.address, "mac": identity.mac, "problem": problem},
        )


def _problem(outcome: Failed, record: DhcpLeaseRecord, *, rebinding: bool) -> str:
    if outcome.failure is Failure.NO_ANSWER:
        if rebinding:
            return f"no DHCP server answered within {outcome.detail} s"
        return f"the DHCP server {record.server_id} did not answer within {outcome.detail} s"
    return f"the LAN could not be asked: {outcome.detail}"


def _fields_of(record: DhcpLeaseRecord, subnet: str | None) -> dict[str, object]:
    return {
        "address": record.address,
        "subnet": subnet,
        "mac": record.mac,
        "endpoint": record.endpoint,
        "server": record.server_id,
        "state": record.state,
    }
