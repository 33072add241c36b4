"""DHCP leases in the IPAM's books: what DHCP mode uses of the service, and the changes it plans.

Rules:

* A leased address is held like any other: one `AllocationRecord` (kind DYNAMIC, or STATIC for an
  `--ip`, with the MAC and the endpoint) keeps it out of every other hand-out on that LAN, and a
  `DhcpLeaseRecord` beside it is what renewing, rebinding and releasing need, also after a
  restart. Both are written by one `Change`, and both are deleted by one.
* What the server grants must fit the books: inside the pool's subnet and held by nobody else. The
  allocator's own rules for a specific address decide that (one rule, one place); only a lease of
  the same client in the same pool may be taken over (the earlier answer to Docker was lost).
* DHCP addresses never rest in quarantine: the server, not this plugin, decides who gets them next.

The plans run under the service's mutation lock, like every `plan_*` of the allocator.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from ipam.addresses import parse_address
from ipam.allocator import Allocator
from ipam.dhcp.timeline import BOUND
from ipam.errors import (
    AddressInUse,
    AddressOutOfRange,
    DhcpFailed,
    DhcpRequestRefused,
    InvalidRequest,
    PoolNotFound,
)
from ipam.lan import DhcpGrant, DhcpIdentity, Lan, PoolPlace
from ipam.records import AllocationRecord, Change, DhcpLeaseRecord, Kind, LeaseRecord
from ipam.requests import AddressRequest

T = TypeVar("T")
LeaseKey = tuple[str, str]  # (pool ID, address): the key of `Allocator.dhcp_leases`


class Mutate(Protocol):
    """The service's `_mutate`: plan under the lock, commit, apply; returns the plan's result."""

    async def __call__(self, plan: Callable[[float], tuple[Change, T]]) -> T: ...


class Shield(Protocol):
    """The service's `_shielded`: run to the end even if the caller is cancelled."""

    async def __call__(self, work: Coroutine[Any, Any, T]) -> T: ...


# (level, event, fields), the service's event sink: the daemon logs it.
Report = Callable[[str, str, Mapping[str, object]], None]


@dataclass(frozen=True)
class Books:
    """What DHCP mode uses of the IPAM service (getters: the service may replace them)."""

    allocator: Callable[[], Allocator]
    mutate: Mutate
    shielded: Shield
    lan: Callable[[], Lan]
    report: Report
    clock: Callable[[], float]


def place_of(record: LeaseRecord) -> PoolPlace:
    return PoolPlace(record.address_space, record.lan, record.subnet)


def identity_of(record: DhcpLeaseRecord) -> DhcpIdentity:
    return DhcpIdentity(record.mac, bytes.fromhex(record.client_id), record.hostname)


def grant_of(record: DhcpLeaseRecord) -> DhcpGrant:
    return DhcpGrant(
        address=record.address,
        prefixlen=record.prefixlen,
        router=record.router,
        server_id=record.server_id,
        server_mac=record.server_mac,
        lease_seconds=record.lease_seconds,
        renew_seconds=record.renew_seconds,
        rebind_seconds=record.rebind_seconds,
        acquired_at=record.acquired_at,
    )


def lease_record(
    pool_id: str,
    address: str,
    identity: DhcpIdentity,
    endpoint: str | None,
    grant: DhcpGrant,
    acquired_at: float,
) -> DhcpLeaseRecord:
    """A bound lease. `acquired_at` is the IPAM's clock when the exchange began (RFC 2131 counts
    lease times from the request), so that times survive a restart whatever clock the LAN side
    keeps."""
    return DhcpLeaseRecord(
        pool_id=pool_id,
        address=address,
        prefixlen=grant.prefixlen,
        mac=identity.mac,
        client_id=identity.client_id.hex(),
        hostname=identity.hostname,
        endpoint=endpoint,
        server_id=grant.server_id,
        server_mac=grant.server_mac,
        router=grant.router,
        lease_seconds=grant.lease_seconds,
        renew_seconds=grant.renew_seconds,
        rebind_seconds=grant.rebind_seconds,
        acquired_at=acquired_at,
        state=BOUND,
        problem=None,
    )


def renewed(record: DhcpLeaseRecord, grant: DhcpGrant, acquired_at: float) -> DhcpLeaseRecord:
    """`record` after the server extended it."""
    return record._replace(
        prefixlen=grant.prefixlen,
        server_id=grant.server_id,
        server_mac=grant.server_mac,
        router=grant.router,
        lease_seconds=grant.lease_seconds,
        renew_seconds=grant.renew_seconds,
        rebind_seconds=grant.rebind_seconds,
        acquired_at=acquired_at,
        state=BOUND,
        problem=None,
    )


def previous_address(allocator: Allocator, pool_id: str, client_id: bytes) -> str | None:
    """The address a lease of this client already holds in the pool (an earlier answer to Docker
    was lost, the plugin crashed): the server is asked for that one again."""
    wanted = client_id.hex()
    for (owner, address), record in allocator.dhcp_leases.items():
        if owner == pool_id and record.client_id == wanted:
            return address
    return None


def check_specific(
    allocator: Allocator, pool_id: str, identity: DhcpIdentity, request: AddressRequest, now: float
) -> None:
    """Before the server is asked for an `--ip`: the allocator's checks (in the subnet, not a
    reserved address, not held by anyone else), so that a refusal costs no LAN exchange. The
    client's own lease of that address (an answer Docker never got) does not count."""
    if request.value is None:
        return
    lease = allocator.leases.get(pool_id)
    if (
        lease is not None
        and request.family in (None, lease.table.subnet.family)
        and request.value in lease.table.subnet
    ):
        held = allocator.dhcp_leases.get((pool_id, lease.table.fmt(request.value)))
        if held is not None and held.client_id == identity.client_id.hex():
            return
    allocator.plan_request_address(pool_id, request, now)  # raises; the plan is not used


def plan_bind(
    allocator: Allocator,
    pool_id: str,
    identity: DhcpIdentity,
    request: AddressRequest,
    grant: DhcpGrant,
    acquired_at: float,
    now: float,
) -> tuple[Change, tuple[str, DhcpLeaseRecord]]:
    """The change that records `grant` for the endpoint of `request`; ("a.b.c.d/len", record)."""
    lease = allocator.leases.get(pool_id)
    if lease is None:
        raise PoolNotFound(
            f'unknown pool ID "{pool_id}": the network was removed while the LAN\'s DHCP server '
            "was asked for an address"
        )
    table = lease.table
    subnet = table.subnet
    try:
        family, value = parse_address(grant.address, what="address the DHCP server granted")
    except InvalidRequest as exc:
        raise DhcpFailed(exc.message) from None
    text = table.fmt(value) if family is subnet.family else grant.address
    if family is not subnet.family or value not in subnet or subnet.describe_reserved(value):
        raise DhcpRequestRefused(
            f"the LAN's DHCP server leased {grant.address}/{grant.prefixlen}, which is not a "
            f"usable address of the network's subnet {subnet}: the network's --subnet does not "
            "match the DHCP server's scope; create the network with the subnet the server hands "
            "out"
        )
    kind = Kind.STATIC if request.value is not None else Kind.DYNAMIC
    record = lease_record(pool_id, text, identity, request.endpoint, grant, acquired_at)
    previous = allocator.dhcp_leases.get((pool_id, text))
    holders = table.held.get(value, ())
    if (
        previous is not None
        and previous.client_id == record.client_id
        and all(h.pool_id == pool_id for h in holders)
    ):
        # The same client's lease, recorded before an answer that never reached Docker.
        allocation = AllocationRecord(
            table.key, text, pool_id, kind, 1, identity.mac, request.endpoint, now
        )
        change = Change(put_allocations=(allocation,), put_dhcp_leases=(record,))
        return change, (f"{text}/{subnet.prefixlen}", record)
    specific = AddressRequest(family, value, kind, request.endpoint, identity.mac)
    try:
        change, _ = allocator.plan_request_address(pool_id, specific, now)
    except (AddressInUse, AddressOutOfRange) as exc:
        raise AddressInUse(
            f"the LAN's DHCP server leased {text} to MAC {identity.mac}, but pymacvlan holds it "
            f"already: {exc.message}; exclude the addresses pymacvlan hands out from the server's "
            "scope"
        ) from None
    change = replace(change, put_dhcp_leases=(record,))
    return change, (f"{text}/{subnet.prefixlen}", record)


def plan_drop(allocator: Allocator, key: LeaseKey) -> tuple[Change, DhcpLeaseRecord | None]:
    """Release one DHCP-leased address: its allocation and its lease row, no quarantine."""
    record = allocator.dhcp_leases.get(key)
    if record is None:
        return Change(), None
    return Change(delete_allocations=(key,), delete_dhcp_leases=(key,)), record


def plan_release_pool(
    allocator: Allocator, pool_id: str, now: float
) -> tuple[Change, tuple[DhcpLeaseRecord, ...]]:
    """The allocator's release of the pool, plus the deletion of its lease rows (they refer to
    the pool) and without quarantine for the leased addresses; and the leases dropped."""
    change = allocator.plan_release_pool(pool_id, now)
    if pool_id not in change.delete_leases:
        return change, ()
    dropped = tuple(r for (owner, _), r in allocator.dhcp_leases.items() if owner == pool_id)
    if not dropped:
        return change, ()
    leased = {r.address for r in dropped}
    change = replace(
        change,
        put_quarantine=tuple(q for q in change.put_quarantine if q.address not in leased),
        delete_dhcp_leases=tuple((r.pool_id, r.address) for r in dropped),
    )
    return change, dropped


def plan_save(
    allocator: Allocator, expected: DhcpLeaseRecord, new: DhcpLeaseRecord
) -> tuple[Change, bool]:
    """Write `new` over `expected` if the books still hold `expected` (the endpoint may have been
    released, or its lease taken again, while the LAN was asked)."""
    key = (expected.pool_id, expected.address)
    if allocator.dhcp_leases.get(key) != expected:
        return Change(), False
    if new == expected:
        return Change(), True
    return Change(put_dhcp_leases=(new,)), True


def by_subnet(allocator: Allocator, subnet: str, address: str) -> DhcpLeaseRecord | None:
    """The DHCP lease holding `address` in a pool on `subnet` (both canonical text)."""
    for pool_id, lease in allocator.leases.items():
        if lease.record.subnet == subnet:
            record = allocator.dhcp_leases.get((pool_id, address))
            if record is not None:
                return record
    return None
