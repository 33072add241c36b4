"""The seam "which ranges of a pool may this host hand out automatically?".

Rule: the allocator never decides this itself; it asks a `HostRanges` source once per lease (when
the lease is created or loaded) and then subtracts the exclusions and the reserved addresses.

`StaticPlan` answers from the pool's own options, which every host evaluates identically: this
node's entry of the address plan, else the ip-range, else the whole subnet.

A later cluster mode plugs in here without touching the allocator: an etcd-backed source where
hosts claim blocks of a shared subnet (host-affine, like Calico's IPAM) would keep a local cache
of the blocks this host has claimed and answer `ranges_for` from it; claiming another block when
a lease runs out would be a service-level step (on `NoAvailableAddresses`: claim, then rebuild
the lease's ranges), and the explicit-address rules would stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ipam.addresses import AddressRange
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
