"""IPAM domain: address ranges, pools, per-host plans, the allocator and its durable store.

Knows nothing of Docker's HTTP protocol and nothing of the network driver. `plugin/` talks to it
through `IpamService` (one async method per IpamDriver call) and maps `IpamError.caller_fault` to
the HTTP status. Its I/O sits at two edges: the SQLite stores, and in cluster mode
(`ipam.cluster`, docs/cluster.md) the etcd client `ipam/cluster/etcd.py`, the one module here
that makes network requests.
"""

from ipam.defaults import DefaultPool, builtin_default_pools, parse_default_pools
from ipam.errors import (
    AddressInUse,
    AddressOutOfRange,
    AddressOwnedElsewhere,
    ClusterError,
    ClusterUnavailable,
    InvalidRequest,
    IpamError,
    NoAvailableAddresses,
    NoAvailablePool,
    PoolNotFound,
    PoolOverlap,
    StoreError,
)
from ipam.service import (
    AddressGrant,
    AddressSpaces,
    Capabilities,
    IpamService,
    IpamSettings,
    PoolGrant,
)
from ipam.store import IpamStore, MemoryStore

__all__ = [
    "AddressGrant",
    "AddressInUse",
    "AddressOutOfRange",
    "AddressOwnedElsewhere",
    "AddressSpaces",
    "Capabilities",
    "ClusterError",
    "ClusterUnavailable",
    "DefaultPool",
    "InvalidRequest",
    "IpamError",
    "IpamService",
    "IpamSettings",
    "IpamStore",
    "MemoryStore",
    "NoAvailableAddresses",
    "NoAvailablePool",
    "PoolGrant",
    "PoolNotFound",
    "PoolOverlap",
    "StoreError",
    "builtin_default_pools",
    "parse_default_pools",
]
