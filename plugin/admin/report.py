"""The status report: what one pymacvlan daemon holds, as `pymacvlan status` shows it.

One typed model, built two ways (plugin/admin/status.py): live from a running daemon's services,
or offline, read-only, from a stopped daemon's state directory (plugin/admin/offline.py). The
daemon serves it as JSON on `GET /pymacvlan/v1/status`; the command line reads it back with
`StatusReport.model_validate` and adds what only Docker knows (network and container names).

Rules:

* Plain values only (strings, numbers, lists): addresses as canonical text, times as seconds since
  the epoch, so the JSON reads well and a script needs no pymacvlan to use it.
* Field names are stable: `doctor` and `gc` read this model, scripts read its JSON. New fields
  get defaults; unknown fields are ignored (a newer daemon, an older command line).
* Nothing here computes anything: the builders fill it, `narrow()` filters it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

REPORT_VERSION = 1

Source = Literal["daemon", "state-dir"]
# ready: the state is loaded (or was read); loading: the daemon is still reading it; unusable:
# it could not be loaded or read (see `problems`).
StateHealth = Literal["ready", "loading", "unusable"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class SubnetStatus(_Model):
    subnet: str  # CIDR
    gateway: str | None = None
    aux_addresses: dict[str, str] = Field(default_factory=dict)  # name -> address


class ShimStatus(_Model):
    """The host's own link on the network's LAN (-o host_address)."""

    link: str  # pmvh-<hash>
    address: str | None  # the host address it carries for this network (None: not resolvable)


class NetworkStatus(_Model):
    id: str
    name: str | None = None  # Docker's name: filled by the command line when Docker answers
    kind: str  # macvlan | ipvlan
    mode: str  # macvlan: bridge|private|vepa|passthru; ipvlan: l2|l3|l3s "/" bridge|private|vepa
    parent: str  # as the user named it (-o parent; the VLAN's base); "" without a parent
    vlan: int | None = None  # 802.1q id when the parent is a VLAN link
    link: str  # the link the endpoints hang on: eth0, eth0.10, dm-<id>
    dummy: bool = False  # no -o parent: an isolated dummy link of its own
    mtu: int | None = None  # None: the parent's
    internal: bool = False
    subnets: list[SubnetStatus] = Field(default_factory=list)
    owned_links: list[str] = Field(default_factory=list)  # links the plugin made for it
    shim: ShimStatus | None = None


class EndpointStatus(_Model):
    id: str
    network_id: str
    link: str  # the link's name in the host namespace (pmv<id>) until Docker moves it
    mac: str = ""  # "" : the kernel's choice (ipvlan: the parent's)
    ipv4: str | None = None  # CIDR
    ipv6: str | None = None
    # The container's name: Docker's (by the command line), else the endpoint name Docker >= 29
    # sent with the address request (kept by the IPAM).
    container: str | None = None


class OwnedLinkStatus(_Model):
    name: str
    kind: str  # vlan | dummy | macvlan | ipvlan (host shims)
    base: str = ""  # the VLAN's or the shim's parent
    vlan: int | None = None
    networks: list[str] = Field(default_factory=list)  # ids of the networks that use it


class PoolCounts(_Model):
    """Addresses of this host's automatic set (its range minus exclusions and reserved ones),
    except `used`, which counts every address the pool holds (gateways and --ip included)."""

    size: int  # addresses this host may hand out automatically
    used: int  # addresses held by this pool
    free: int  # of `size`, neither held nor resting
    quarantined: int  # released, resting before reuse (of `size`)
    lan_in_use: int  # found in use on the LAN by a device pymacvlan did not give them to


class PoolStatus(_Model):
    pool_id: str
    subnet: str
    family: int  # 4 | 6
    address_space: str
    lan: str
    ip_range: str | None = None
    # This host's share, as the allocator names it ('range 192.0.2.10-192.0.2.19 of node "a"',
    # 'ip-range ...', cluster blocks); "" for the whole subnet.
    host_range: str = ""
    host_ranges: list[str] = Field(default_factory=list)  # "first-last" of the automatic set
    options: dict[str, str] = Field(default_factory=dict)  # the --ipam-opt map as given
    exclude: list[str] = Field(default_factory=list)
    probe: str | None = None  # on | dynamic | off
    dhcp: bool = False
    networks: int = 1  # Docker networks sharing this pool (its reference count)
    created_at: float | None = None
    counts: PoolCounts
    problem: str | None = None  # why automatic allocation is impossible here, when it is


class AllocationStatus(_Model):
    pool_id: str
    subnet: str
    address: str
    kind: str  # gateway | reserved | static | dynamic
    endpoint: str | None = None  # the endpoint (container) name Docker >= 29 sends
    mac: str | None = None
    allocated_at: float


class StaleAllocationStatus(_Model):
    """An allocation that may outlive its container, judged without Docker's view (the daemon
    never asks Docker; plugin/admin/stale.py): `stale` is certain without Docker (no pymacvlan
    endpoint holds it, and every network on its subnet is a pymacvlan network), `suspect` is
    perhaps unused but not certain (`reason` says why). `pymacvlan gc` frees what is certain."""

    pool_id: str
    subnet: str
    address: str
    kind: str  # static | dynamic (gateways and reserved addresses are never stale)
    endpoint: str | None = None  # the endpoint (container) name Docker >= 29 sent
    allocated_at: float
    verdict: Literal["stale", "suspect"]
    reason: str


class ClusterBlockStatus(_Model):
    address_space: str
    lan: str
    block: str  # CIDR
    pool: str  # the subnet it was claimed for
    claimed_at: float


class ClusterStatus(_Model):
    node: str | None = None
    instance: str | None = None  # this state directory's identity in the cluster
    etcd: str | None = None  # the endpoints (live only)
    blocks: list[ClusterBlockStatus] = Field(default_factory=list)


class LanConflictStatus(_Model):
    address_space: str
    lan: str
    subnet: str
    address: str
    mac: str  # the device that answered for it
    seen_at: float


class ClaimStatus(_Model):
    """Another device claimed a container's address on the LAN (live only)."""

    address: str
    expected_mac: str
    foreign_mac: str
    link: str
    seen_at: float


class DhcpLeaseStatus(_Model):
    pool_id: str
    address: str
    prefixlen: int
    mac: str
    endpoint: str | None = None
    hostname: str | None = None
    server_id: str
    router: str | None = None
    acquired_at: float
    lease_seconds: int
    expires_at: float
    state: str  # bound | renewing | rebinding | expired | refused
    problem: str | None = None


class StatusReport(_Model):
    version: int = REPORT_VERSION
    source: Source
    # Where the state is and where the daemon listens (source "daemon"): as the daemon sees
    # them; the command line shows a managed plugin's paths on the host instead.
    state_dir: str
    socket: str | None = None
    node_name: str | None = None
    generated_at: float
    health: StateHealth
    problems: list[str] = Field(default_factory=list)
    networks: list[NetworkStatus] = Field(default_factory=list)
    endpoints: list[EndpointStatus] = Field(default_factory=list)
    owned_links: list[OwnedLinkStatus] = Field(default_factory=list)
    pools: list[PoolStatus] = Field(default_factory=list)
    allocations: list[AllocationStatus] = Field(default_factory=list)
    # Oldest first; empty also where the state could not be judged (not loaded, not readable).
    stale_allocations: list[StaleAllocationStatus] = Field(default_factory=list)
    cluster: ClusterStatus | None = None  # None: not in cluster mode
    lan_conflicts: list[LanConflictStatus] = Field(default_factory=list)
    # None: not known (offline: claims are seen by a running daemon only, and kept in memory).
    claims: list[ClaimStatus] | None = None
    claims_seen: int | None = None  # claiming frames since the daemon started
    dhcp_leases: list[DhcpLeaseStatus] = Field(default_factory=list)
    # Filled by the command line: None when Docker was asked for names, else why it could not be.
    names_problem: str | None = None
    # The network filter this report was narrowed to (network ids), if any.
    narrowed_to: list[str] | None = None
