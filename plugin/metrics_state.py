"""The metrics read from the services when Prometheus scrapes: a custom collector.

Nothing here is kept up to date as things change: every scrape reads the IPAM's pools and
leases, the driver's networks, endpoints, links and counters, and cluster mode's blocks and etcd
counters as they are at that moment (on the event loop, like every change to them, so a scrape
never sees half a change). Counters that only grow (announcements, claims, etcd calls) are kept
by the services themselves as plain numbers: `driver/` and `ipam/` know no metrics library.

What the state holds is reported only once it is loaded and usable; before that, and when it
cannot be used, only the health, the build and the counters are (pymacvlan_health says why).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from driver.service import DriverCounts
from ipam.cluster.etcd import CALL_OUTCOMES, LATENCY_BOUNDS, EtcdStats
from ipam.cluster.mode import ClusterMode
from ipam.dhcp.timeline import BOUND, EXPIRED, REBINDING, REFUSED, RENEWING
from ipam.inventory import pool_usage
from ipam.service import IpamService
from plugin.admin.health import HEALTH_STATES, assess
from plugin.services import Services

POOL_LABELS = ["pool", "address_space", "lan", "subnet"]
# A lease's states (ipam/dhcp/timeline.py): every one is reported, 0 when none is in it.
DHCP_STATES = (BOUND, RENEWING, REBINDING, EXPIRED, REFUSED)


class StateCollector:
    """A prometheus_client collector over the services `services()` returns (None before the
    app has started them)."""

    def __init__(self, services: Callable[[], Services | None]) -> None:
        self._services = services
        self._build = build_labels()

    def collect(self) -> Iterator[Metric]:
        services = self._services()
        yield InfoMetricFamily(
            "pymacvlan_build", "The running pymacvlan: its version and Python's.", self._build
        )
        yield health_family(services)
        if services is None:
            return
        counts = services.driver.counts()
        if services.loaded and services.load_error is None:
            yield from pool_families(services.ipam)
            yield from ipam_families(services.ipam)
            yield from driver_families(counts)
        yield from driver_counters(counts)
        cluster = services.ipam.cluster
        if isinstance(cluster, ClusterMode):
            yield from cluster_families(cluster)


def build_labels() -> dict[str, str]:
    try:
        own = version("pymacvlan")
    except PackageNotFoundError:
        own = "unknown"
    return {"version": own, "python": platform.python_version()}


def health_family(services: Services | None) -> GaugeMetricFamily:
    status = assess(services).status
    family = GaugeMetricFamily(
        "pymacvlan_health",
        "1 for the daemon's health now (ready, loading or degraded; GET /pymacvlan/v1/health "
        "says why), 0 for the others.",
        labels=["status"],
    )
    for state in HEALTH_STATES:
        family.add_metric([state], 1.0 if state == status else 0.0)
    return family


def pool_families(ipam: IpamService) -> Iterator[Metric]:
    size = GaugeMetricFamily(
        "pymacvlan_pool_size",
        "Addresses this host hands out by itself in the pool (its range of the subnet, less "
        "exclusions and reserved addresses).",
        labels=POOL_LABELS,
    )
    addresses = GaugeMetricFamily(
        "pymacvlan_pool_addresses",
        "Addresses of the pool by state: used (held, gateway and --ip ones included), free, "
        "quarantined (released, resting), lan_in_use (found answering on the LAN by a probe).",
        labels=[*POOL_LABELS, "state"],
    )
    for lease in ipam.allocator.leases.values():
        record = lease.record
        labels = [record.pool_id, record.address_space, record.lan, record.subnet]
        usage = pool_usage(lease)
        size.add_metric(labels, usage.size)
        addresses.add_metric([*labels, "used"], usage.used)
        addresses.add_metric([*labels, "free"], usage.free)
        addresses.add_metric([*labels, "quarantined"], usage.quarantined)
        addresses.add_metric([*labels, "lan_in_use"], usage.lan_in_use)
    yield size
    yield addresses


def ipam_families(ipam: IpamService) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "pymacvlan_lan_conflicts",
        "Addresses that a probe found in use by another device on the LAN, resting until they "
        "are probed again.",
        value=len(ipam.lan_conflicts()),
    )
    leases = GaugeMetricFamily(
        "pymacvlan_dhcp_leases",
        "Leases from the LANs' DHCP servers (--ipam-opt dhcp=on), by state.",
        labels=["state"],
    )
    by_state = dict.fromkeys(DHCP_STATES, 0)
    for lease in ipam.dhcp_leases():
        by_state[lease.state] = by_state.get(lease.state, 0) + 1
    for state, count in by_state.items():
        leases.add_metric([state], count)
    yield leases


def driver_families(counts: DriverCounts) -> Iterator[Metric]:
    yield GaugeMetricFamily("pymacvlan_networks", "Networks of this host.", value=counts.networks)
    yield GaugeMetricFamily(
        "pymacvlan_endpoints", "Endpoints (containers' interfaces).", value=counts.endpoints
    )
    links = GaugeMetricFamily(
        "pymacvlan_owned_links",
        "Links pymacvlan created and owns, by kind: vlan and dummy parents, macvlan and ipvlan "
        "host shims.",
        labels=["kind"],
    )
    for kind, count in counts.owned_links.items():
        links.add_metric([kind], count)
    yield links


def driver_counters(counts: DriverCounts) -> Iterator[Metric]:
    yield CounterMetricFamily(
        "pymacvlan_announcement_frames",
        "Gratuitous ARP and unsolicited NA frames sent for new container addresses.",
        value=counts.announced_frames,
    )
    yield CounterMetricFamily(
        "pymacvlan_announcement_failures",
        "Rounds of announcements that could not be sent (the parent is gone or down).",
        value=counts.announce_failures,
    )
    yield CounterMetricFamily(
        "pymacvlan_address_claims",
        "Frames in which another device claimed a container's address (ARP or NA from a "
        "foreign MAC): an address conflict on the LAN.",
        value=counts.claims_seen,
    )


def cluster_families(cluster: ClusterMode) -> Iterator[Metric]:
    blocks = GaugeMetricFamily(
        "pymacvlan_cluster_blocks",
        "Blocks of shared subnets this host holds in cluster mode.",
        labels=["address_space", "lan", "family"],
    )
    for scope, held in sorted(cluster.all_blocks().items(), key=lambda item: str(item[0])):
        blocks.add_metric([scope.address_space, scope.lan, scope.family.label], len(held))
    yield blocks
    reachable = cluster.etcd_reachable
    if reachable is not None:
        yield GaugeMetricFamily(
            "pymacvlan_etcd_reachable",
            "1 when the last contact with etcd succeeded, 0 when it failed.",
            value=1.0 if reachable else 0.0,
        )
    stats = cluster.etcd_stats
    if stats is not None:
        yield from etcd_families(stats)


def etcd_families(stats: EtcdStats) -> Iterator[Metric]:
    calls = CounterMetricFamily(
        "pymacvlan_etcd_requests",
        "Calls to etcd (all attempts of one call, failover included), by call and outcome: ok, "
        "unavailable (no endpoint answered in time), refused (etcd answered with an error), "
        "cancelled (the caller stopped waiting).",
        labels=["call", "outcome"],
    )
    seconds = HistogramMetricFamily(
        "pymacvlan_etcd_request_duration_seconds",
        "Time etcd calls took, failover included, by call.",
        labels=["call"],
    )
    for call, stat in sorted(stats.calls.items()):
        for outcome in CALL_OUTCOMES:
            calls.add_metric([call, outcome], stat.outcomes[outcome])
        seconds.add_metric([call], cumulative_buckets(stat.buckets), stat.seconds)
    yield calls
    yield seconds


def cumulative_buckets(counts: list[int]) -> list[tuple[str, float]]:
    """Prometheus buckets (``le``, calls at or below it) from calls per bucket: one count per
    bound in `LATENCY_BOUNDS`, then one for the longer calls."""
    bounds = [*(repr(float(b)) for b in LATENCY_BOUNDS), "+Inf"]
    total = 0
    buckets = []
    for bound, count in zip(bounds, counts, strict=True):
        total += count
        buckets.append((bound, float(total)))
    return buckets
