"""Read-only views of the IPAM state for operators (`pymacvlan status`, `doctor`, the metrics).

Pure: it reads an `Allocator` and changes nothing. The same views serve a running daemon (its
live allocator) and a stopped one's state directory (an allocator rebuilt from the stored rows by
`load_allocator`, exactly as the daemon rebuilds it at start-up).
"""

from __future__ import annotations

from dataclasses import dataclass

from ipam.addresses import AddressRange, set_to_ranges
from ipam.allocator import Allocator, Lease
from ipam.errors import IpamError, StoreError
from ipam.hostranges import HostRanges
from ipam.records import Snapshot
from ipam.store import damaged_record


@dataclass(frozen=True)
class PoolUsage:
    """How full one pool is on this host.

    Every count but `used` is of the automatic set: this host's range(s) minus the exclusions
    and the subnet's reserved addresses, the addresses the allocator hands out by itself."""

    size: int
    used: int  # addresses this pool holds (gateway, aux and --ip ones included)
    free: int  # neither held nor resting: what the next requests get
    quarantined: int  # released by a container, resting before reuse
    lan_in_use: int  # found in use on the LAN by another device (probing), resting


def pool_usage(lease: Lease) -> PoolUsage:
    table = lease.table
    auto = lease.auto
    quarantined = lan_in_use = 0
    for address, resting in table.quarantine.items():
        if address not in auto:
            continue
        if resting.lan_mac:
            lan_in_use += 1
        else:
            quarantined += 1
    size = auto.size()
    return PoolUsage(
        size=size,
        used=lease.held_count,
        free=size - auto.intersection_size(table.unavailable),
        quarantined=quarantined,
        lan_in_use=lan_in_use,
    )


def automatic_ranges(lease: Lease) -> tuple[AddressRange, ...]:
    """The automatic set of `lease` as ranges, in address order."""
    return set_to_ranges(lease.table.subnet.family, lease.auto)


def load_allocator(
    snapshot: Snapshot, host_ranges: HostRanges, default_quarantine: float, store_name: str
) -> Allocator:
    """The allocator holding what `snapshot` holds. Rows that do not make sense (an address that
    is not one, a table of no subnet) were written by something else than pymacvlan: the file
    is damaged, and that is one `StoreError` line naming `store_name`, not a traceback."""
    allocator = Allocator(host_ranges, default_quarantine)
    try:
        allocator.apply(snapshot.as_change())
    except StoreError:
        raise
    except (IpamError, ValueError, KeyError, TypeError, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}"[:200]
        raise StoreError(damaged_record(store_name, reason)) from exc
    return allocator
