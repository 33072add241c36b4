"""The seam "which ranges of a pool may this host hand out automatically?".

Rule: the allocator never decides this itself; it asks a `HostRanges` source once per lease (when
the lease is created or loaded) and then subtracts the exclusions and the reserved addresses.

`StaticPlan` answers from the pool's own options, which every host evaluates identically: this
node's entry of the address plan, else the ip-range, else the whole subnet.

Cluster mode (`ipam.cluster.ClusterMode`) plugs in here as a `ClaimingHostRanges`: hosts claim
blocks of a shared subnet in etcd (host-affine, like Calico's IPAM), and `ranges_for` answers from
the local cache of this host's blocks. The allocator does not know the difference. The service
adds the steps that need the cluster: on `NoAvailableAddresses` it asks for another block and
retries, before an `--ip` it asks whether another host owns the address, and it lends the
cluster mode a `LocalUsage` view so that empty blocks can be given back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ipam.addresses import AddressRange, Family, Subnet
from ipam.errors import InvalidRequest
from ipam.options import OPT_NODES, OPT_RANGE_PREFIX, PoolSpec


@dataclass(frozen=True)
class HostRangeSet:
    """The ranges this host may allocate from automatically, and how to name them to a user."""

    ranges: tuple[AddressRange, ...]
    description: str  # e.g. 'range 192.0.2.10-192.0.2.19 of node "hostA"'; "" for the subnet


class HostRanges(Protocol):
    def ranges_for(self, spec: PoolSpec) -> HostRangeSet:
        """This host's automatic ranges in the pool of `spec`; `InvalidRequest` if it has none."""
        ...


class StaticPlan:
    """`HostRanges` from the pool's options and this node's name."""

    def __init__(self, node_name: str) -> None:
        self.node_name = node_name

    def ranges_for(self, spec: PoolSpec) -> HostRangeSet:
        plan = spec.plan
        if plan is not None:
            ranges = plan.ranges.get(self.node_name)
            if ranges is None:
                if plan.source == "nodes":
                    fix = f"add {self.node_name} to --ipam-opt {OPT_NODES}=..."
                else:
                    fix = f"add --ipam-opt {OPT_RANGE_PREFIX}{self.node_name}=..."
                raise InvalidRequest(
                    f"the address plan names nodes {plan.describe_nodes()} but not this host "
                    f'"{self.node_name}": {fix} or set this plugin\'s node name '
                    "(PYMACVLAN_NODE_NAME)"
                )
            text = ", ".join(str(r) for r in ranges)
            noun = "range" if len(ranges) == 1 else "ranges"
            return HostRangeSet(ranges, f'{noun} {text} of node "{self.node_name}"')
        if spec.sub_pool is not None:
            return HostRangeSet((spec.sub_pool.as_range(),), f"ip-range {spec.sub_pool}")
        return HostRangeSet((spec.subnet.as_range(),), "")


class LocalUsage(Protocol):
    """What cluster mode may see of this host's allocations (the service provides it).

    `lock` is the service's mutation lock: `occupied`, `cluster_spans` and `refresh` are only
    called while holding it, so no allocation can slip into a block between "it is empty" and
    "it is no longer ours".
    """

    @property
    def lock(self) -> asyncio.Lock: ...

    def occupied(self, address_space: str, lan: str, block: Subnet) -> bool:
        """Whether any address of `block` is held or resting in quarantine on this host."""
        ...

    def cluster_spans(self, address_space: str, lan: str, family: Family) -> list[Subnet]:
        """The spans (ip-range, else subnet) of this host's cluster-managed pools there."""
        ...

    def refresh(self) -> None:
        """Ask `ranges_for` again for every pool: this host's blocks changed."""
        ...


class ClaimingHostRanges(HostRanges, Protocol):
    """`HostRanges` that can grow by claiming blocks in a cluster (`ipam.cluster.ClusterMode`).

    Its async methods may raise `ClusterUnavailable` (etcd cannot be reached), `ClusterError`,
    `NoAvailableAddresses` (no free block left) and `AddressOwnedElsewhere`.
    """

    def manages(self, spec: PoolSpec) -> bool:
        """Whether automatic allocation in this pool draws from claimed blocks."""
        ...

    def recently_unreachable(self) -> bool:
        """Whether the last contact with the cluster failed a moment ago (optional claims are
        then skipped rather than made to wait for a dead cluster)."""
        ...

    async def load(self) -> None:
        """Read the local block cache (before the allocator asks `ranges_for`)."""
        ...

    def start(self, usage: LocalUsage) -> None:
        """Begin the background upkeep (registration, reconciliation, giving blocks back)."""
        ...

    async def close(self) -> None: ...

    async def claim_block(
        self,
        spec: PoolSpec,
        *,
        still_needed: Callable[[], bool],
        usable: Callable[[AddressRange], bool],
    ) -> None:
        """Claim one more block for the pool of `spec`, unless `still_needed()` says another
        request has done it meanwhile; `usable(block)` says whether a block would help."""
        ...

    async def claim_address(self, spec: PoolSpec, value: int) -> None:
        """Make sure no other host may hand out `value` (a specific address asked for on this
        host): it is in a block of this host, or this host now holds it alone."""
        ...
