"""The narrow store interface of the IPAM state, and an in-memory fake for tests.

Rule: a store knows rows, not allocation rules. It offers four verbs: `probe` what it holds
without creating anything (the daemon's start-up check), `load` everything, `commit` one `Change`
atomically (all of it or nothing, durable when it returns), `close`. All calls come from one
worker thread, one at a time, so implementations need no locking of their own. A failed commit
raises `StoreError` and leaves the stored state as it was.

`MemoryStore` behaves like the SQLite store minus the disk, and can be told to fail the next
commits, which is how the tests prove that a failed commit leaves the service's memory unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ipam.errors import StoreError
from ipam.records import (
    AllocationRecord,
    Change,
    CursorRecord,
    DhcpLeaseRecord,
    LeaseRecord,
    QuarantineRecord,
    Snapshot,
)


@dataclass(frozen=True)
class FileSummary:
    """What a store holds, read without creating anything: the daemon compares the IPAM's and
    the driver's files before it opens either."""

    file: str
    blank: str | None  # why it holds nothing at all ("is missing", ...); None: it is a state file
    state_id: str | None  # the state directory's identity written in it, if any
    holds: tuple[tuple[str, int], ...]  # ("pool", 2), ("allocation", 7)


def damaged_record(name: str, detail: str) -> str:
    """The one line for a store whose rows cannot be used (changed by something else)."""
    return (
        f"{name} holds a record pymacvlan cannot read ({detail}): the file is damaged; restore "
        "the file from a backup, or move it aside to start over (then remove the old networks "
        "with docker network rm); see docs/install.md#troubleshooting"
    )


class IpamStore(Protocol):
    """Durable rows of the IPAM state."""

    @property
    def name(self) -> str:
        """What the store is, for messages: its file."""
        ...

    def probe(self) -> FileSummary:
        """What the store holds; creates, opens for good and migrates nothing."""
        ...

    def load(self) -> Snapshot:
        """Open if needed and read everything."""
        ...

    def commit(self, change: Change) -> None:
        """Apply `change` atomically and durably, or raise `StoreError` and change nothing."""
        ...

    def close(self) -> None: ...


class MemoryStore:
    """A dict-backed `IpamStore` for tests; keeps its rows across service instances."""

    def __init__(self) -> None:
        self.leases: dict[str, LeaseRecord] = {}
        self.allocations: dict[tuple[str, str], AllocationRecord] = {}
        self.quarantine: dict[tuple[str, str], QuarantineRecord] = {}
        self.cursors: dict[str, CursorRecord] = {}
        self.dhcp_leases: dict[tuple[str, str], DhcpLeaseRecord] = {}
        self.commits = 0
        self.fail_commits = 0  # the next N commits raise StoreError
        self.closed = False
        self.name = "the in-memory IPAM store"

    def probe(self) -> FileSummary:
        holds = (("pool", len(self.leases)), ("allocation", len(self.allocations)))
        return FileSummary(self.name, None, None, holds)

    def load(self) -> Snapshot:
        self.closed = False
        return Snapshot(
            leases=tuple(self.leases.values()),
            allocations=tuple(self.allocations.values()),
            quarantine=tuple(self.quarantine.values()),
            cursors=tuple(self.cursors.values()),
            dhcp_leases=tuple(self.dhcp_leases.values()),
        )

    def commit(self, change: Change) -> None:
        if self.closed:
            raise StoreError("the IPAM store is closed")
        if self.fail_commits > 0:
            self.fail_commits -= 1
            raise StoreError("cannot write the IPAM state: simulated failure")
        # Build the new state aside, then swap: all or nothing, like a transaction.
        leases = dict(self.leases)
        allocations = dict(self.allocations)
        quarantine = dict(self.quarantine)
        cursors = dict(self.cursors)
        dhcp_leases = dict(self.dhcp_leases)
        for lease in change.put_leases:
            leases[lease.pool_id] = lease
        for key in change.delete_allocations:
            allocations.pop(key, None)
        for qkey in change.delete_quarantine:
            quarantine.pop(qkey, None)
        for allocation in change.put_allocations:
            if allocation.pool_id not in leases:
                raise StoreError(f"allocation for unknown pool ID {allocation.pool_id!r}")
            allocations[(allocation.pool_id, allocation.address)] = allocation
        for record in change.put_quarantine:
            quarantine[(record.table_key, record.address)] = record
        for cursor in change.put_cursors:
            if cursor.pool_id not in leases:
                raise StoreError(f"cursor for unknown pool ID {cursor.pool_id!r}")
            cursors[cursor.pool_id] = cursor
        for dkey in change.delete_dhcp_leases:
            dhcp_leases.pop(dkey, None)
        for dhcp in change.put_dhcp_leases:
            if dhcp.pool_id not in leases:
                raise StoreError(f"DHCP lease for unknown pool ID {dhcp.pool_id!r}")
            dhcp_leases[(dhcp.pool_id, dhcp.address)] = dhcp
        for pool_id in change.delete_leases:
            if any(key[0] == pool_id for key in (*allocations, *dhcp_leases)):
                raise StoreError(f"pool ID {pool_id!r} still holds addresses")
            leases.pop(pool_id, None)
            cursors.pop(pool_id, None)
        self.leases, self.allocations = leases, allocations
        self.quarantine, self.cursors = quarantine, cursors
        self.dhcp_leases = dhcp_leases
        self.commits += 1

    def close(self) -> None:
        self.closed = True
