"""The durable facts of the IPAM state, and a change to them.

Rule: these rows are the whole truth. The in-memory allocator is rebuilt from a `Snapshot` at
start-up and moves forward only by applying a `Change` *after* the store committed that same
`Change`; so memory can never hold something the disk does not, and one code path (`apply`)
serves both start-up and every mutation. Addresses are stored as canonical text so that the
database reads well with the `sqlite3` shell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple


class Kind(StrEnum):
    """Why an address is held. Decides whether a second holder may share it."""

    GATEWAY = "gateway"  # RequestAddressType=com.docker.network.gateway
    RESERVED = "reserved"  # specific, no endpoint name: --aux-address (--ip too on Docker < 29)
    STATIC = "static"  # a specific address for a named endpoint: --ip / --ip6
    DYNAMIC = "dynamic"  # chosen by the allocator

    @property
    def shareable(self) -> bool:
        """Gateways and reservations are infrastructure that several networks on one LAN name."""
        return self in (Kind.GATEWAY, Kind.RESERVED)


class LeaseRecord(NamedTuple):
    """One pool lease: one distinct RequestPool configuration and its reference count."""

    pool_id: str
    address_space: str
    lan: str
    subnet: str
    sub_pool: str  # "" when none
    options: Mapping[str, str]  # the user's --ipam-opt map (Docker's own keys dropped)
    refcount: int
    created_at: float


class AllocationRecord(NamedTuple):
    """One lease's hold on one address of a table (a shared address has one row per lease)."""

    table_key: str
    address: str
    pool_id: str
    kind: Kind
    refcount: int
    mac: str | None
    endpoint: str | None
    allocated_at: float


class QuarantineRecord(NamedTuple):
    """A released address resting until `until` before automatic reuse."""

    table_key: str
    address: str
    released_at: float
    until: float
    # The endpoint (container) name that last held it, when Docker sent one (Docker >= 29).
    endpoint: str | None = None
    # Not released by a container but found in use on the LAN by a device we did not know
    # (it answered a probe): that device's MAC. It rests until `until`, then is probed again.
    lan_mac: str | None = None


class DhcpLeaseRecord(NamedTuple):
    """An address leased from the LAN's DHCP server for one endpoint of a DHCP pool.

    The matching `AllocationRecord` keeps it out of every other hand-out; this row is what the
    plugin needs to renew, rebind and release it, also after a restart."""

    pool_id: str
    address: str  # canonical text, as in the allocation
    prefixlen: int  # from the server's subnet mask
    mac: str  # the container's MAC: the Ethernet source and chaddr of every message
    client_id: str  # option 61, hex
    hostname: str | None  # option 12, when Docker named the endpoint
    endpoint: str | None
    server_id: str  # option 54
    server_mac: str  # where unicast renewals go
    router: str | None
    lease_seconds: int
    renew_seconds: int  # T1, from acquired_at
    rebind_seconds: int  # T2, from acquired_at
    acquired_at: float
    state: str  # "bound", "renewing", "rebinding", "expired", "refused"
    problem: str | None  # the last failure, as reported (NAK reason, no answer)


class CursorRecord(NamedTuple):
    """The last address a lease handed out automatically (round-robin resumes after it)."""

    pool_id: str
    address: str


@dataclass(frozen=True)
class Change:
    """One atomic mutation. Stores apply the parts in the order of the fields below; deleting a
    lease also deletes its cursor (its allocations are listed in `delete_allocations`)."""

    put_leases: tuple[LeaseRecord, ...] = ()
    delete_allocations: tuple[tuple[str, str], ...] = ()  # (pool_id, address)
    delete_quarantine: tuple[tuple[str, str], ...] = ()  # (table_key, address)
    put_allocations: tuple[AllocationRecord, ...] = ()
    put_quarantine: tuple[QuarantineRecord, ...] = ()
    put_cursors: tuple[CursorRecord, ...] = ()
    delete_dhcp_leases: tuple[tuple[str, str], ...] = ()  # (pool_id, address)
    put_dhcp_leases: tuple[DhcpLeaseRecord, ...] = ()
    delete_leases: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return any(
            (
                self.put_leases,
                self.delete_allocations,
                self.delete_quarantine,
                self.put_allocations,
                self.put_quarantine,
                self.put_cursors,
                self.delete_dhcp_leases,
                self.put_dhcp_leases,
                self.delete_leases,
            )
        )

    def with_expired(self, expired: tuple[tuple[str, str], ...]) -> Change:
        """This change plus the deletion of quarantine rows that expired meanwhile."""
        if not expired:
            return self
        return Change(
            put_leases=self.put_leases,
            delete_allocations=self.delete_allocations,
            delete_quarantine=(*expired, *self.delete_quarantine),
            put_allocations=self.put_allocations,
            put_quarantine=self.put_quarantine,
            put_cursors=self.put_cursors,
            delete_dhcp_leases=self.delete_dhcp_leases,
            put_dhcp_leases=self.put_dhcp_leases,
            delete_leases=self.delete_leases,
        )


@dataclass(frozen=True)
class Snapshot:
    """Everything a store holds, as read at start-up."""

    leases: tuple[LeaseRecord, ...] = ()
    allocations: tuple[AllocationRecord, ...] = ()
    quarantine: tuple[QuarantineRecord, ...] = ()
    cursors: tuple[CursorRecord, ...] = ()
    dhcp_leases: tuple[DhcpLeaseRecord, ...] = ()
    notes: tuple[str, ...] = field(default=())  # what the store repaired or skipped while loading

    def as_change(self) -> Change:
        return Change(
            put_leases=self.leases,
            put_allocations=self.allocations,
            put_quarantine=tuple(sorted(self.quarantine, key=lambda q: q.released_at)),
            put_cursors=self.cursors,
            put_dhcp_leases=self.dhcp_leases,
        )
