"""Builds the status report (plugin/admin/report.py) from what a daemon holds.

One builder for both sources: `Holdings` is the driver's records, the allocator and the rest,
taken from a running daemon's services (plugin/admin/status.py) or read from a stopped one's
state directory (plugin/admin/offline.py). Pure: it reads, computes counts and changes nothing.

In two parts, for a daemon whose event loop also answers Docker: `report_without_allocations`
and `held_addresses` read what changes (quick, on the loop); `finish_report` makes the models of
every held address and judges which are stale (slow with many addresses: in any thread).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from driver.config import NetworkConfig
from driver.lan.claims import Claim
from driver.records import DriverState, EndpointRecord, OwnedLink
from driver.shim import host_address_of
from driver.state import links_of
from ipam.addresses import Family, Subnet, format_address
from ipam.allocator import Allocator, Holding, Lease
from ipam.cluster.cache import CachedBlock
from ipam.inventory import automatic_ranges, pool_usage
from ipam.options import parse_table_key
from ipam.records import AllocationRecord, DhcpLeaseRecord
from ipam.stale import Outcome, Verdict
from plugin.admin.report import (
    AllocationStatus,
    ClaimStatus,
    ClusterBlockStatus,
    ClusterStatus,
    DhcpLeaseStatus,
    EndpointStatus,
    LanConflictStatus,
    NetworkStatus,
    OwnedLinkStatus,
    PoolCounts,
    PoolStatus,
    ShimStatus,
    Source,
    StaleAllocationStatus,
    StateHealth,
    StatusReport,
    SubnetStatus,
)
from plugin.admin.stale import stale_candidates

# A pool's automatic set listed range by range up to this many (exclusions can cut it up).
MAX_LISTED_RANGES = 32


@dataclass(frozen=True)
class ClusterHoldings:
    blocks: Sequence[CachedBlock]
    instance: str | None = None
    etcd: str | None = None  # live only


@dataclass(frozen=True)
class Holdings:
    """What one daemon holds, from either source; None where a part is not known."""

    source: Source
    state_dir: str
    node_name: str | None
    now: float
    socket: str | None = None
    health: StateHealth = "ready"
    problems: Sequence[str] = ()
    driver: DriverState | None = None
    allocator: Allocator | None = None
    dhcp_leases: Sequence[DhcpLeaseRecord] = ()
    cluster: ClusterHoldings | None = None
    claims: Sequence[Claim] | None = None
    claims_seen: int | None = None
    notes: Sequence[str] = field(default=())  # what loading repaired or skipped


def build_report(held: Holdings) -> StatusReport:
    """The whole report, at once (a state directory read offline, tests)."""
    return finish_report(report_without_allocations(held), held_addresses(held))


def report_without_allocations(held: Holdings) -> StatusReport:
    """The report but its `allocations`: what must be read where the holdings change (a
    daemon's event loop), and is cheap."""
    driver = held.driver or DriverState((), (), ())
    allocator = held.allocator
    owned = {link.name: link for link in driver.owned_links}
    return StatusReport(
        source=held.source,
        state_dir=held.state_dir,
        socket=held.socket,
        node_name=held.node_name,
        generated_at=held.now,
        health=held.health,
        problems=[*held.problems, *held.notes],
        networks=[_network(n, owned) for n in sorted(driver.networks, key=lambda n: n.network_id)],
        endpoints=[
            _endpoint(e, allocator)
            for e in sorted(driver.endpoints, key=lambda e: (e.network_id, e.endpoint_id))
        ],
        owned_links=[
            _owned_link(link, driver.networks) for link in sorted(owned.values(), key=_by_name)
        ],
        pools=[_pool(lease) for lease in _leases(allocator)] if allocator else [],
        cluster=_cluster(held.cluster, held.node_name) if held.cluster is not None else None,
        lan_conflicts=_lan_conflicts(allocator) if allocator else [],
        claims=None if held.claims is None else [_claim(c) for c in held.claims],
        claims_seen=held.claims_seen,
        dhcp_leases=[
            _dhcp(d) for d in sorted(held.dhcp_leases, key=lambda d: (d.pool_id, d.address))
        ],
    )


def _by_name(link: OwnedLink) -> str:
    return link.name


# ------------------------------------------------------------------------------ the driver


def _network(config: NetworkConfig, owned: dict[str, OwnedLink]) -> NetworkStatus:
    parent = config.parent
    mode = (
        str(config.macvlan_mode)
        if config.kind == "macvlan"
        else f"{config.ipvlan_mode}/{config.ipvlan_flag}"
    )
    shim: ShimStatus | None = None
    if config.host_address:
        links = links_of(config)
        address = host_address_of(config)
        shim = ShimStatus(link=links[-1], address=str(address) if address is not None else None)
    own = [parent.name] if parent.name in owned else []
    own += [name for name in links_of(config)[1:] if name in owned]
    return NetworkStatus(
        id=config.network_id,
        kind=config.kind,
        mode=mode,
        parent="" if parent.dummy else (parent.vlan_base if parent.is_vlan else parent.name),
        vlan=parent.vlan_id if parent.is_vlan else None,
        link=parent.name,
        dummy=parent.dummy,
        mtu=config.mtu,
        internal=config.internal,
        subnets=[
            SubnetStatus(
                subnet=str(s.pool),
                gateway=str(s.gateway) if s.gateway is not None else None,
                aux_addresses={k: str(v) for k, v in sorted(s.aux_addresses.items())},
            )
            for s in config.subnets
        ],
        owned_links=own,
        shim=shim,
    )


def _owned_link(link: OwnedLink, networks: Iterable[NetworkConfig]) -> OwnedLinkStatus:
    return OwnedLinkStatus(
        name=link.name,
        kind=link.kind,
        base=link.base,
        vlan=link.vlan_id or None,
        networks=sorted(n.network_id for n in networks if link.name in links_of(n)),
    )


Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def _endpoint(ep: EndpointRecord, allocator: Allocator | None) -> EndpointStatus:
    return EndpointStatus(
        id=ep.endpoint_id,
        network_id=ep.network_id,
        link=ep.link_name,
        mac=ep.mac,
        ipv4=str(ep.ipv4) if ep.ipv4 is not None else None,
        ipv6=str(ep.ipv6) if ep.ipv6 is not None else None,
        container=_endpoint_name(ep, allocator) if allocator is not None else None,
    )


def _endpoint_name(ep: EndpointRecord, allocator: Allocator) -> str | None:
    """The endpoint name Docker (>= 29) sent when it asked for the endpoint's address."""
    for address in (ep.ipv4, ep.ipv6):
        if address is None:
            continue
        subnet, value = str(address.network), int(address.ip)
        for table in allocator.tables.values():
            if table.subnet.family == address.version and str(table.subnet) == subnet:
                name = next((h.endpoint for h in table.held.get(value, ()) if h.endpoint), None)
                if name:
                    return name
    return None


# -------------------------------------------------------------------------------- the IPAM


def _leases(allocator: Allocator | None) -> list[Lease]:
    if allocator is None:
        return []
    return sorted(
        allocator.leases.values(),
        key=lambda lease: (
            lease.table.subnet.family,
            lease.table.subnet.network,
            lease.table.subnet.prefixlen,
            lease.pool_id,
        ),
    )


def _pool(lease: Lease) -> PoolStatus:
    record = lease.record
    spec = lease.spec
    usage = pool_usage(lease)
    ranges = automatic_ranges(lease)
    listed = [str(r) for r in ranges[:MAX_LISTED_RANGES]]
    if len(ranges) > MAX_LISTED_RANGES:
        listed.append(f"... {len(ranges) - MAX_LISTED_RANGES} more")
    return PoolStatus(
        pool_id=record.pool_id,
        subnet=str(lease.table.subnet),
        family=int(lease.table.subnet.family),
        address_space=record.address_space,
        lan=record.lan,
        ip_range=record.sub_pool or None,
        host_range=lease.source,
        host_ranges=listed,
        options=dict(sorted(record.options.items())),
        exclude=[str(r) for r in spec.exclude] if spec is not None else [],
        probe=spec.probe if spec is not None else None,
        dhcp=spec.dhcp if spec is not None else False,
        networks=record.refcount,
        created_at=record.created_at,
        counts=PoolCounts(
            size=usage.size,
            used=usage.used,
            free=usage.free,
            quarantined=usage.quarantined,
            lan_in_use=usage.lan_in_use,
        ),
        problem=lease.problem,
    )


# A held address: (its subnet, its family, the address, its holders, its table's key). The
# holders tuple is replaced, never changed, when the allocator applies a change: a row stays
# true once taken.
HeldRow = tuple[str, Family, int, tuple[Holding, ...], str]


def held_rows(allocator: Allocator) -> list[HeldRow]:
    """Every address held, in address order: quick to take (no text, no models), so a daemon
    takes it on its event loop and builds the models elsewhere (`with_allocations`)."""
    rows: list[HeldRow] = []
    tables = sorted(allocator.tables.values(), key=lambda t: (t.subnet.family, t.subnet.network))
    for table in tables:
        subnet, family, held, key = str(table.subnet), table.subnet.family, table.held, table.key
        rows.extend((subnet, family, address, held[address], key) for address in sorted(held))
    return rows


@dataclass(frozen=True)
class HeldAddresses:
    """What the report's allocations and stale allocations are made of, taken at one moment:
    immutable, so `finish_report` may read it in any thread while the daemon goes on."""

    rows: Sequence[HeldRow]
    # Networks per pool subnet (`Allocator.pool_references`): how the stale judge knows whether
    # the driver's endpoints are every user of a subnet. None: the state is not known (not
    # loaded, not readable), so nothing is judged.
    references: Mapping[Subnet, int] | None
    driver: DriverState
    now: float


def held_addresses(held: Holdings) -> HeldAddresses:
    """Take what `finish_report` needs (quick: no text, no models)."""
    allocator, driver = held.allocator, held.driver or DriverState((), (), ())
    if allocator is None:
        return HeldAddresses((), None, driver, held.now)
    known = held.driver is not None
    return HeldAddresses(
        held_rows(allocator), allocator.pool_references() if known else None, driver, held.now
    )


def finish_report(report: StatusReport, addresses: HeldAddresses) -> StatusReport:
    """`report` with its allocations and its stale allocations (judged without Docker: the
    daemon never asks it); touches nothing of the daemon (any thread)."""
    report = with_allocations(report, addresses.rows)
    return report.model_copy(update={"stale_allocations": _stale(addresses)})


def _stale(addresses: HeldAddresses) -> list[StaleAllocationStatus]:
    if addresses.references is None:
        return []
    records = [
        AllocationRecord(
            key,
            format_address(family, address),
            h.pool_id,
            h.kind,
            h.refcount,
            h.mac,
            h.endpoint,
            h.allocated_at,
        )
        for _, family, address, holders, key in addresses.rows
        for h in holders
    ]
    judged = stale_candidates(records, addresses.references, addresses.driver, now=addresses.now)
    return [_stale_status(v) for v in judged]


def _stale_status(verdict: Verdict) -> StaleAllocationStatus:
    allocation = verdict.allocation
    return StaleAllocationStatus(
        pool_id=allocation.pool_id,
        subnet=str(verdict.subnet),
        address=allocation.address,
        kind=allocation.kind.value,
        endpoint=allocation.endpoint,
        allocated_at=allocation.allocated_at,
        verdict="stale" if verdict.outcome is Outcome.STALE else "suspect",
        reason=verdict.reason,
    )


def with_allocations(report: StatusReport, rows: Iterable[HeldRow]) -> StatusReport:
    """`report` with the allocations of `rows`; touches nothing of the daemon (any thread)."""
    found: list[AllocationStatus] = []
    for subnet, family, address, holders, _ in rows:
        text = format_address(family, address)
        found.extend(
            AllocationStatus(
                pool_id=h.pool_id,
                subnet=subnet,
                address=text,
                kind=h.kind.value,
                endpoint=h.endpoint,
                mac=h.mac,
                allocated_at=h.allocated_at,
            )
            for h in sorted(holders, key=lambda h: h.pool_id)
        )
    return report.model_copy(update={"allocations": found})


def _lan_conflicts(allocator: Allocator) -> list[LanConflictStatus]:
    found = []
    for key, address, mac, seen_at in allocator.lan_conflicts():
        space, lan, subnet = parse_table_key(key)
        found.append(
            LanConflictStatus(
                address_space=space,
                lan=lan,
                subnet=str(subnet),
                address=address,
                mac=mac,
                seen_at=seen_at,
            )
        )
    return sorted(found, key=lambda c: (c.subnet, c.address))


def _dhcp(d: DhcpLeaseRecord) -> DhcpLeaseStatus:
    return DhcpLeaseStatus(
        pool_id=d.pool_id,
        address=d.address,
        prefixlen=d.prefixlen,
        mac=d.mac,
        endpoint=d.endpoint,
        hostname=d.hostname,
        server_id=d.server_id,
        router=d.router,
        acquired_at=d.acquired_at,
        lease_seconds=d.lease_seconds,
        expires_at=d.acquired_at + d.lease_seconds,
        state=d.state,
        problem=d.problem,
    )


def _cluster(cluster: ClusterHoldings, node: str | None) -> ClusterStatus:
    blocks = sorted(
        cluster.blocks,
        key=lambda b: (b.scope.address_space, b.scope.lan, b.block.family, b.block.network),
    )
    return ClusterStatus(
        node=node,
        instance=cluster.instance,
        etcd=cluster.etcd,
        blocks=[
            ClusterBlockStatus(
                address_space=b.scope.address_space,
                lan=b.scope.lan,
                block=str(b.block),
                pool=b.pool,
                claimed_at=b.claimed_at,
            )
            for b in blocks
        ],
    )


def _claim(claim: Claim) -> ClaimStatus:
    return ClaimStatus(
        address=str(claim.address),
        expected_mac=claim.expected_mac,
        foreign_mac=claim.foreign_mac,
        link=claim.link,
        seen_at=claim.seen_at,
    )
