"""The in-memory allocation tables: who holds which address, and which address comes next.

Rules enforced here:

* One table per (address space, LAN, subnet). Every lease (RequestPool configuration) on that
  subnet and LAN hands out from the same table, so no address is ever given twice on one LAN.
* Automatic allocation draws only from the lease's automatic set: this host's ranges (from the
  `HostRanges` seam) minus `exclude=` minus the subnet's reserved addresses. It is round-robin:
  the search starts after the last address the lease handed out and wraps to the start, like CNI
  host-local, so a crash-looping container does not get the same address back at once.
* A released address rests in quarantine (the releasing lease's `quarantine` seconds) and is
  skipped while any other address of the automatic set is free; when only resting addresses are
  left, the one released longest ago is used.
* Specific addresses (gateway, `--aux-address`, `--ip`) may be anywhere in the subnet except its
  reserved addresses; exclusions and quarantine do not apply to them. Gateways and reservations
  may be shared between different leases (two networks on one LAN have one router); a lease that
  repeats a gateway request holds it once more; everything else already held is "in use".
* Planning never mutates: each `plan_*` returns the `Change` that would do it. The service
  commits that change to the store and only then calls `apply`, so a failed commit leaves this
  object untouched. `apply` is also how the state is loaded at start-up.

Complexity: the free-address search alternates between the automatic set and the `unavailable`
set (held plus resting addresses, as intervals), jumping over a whole run per step, so an
allocation costs O(log runs) per run of the automatic set crossed, independent of pool size and
of the number of allocations. Memory is proportional to the holdings, never to the pool size.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, replace
from socket import AF_INET, AF_INET6, inet_pton

from ipam.addresses import (
    AddressRange,
    Family,
    Subnet,
    address_to_int,
    describe_ranges,
    format_address,
    parse_subnet,
    ranges_to_set,
)
from ipam.errors import (
    AddressInUse,
    AddressOutOfRange,
    InvalidRequest,
    NoAvailableAddresses,
    PoolNotFound,
    PoolOverlap,
)
from ipam.hostranges import HostRanges
from ipam.intervals import IntervalSet
from ipam.options import (
    PoolSpec,
    build_pool_spec,
    parse_pool_request,
    parse_table_key,
    table_key,
)
from ipam.records import (
    AllocationRecord,
    Change,
    CursorRecord,
    DhcpLeaseRecord,
    Kind,
    LeaseRecord,
    QuarantineRecord,
)
from ipam.requests import AddressRequest

# Applying more points than this to one table at once rebuilds its interval set in one linear
# merge instead of inserting run by run (start-up loads 100k rows in one change).
_BULK_THRESHOLD = 16
# The expiry queue deletes lazily (see Allocator._compact_expiries); it is rebuilt once it holds
# more than twice the entries still resting, and never for fewer than this many.
_EXPIRY_SLACK = 1024
_AF = {Family.V4: AF_INET, Family.V6: AF_INET6}


@dataclass(slots=True)
class Holding:
    """One lease's hold on one address."""

    pool_id: str
    kind: Kind
    refcount: int
    mac: str | None
    endpoint: str | None
    allocated_at: float


@dataclass(frozen=True, slots=True)
class Resting:
    """A quarantined address: released at `released_at`, free for automatic reuse at `until`."""

    released_at: float
    until: float
    endpoint: str | None = None
    lan_mac: str | None = None  # found in use on the LAN by this MAC (not a release)


class Table:
    """The holdings and quarantine of one (address space, LAN, subnet)."""

    __slots__ = (
        "held",
        "key",
        "lease_ids",
        "quarantine",
        "resting_by_endpoint",
        "subnet",
        "unavailable",
    )

    def __init__(self, key: str, subnet: Subnet) -> None:
        self.key = key
        self.subnet = subnet
        self.held: dict[int, tuple[Holding, ...]] = {}
        # Insertion order is release order, so the first entry inside a lease's automatic set is
        # the one released longest ago (the quarantine fallback needs exactly that).
        self.quarantine: dict[int, Resting] = {}
        self.unavailable = IntervalSet()  # keys of `held` and of `quarantine`
        self.lease_ids: set[str] = set()
        # endpoint name -> the address it released last, while that address rests.
        self.resting_by_endpoint: dict[str, int] = {}

    def forget_rest(self, address: int, resting: Resting) -> None:
        if resting.endpoint and self.resting_by_endpoint.get(resting.endpoint) == address:
            del self.resting_by_endpoint[resting.endpoint]

    def fmt(self, value: int) -> str:
        return format_address(self.subnet.family, value)

    @property
    def empty(self) -> bool:
        return not (self.lease_ids or self.held or self.quarantine)


class Lease:
    """A pool lease as the allocator uses it: its record plus what is derived from it."""

    __slots__ = (
        "auto",
        "cursor",
        "held_count",
        "problem",
        "quarantine_seconds",
        "record",
        "source",
        "spec",
        "table",
    )

    def __init__(
        self,
        record: LeaseRecord,
        spec: PoolSpec | None,
        table: Table,
        auto: IntervalSet,
        source: str,
        quarantine_seconds: float,
        problem: str | None,
    ) -> None:
        self.record = record
        self.spec = spec
        self.table = table
        self.auto = auto  # never mutated; replaced when the host ranges change (cluster mode)
        self.source = source
        self.quarantine_seconds = quarantine_seconds
        self.problem = problem  # why automatic allocation is impossible, if it is
        self.cursor: int | None = None
        self.held_count = 0

    @property
    def pool_id(self) -> str:
        return self.record.pool_id


def spec_from_record(record: LeaseRecord) -> PoolSpec:
    """Rebuild a lease's spec from its stored request (the parser is the single source of truth)."""
    subnet = parse_subnet(record.subnet)
    request = parse_pool_request(
        address_space=record.address_space,
        pool=record.subnet,
        sub_pool=record.sub_pool,
        options=record.options,
        v6=subnet.family is Family.V6,
    )
    return build_pool_spec(request, subnet)


def record_for_spec(spec: PoolSpec, now: float) -> LeaseRecord:
    return LeaseRecord(
        pool_id=spec.pool_id,
        address_space=spec.address_space,
        lan=spec.lan,
        subnet=str(spec.subnet),
        sub_pool=str(spec.sub_pool) if spec.sub_pool is not None else "",
        options=dict(spec.raw_options),
        refcount=1,
        created_at=now,
    )


class Allocator:
    """All leases and tables of this host. Not thread-safe: the service serializes calls."""

    def __init__(self, host_ranges: HostRanges, default_quarantine: float) -> None:
        self._host_ranges = host_ranges
        self._default_quarantine = default_quarantine
        self.leases: dict[str, Lease] = {}
        self.tables: dict[str, Table] = {}
        # Leases from a LAN's DHCP server, by (pool ID, address): kept by ipam/dhcp.
        self.dhcp_leases: dict[tuple[str, str], DhcpLeaseRecord] = {}
        self._expiry: list[tuple[float, str, int]] = []  # (until, table key, address) min-heap
        self._compact_at = _EXPIRY_SLACK
        self.load_notes: list[str] = []

    # ----------------------------------------------------------------- queries

    @property
    def pending_expiries(self) -> int:
        """Entries in the queue of quarantine expiries (diagnostics and the bound's test)."""
        return len(self._expiry)

    def lease(self, pool_id: str) -> Lease | None:
        return self.leases.get(pool_id)

    def subnets_in_use(self, address_space: str, family: Family) -> list[Subnet]:
        return [
            lease.table.subnet
            for lease in self.leases.values()
            if lease.record.address_space == address_space and lease.table.subnet.family is family
        ]

    def holdings(self, pool_id: str) -> dict[str, Holding]:
        """The addresses a lease holds (for tests and diagnostics; scans the table)."""
        lease = self.leases.get(pool_id)
        if lease is None:
            return {}
        table = lease.table
        return {
            table.fmt(address): holding
            for address, holders in table.held.items()
            for holding in holders
            if holding.pool_id == pool_id
        }

    def allocation_records(self) -> list[AllocationRecord]:
        """Every hold of every table, as the store keeps it (diagnostics, stale allocations)."""
        return [
            _record(table, table.fmt(address), holding)
            for table in self.tables.values()
            for address, holders in table.held.items()
            for holding in holders
        ]

    def pool_references(self) -> dict[Subnet, int]:
        """Per subnet, how many networks hold a pool on it: the sum of the reference counts of
        its pools (one RequestPool each, until its ReleasePool)."""
        references: dict[Subnet, int] = {}
        for lease in self.leases.values():
            subnet = lease.table.subnet
            references[subnet] = references.get(subnet, 0) + lease.record.refcount
        return references

    def holding(self, pool_id: str, value: int) -> Holding | None:
        """The hold of `pool_id` on `value`, if it has one."""
        lease = self.leases.get(pool_id)
        if lease is None:
            return None
        return next((h for h in lease.table.held.get(value, ()) if h.pool_id == pool_id), None)

    # ------------------------------------------------------------- pool leases

    def plan_request_pool(self, spec: PoolSpec, now: float) -> Change:
        """A new lease for `spec`, or one more reference to the identical existing one."""
        existing = self.leases.get(spec.pool_id)
        if existing is not None:
            return Change(
                put_leases=(existing.record._replace(refcount=existing.record.refcount + 1),)
            )
        for lease in self.leases.values():
            other = lease.table.subnet
            if (
                lease.record.address_space == spec.address_space
                and lease.record.lan == spec.lan
                and other != spec.subnet
                and other.overlaps(spec.subnet)
            ):
                raise PoolOverlap(
                    f"pool {spec.subnet} overlaps pool {other} (pool ID {lease.pool_id!r}) on LAN "
                    f'"{spec.lan}": use the same subnet to share its addresses, or set a '
                    "different --ipam-opt lan=<name> if the two networks are different LANs"
                )
        self._host_ranges.ranges_for(spec)  # refuse a plan that leaves this host out, now
        return Change(put_leases=(record_for_spec(spec, now),))

    def plan_release_pool(self, pool_id: str, now: float) -> Change:
        """One reference less; the last one deletes the lease and frees what it still holds."""
        lease = self.leases.get(pool_id)
        if lease is None:
            return Change()  # idempotent: Docker may retry a release
        if lease.record.refcount > 1:
            return Change(put_leases=(lease.record._replace(refcount=lease.record.refcount - 1),))
        deletes: list[tuple[str, str]] = []
        rests: list[QuarantineRecord] = []
        if lease.held_count:
            # Docker releases gateway and aux addresses before the pool; whatever is left (a
            # crash in between) has no other owner than this lease, so it is freed with it.
            table = lease.table
            for address, holders in table.held.items():
                if any(h.pool_id == pool_id for h in holders):
                    text = table.fmt(address)
                    deletes.append((pool_id, text))
                    if len(holders) == 1:
                        rests.extend(self._rest(lease, text, now))
        return Change(
            delete_allocations=tuple(deletes),
            put_quarantine=tuple(rests),
            delete_leases=(pool_id,),
        )

    # --------------------------------------------------------------- addresses

    def plan_request_address(
        self, pool_id: str, request: AddressRequest, now: float
    ) -> tuple[Change, int]:
        lease = self.leases.get(pool_id)
        if lease is None:
            raise PoolNotFound(
                f'unknown pool ID "{pool_id}": this plugin holds no such pool (if its state '
                "directory was reset, recreate the network)"
            )
        if request.value is None:
            return self._plan_automatic(lease, request, now)
        return self._plan_specific(lease, request, request.value, now)

    def _plan_automatic(
        self, lease: Lease, request: AddressRequest, now: float
    ) -> tuple[Change, int]:
        if lease.problem is not None:
            raise InvalidRequest(
                f'pool ID "{lease.pool_id}" cannot hand out addresses on this host: {lease.problem}'
            )
        table = lease.table
        address = self._remembered(lease, request.endpoint)
        remembered = address is not None
        if address is None:
            address = self._next_free(lease)
        if address is None:
            raise NoAvailableAddresses(self._exhausted_message(lease))
        text = table.fmt(address)
        holding = Holding(lease.pool_id, request.kind, 1, request.mac, request.endpoint, now)
        change = Change(
            delete_quarantine=((table.key, text),) if address in table.quarantine else (),
            put_allocations=(_record(table, text, holding),),
            # A returning container does not move the round-robin position of the others.
            put_cursors=() if remembered else (CursorRecord(lease.pool_id, text),),
        )
        return change, address

    @staticmethod
    def _remembered(lease: Lease, endpoint: str | None) -> int | None:
        """The address a container released moments ago, if it is back and it is still free.

        Docker >= 29 names the endpoint (the container) in its requests. A container restarted
        by Docker (``--restart``, a dockerd restart) releases its address and asks for one again:
        it gets the same one back while that address rests in quarantine, so its neighbours on
        the LAN, DNS records and firewall rules keep pointing at it."""
        if endpoint is None:
            return None
        table = lease.table
        address = table.resting_by_endpoint.get(endpoint)
        if address is None or address in table.held or address not in lease.auto:
            return None
        return address

    def _plan_specific(
        self, lease: Lease, request: AddressRequest, value: int, now: float
    ) -> tuple[Change, int]:
        table = lease.table
        subnet = table.subnet
        family = request.family or subnet.family
        text = format_address(family, value)
        if family is not subnet.family or value not in subnet:
            raise AddressOutOfRange(
                f"requested address is out of range: {text} is not in pool {subnet}"
            )
        why = subnet.describe_reserved(value)
        if why is not None:
            raise AddressOutOfRange(
                f"requested address is out of range: {text} is {why} of pool {subnet}, "
                "which is never handed out"
            )
        holders = table.held.get(value, ())
        mine = next((h for h in holders if h.pool_id == lease.pool_id), None)
        holding: Holding | None = None
        if not holders:
            holding = Holding(lease.pool_id, request.kind, 1, request.mac, request.endpoint, now)
        elif mine is not None:
            if request.kind is Kind.GATEWAY and mine.kind is Kind.GATEWAY:
                # Two networks with the identical configuration share this lease and both name
                # this gateway: count it, so deleting one keeps it held for the other.
                holding = replace(mine, refcount=mine.refcount + 1)
        elif request.kind.shareable and all(h.kind.shareable for h in holders):
            # Another lease on the same LAN names the same router or aux address.
            holding = Holding(lease.pool_id, request.kind, 1, request.mac, request.endpoint, now)
        if holding is None:
            raise AddressInUse(
                f"Address already in use: {text} in pool {subnet} "
                f"(held by {_describe_holders(holders, lease.pool_id)})"
            )
        change = Change(
            delete_quarantine=((table.key, text),) if value in table.quarantine else (),
            put_allocations=(_record(table, text, holding),),
        )
        return change, value

    def plan_release_address(self, pool_id: str, family: Family, value: int, now: float) -> Change:
        """Drop one hold of `pool_id` on `value`; idempotent for anything not held by it."""
        lease = self.leases.get(pool_id)
        if lease is None or family is not lease.table.subnet.family:
            return Change()
        table = lease.table
        holders = table.held.get(value, ())
        mine = next((h for h in holders if h.pool_id == pool_id), None)
        if mine is None:
            return Change()
        text = table.fmt(value)
        if mine.refcount > 1:
            return Change(
                put_allocations=(_record(table, text, replace(mine, refcount=mine.refcount - 1)),)
            )
        rests = self._rest(lease, text, now, mine.endpoint) if len(holders) == 1 else ()
        return Change(delete_allocations=((pool_id, text),), put_quarantine=rests)

    def _rest(
        self, lease: Lease, text: str, now: float, endpoint: str | None = None
    ) -> tuple[QuarantineRecord, ...]:
        seconds = lease.quarantine_seconds
        if seconds <= 0:
            return ()
        return (QuarantineRecord(lease.table.key, text, now, now + seconds, endpoint),)

    # ------------------------------------------------------------- the search

    def _next_free(self, lease: Lease) -> int | None:
        """Round-robin: first free address after the cursor, wrapping; else the oldest resting."""
        auto = lease.auto
        first, last = auto.first(), auto.last()
        if first is None or last is None:
            return None
        unavailable = lease.table.unavailable
        start = first if lease.cursor is None or lease.cursor >= last else lease.cursor + 1
        found = _first_free(auto, unavailable, start, last)
        if found is None and start > first:
            found = _first_free(auto, unavailable, first, start - 1)
        if found is None:
            # Only resting (or held) addresses are left: take the one released longest ago.
            found = next((a for a in lease.table.quarantine if a in auto), None)
        return found

    def candidates(self, pool_id: str, count: int) -> list[int]:
        """The next `count` addresses automatic allocation would choose, in order, without
        choosing them (what probing ahead is for)."""
        lease = self.leases.get(pool_id)
        if lease is None or lease.problem is not None:
            return []
        auto = lease.auto
        first, last = auto.first(), auto.last()
        if first is None or last is None:
            return []
        unavailable = lease.table.unavailable
        found: list[int] = []
        start = first if lease.cursor is None or lease.cursor >= last else lease.cursor + 1
        for lo, hi in ((start, last), (first, start - 1)):
            while len(found) < count and lo <= hi:
                address = _first_free(auto, unavailable, lo, hi)
                if address is None:
                    break
                found.append(address)
                lo = address + 1
        if len(found) < count:
            # Then what `_next_free` falls back to: the resting addresses, oldest first (a pool
            # that quarantine keeps full hands those out, and they are probed like any other).
            # Those a device answered for are left out: they were asked moments ago.
            for address, resting in lease.table.quarantine.items():
                if len(found) >= count:
                    break
                if address in auto and address not in lease.table.held and not resting.lan_mac:
                    found.append(address)
        return found

    def plan_lan_conflict(
        self, pool_id: str, value: int, mac: str, now: float, recheck: float
    ) -> Change:
        """`pool_id` just took `value`, and a device on the LAN (`mac`) answered for it: give it
        back and let it rest until `now + recheck`, marked as found in use on the LAN."""
        lease = self.leases.get(pool_id)
        if lease is None:
            return Change()
        table = lease.table
        text = table.fmt(value)
        mine = any(h.pool_id == pool_id for h in table.held.get(value, ()))
        if not mine:
            return Change()
        only = len(table.held.get(value, ())) == 1
        rests = (QuarantineRecord(table.key, text, now, now + recheck, None, mac),) if only else ()
        return Change(delete_allocations=((pool_id, text),), put_quarantine=rests)

    def lan_conflicts(self) -> list[tuple[str, str, str, float]]:
        """(table key, address, MAC, seen at) of every address found in use on the LAN."""
        return [
            (table.key, table.fmt(address), resting.lan_mac, resting.released_at)
            for table in self.tables.values()
            for address, resting in table.quarantine.items()
            if resting.lan_mac
        ]

    def _exhausted_message(self, lease: Lease) -> str:
        table = lease.table
        where = [str(table.subnet)]
        if lease.source:
            where.append(lease.source)
        spec = lease.spec
        if spec is not None and spec.exclude:
            where.append(f"excluding {describe_ranges(spec.exclude)}")
        total = lease.auto.size()
        if total == 0:
            return (
                f"no available addresses on this pool: {', '.join(where)}: nothing is left to "
                "hand out automatically (request a specific address with --ip, or change the "
                "address plan or exclusions)"
            )
        in_use = lease.auto.intersection_size(table.unavailable)
        return (
            f"no available addresses on this pool: {', '.join(where)} "
            f"({total} address{'es' if total != 1 else ''}, {in_use} in use)"
        )

    # -------------------------------------------------------------- quarantine

    def prune(self, now: float) -> tuple[tuple[str, str], ...]:
        """Forget quarantine entries that have expired; return their keys for the store.

        Expired entries mean nothing (start-up skips them too), so dropping them from memory
        before the store deletes its rows changes no observable state.
        """
        expired: list[tuple[str, str]] = []
        heap = self._expiry
        while heap and heap[0][0] <= now:
            until, key, address = heapq.heappop(heap)
            table = self.tables.get(key)
            if table is None:
                continue
            resting = table.quarantine.get(address)
            if resting is None or resting.until != until:
                continue  # stale heap entry: re-quarantined or taken meanwhile
            del table.quarantine[address]
            table.forget_rest(address, resting)
            if address not in table.held:
                table.unavailable.discard(address)
            expired.append((key, table.fmt(address)))
            self._collect(table)
        return tuple(expired)

    def _compact_expiries(self) -> None:
        """Rebuild the expiry queue from the addresses still resting.

        The queue deletes lazily: an address that rests again, or is taken while it rests,
        leaves its old entry behind until that entry's time comes (`prune` skips it then). With a
        long quarantine on a busy host those stale entries would pile up by the release, not by
        the pool. Rebuilding whenever they outnumber the live ones keeps the queue within twice
        the resting addresses, at an amortised cost of one entry per push.
        """
        live = [
            (resting.until, table.key, address)
            for table in self.tables.values()
            for address, resting in table.quarantine.items()
        ]
        heapq.heapify(live)
        self._expiry = live
        self._compact_at = max(_EXPIRY_SLACK, 2 * len(live))

    # ------------------------------------------------------------------- apply

    def apply(self, change: Change) -> None:
        """Make memory match the store after `change` was committed (or loaded)."""
        added: dict[str, list[int]] = {}

        for record in change.put_leases:
            existing = self.leases.get(record.pool_id)
            if existing is not None:
                existing.record = record
            else:
                self._add_lease(record)

        for pool_id, text in change.delete_allocations:
            lease = self.leases.get(pool_id)
            if lease is None:
                continue
            table = lease.table
            address = address_to_int(table.subnet.family, text)
            holders = table.held.get(address, ())
            rest = tuple(h for h in holders if h.pool_id != pool_id)
            if len(rest) == len(holders):
                continue
            lease.held_count -= 1
            if rest:
                table.held[address] = rest
            else:
                del table.held[address]
                if address not in table.quarantine:
                    table.unavailable.discard(address)

        for key, text in change.delete_quarantine:
            resting_table = self.tables.get(key)
            if resting_table is None:
                continue
            address = address_to_int(resting_table.subnet.family, text)
            popped = resting_table.quarantine.pop(address, None)
            if popped is not None:
                resting_table.forget_rest(address, popped)
                if address not in resting_table.held:
                    resting_table.unavailable.discard(address)
            self._collect(resting_table)

        # The hot loop of start-up (one pass per stored allocation): no helper calls, no Enum
        # construction, and the lease's own pool ID string is kept instead of the row's copy.
        for allocation in change.put_allocations:
            lease = self.leases.get(allocation.pool_id)
            if lease is None:
                self.load_notes.append(
                    f"allocation {allocation.address} of unknown pool ID "
                    f"{allocation.pool_id!r} ignored"
                )
                continue
            table = lease.table
            address = int.from_bytes(inet_pton(_AF[table.subnet.family], allocation.address))
            pool_id = lease.pool_id
            holding = Holding(
                pool_id,
                allocation.kind,
                allocation.refcount,
                allocation.mac,
                allocation.endpoint,
                allocation.allocated_at,
            )
            current = table.held.get(address)
            if current is None:
                lease.held_count += 1
                table.held[address] = (holding,)
            else:
                others = tuple(h for h in current if h.pool_id != pool_id)
                if len(others) == len(current):
                    lease.held_count += 1
                table.held[address] = (*others, holding)
            added.setdefault(table.key, []).append(address)

        for resting in change.put_quarantine:
            table = self._table_for_key(resting.table_key)
            address = address_to_int(table.subnet.family, resting.address)
            previous = table.quarantine.pop(address, None)  # re-insert at the end: release order
            if previous is not None:
                table.forget_rest(address, previous)
            table.quarantine[address] = Resting(
                resting.released_at, resting.until, resting.endpoint, resting.lan_mac
            )
            if resting.endpoint:
                table.resting_by_endpoint[resting.endpoint] = address
            heapq.heappush(self._expiry, (resting.until, table.key, address))
            added.setdefault(table.key, []).append(address)
        if len(self._expiry) > self._compact_at:
            self._compact_expiries()

        for key, points in added.items():
            unavailable = self.tables[key].unavailable
            if len(points) > _BULK_THRESHOLD:
                unavailable.update(IntervalSet.from_points(points))
            else:
                for point in points:
                    unavailable.add(point)

        for cursor in change.put_cursors:
            lease = self.leases.get(cursor.pool_id)
            if lease is not None:
                lease.cursor = address_to_int(lease.table.subnet.family, cursor.address)

        for dhcp_key in change.delete_dhcp_leases:
            self.dhcp_leases.pop(dhcp_key, None)
        for dhcp in change.put_dhcp_leases:
            self.dhcp_leases[(dhcp.pool_id, dhcp.address)] = dhcp

        for pool_id in change.delete_leases:
            lease = self.leases.pop(pool_id, None)
            if lease is not None:
                lease.table.lease_ids.discard(pool_id)
                self._collect(lease.table)

    def _add_lease(self, record: LeaseRecord) -> None:
        subnet = parse_subnet(record.subnet)
        table = self._table_for_key(table_key(record.address_space, record.lan, subnet))
        spec: PoolSpec | None = None
        problem: str | None = None
        auto = IntervalSet()
        source = ""
        try:
            spec = spec_from_record(record)
        except InvalidRequest as exc:
            # Only at start-up: the parser changed since the lease was made. Keep the lease and
            # its holdings (they are real); refuse automatic allocation.
            problem = exc.message
        else:
            auto, source, problem = self._automatic_set(spec)
        quarantine = self._default_quarantine
        if spec is not None and spec.quarantine is not None:
            quarantine = spec.quarantine
        lease = Lease(record, spec, table, auto, source, quarantine, problem)
        self.leases[record.pool_id] = lease
        table.lease_ids.add(record.pool_id)

    def _automatic_set(self, spec: PoolSpec) -> tuple[IntervalSet, str, str | None]:
        """(automatic set, its description, why there is none) of a lease with `spec`."""
        subnet = spec.subnet
        try:
            host = self._host_ranges.ranges_for(spec)
        except InvalidRequest as exc:
            # Only at start-up: the node name changed and the plan no longer names this host.
            # Keep the lease, refuse automatic allocation with the reason.
            return IntervalSet(), "", exc.message
        auto = ranges_to_set([r for r in host.ranges if r.family is subnet.family])
        auto.difference_update(ranges_to_set(spec.exclude))
        for reserved in subnet.reserved_addresses():
            auto.discard(reserved)
        auto = auto.intersection(IntervalSet([(subnet.first, subnet.last)]))
        return auto, host.description, None

    def refresh_host_ranges(self) -> None:
        """Ask the `HostRanges` source again for every lease: in cluster mode this host's blocks
        changed. Holdings, quarantine and round-robin cursors stay as they are."""
        for lease in self.leases.values():
            if lease.spec is not None:
                lease.auto, lease.source, lease.problem = self._automatic_set(lease.spec)

    # ------------------------------------------------------- cluster mode queries

    def has_fresh_address(self, pool_id: str) -> bool:
        """Whether an automatic request on `pool_id` would get an address that is neither held
        nor resting in quarantine (cluster mode claims a block before reusing a resting one)."""
        lease = self.leases.get(pool_id)
        if lease is None or lease.problem is not None:
            return False
        first, last = lease.auto.first(), lease.auto.last()
        if first is None or last is None:
            return False
        return _first_free(lease.auto, lease.table.unavailable, first, last) is not None

    def would_help(self, pool_id: str, block: AddressRange) -> bool:
        """Whether adding `block` to the lease's ranges would give it a free automatic address.

        A block that overlaps another lease's address plan on the same LAN never helps: plans
        are LAN-wide facts (the same `network create` on every host), so those addresses belong
        to the plan's nodes even where no plan lease exists on this host's table.
        """
        lease = self.leases.get(pool_id)
        if lease is None or lease.spec is None:
            return False
        spec = lease.spec
        record = lease.record
        for other in self.leases.values():
            plan = other.spec.plan if other.spec is not None else None
            if (
                plan is not None
                and other.record.address_space == record.address_space
                and other.record.lan == record.lan
                and any(r.overlaps(block) for ranges in plan.ranges.values() for r in ranges)
            ):
                return False
        span = spec.span
        lo, hi = max(block.first, span.first), min(block.last, span.last)
        if lo > hi:
            return False
        candidate = IntervalSet([(lo, hi)])
        candidate.difference_update(ranges_to_set(spec.exclude))
        for reserved in spec.subnet.reserved_addresses():
            candidate.discard(reserved)
        first, last = candidate.first(), candidate.last()
        if first is None or last is None:
            return False
        return _first_free(candidate, lease.table.unavailable, first, last) is not None

    def occupied(self, address_space: str, lan: str, block: AddressRange) -> bool:
        """Whether any address of `block` is held or resting in a table of that LAN."""
        prefix = f"{address_space}/{lan}/"
        return any(
            table.unavailable.overlaps(block.first, block.last)
            for key, table in self.tables.items()
            if key.startswith(prefix) and table.subnet.family is block.family
        )

    def _table_for_key(self, key: str) -> Table:
        existing = self.tables.get(key)
        if existing is not None:
            return existing
        _, _, subnet = parse_table_key(key)
        table = self.tables[key] = Table(key, subnet)
        return table

    def _collect(self, table: Table) -> None:
        if table.empty:
            self.tables.pop(table.key, None)


def _first_free(auto: IntervalSet, unavailable: IntervalSet, lo: int, hi: int) -> int | None:
    """Smallest address in [lo, hi] that is in `auto` and not in `unavailable`.

    Each step either answers or jumps a whole run of `unavailable` or a whole gap of `auto`,
    so the loop runs O(runs of `auto` in [lo, hi]) times whatever the number of allocations.
    """
    x = lo
    while x <= hi:
        present = auto.next_present(x)
        if present is None or present > hi:
            return None
        free = unavailable.next_absent(present)
        if free == present:
            return present
        x = free
    return None


def _record(table: Table, text: str, holding: Holding) -> AllocationRecord:
    return AllocationRecord(
        table_key=table.key,
        address=text,
        pool_id=holding.pool_id,
        kind=holding.kind,
        refcount=holding.refcount,
        mac=holding.mac,
        endpoint=holding.endpoint,
        allocated_at=holding.allocated_at,
    )


def _describe_holders(holders: Iterable[Holding], asking_pool_id: str) -> str:
    parts = []
    for h in holders:
        pool = "this pool" if h.pool_id == asking_pool_id else f'pool ID "{h.pool_id}"'
        if h.kind is Kind.GATEWAY:
            parts.append(f"the gateway of {pool}")
        elif h.kind is Kind.RESERVED:
            parts.append(f"a reserved address (--aux-address or --ip) of {pool}")
        elif h.endpoint:
            how = " (--ip)" if h.kind is Kind.STATIC else ""
            parts.append(f'endpoint "{h.endpoint}"{how} of {pool}')
        else:
            parts.append(f"an endpoint of {pool}")
    return " and ".join(parts)
