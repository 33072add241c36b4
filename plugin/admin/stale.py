"""Stale allocations as the daemon sees them: the witnesses it has, and the verdicts.

The decision itself is `ipam.stale.judge` (pure); this module gathers what it is told:

* **Docker**, when the command line asked the engine (`DockerView`, sent with `gc`; the daemon
  never calls the engine itself). For a subnet of a network whose IPAM is this plugin, Docker
  knows every address in use on this host: its containers' endpoints, the gateway, the aux
  addresses. It is the witness that makes a verdict certain.
* **The network driver's endpoints**. After DeleteEndpoint an endpoint's record (and its link)
  is gone; a ReleaseAddress lost after it leaves exactly an allocation without an endpoint. That
  is certain only for a subnet whose every network is a pymacvlan network: the sum of the
  reference counts of the subnet's pools (one per network that asked for it) must equal the
  number of pymacvlan networks on it. A network of Docker's own macvlan with
  `--ipam-driver pymacvlan` has endpoints only Docker knows.

`stale_candidates` (without Docker: a running daemon's status report, or a stopped daemon's
state directory) is what `status` and `doctor` show; `gc` frees the `STALE` ones of `verdicts`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from driver.records import DriverState
from ipam.addresses import Family, Subnet
from ipam.allocator import Allocator
from ipam.records import AllocationRecord
from ipam.stale import DEFAULT_GRACE_SECONDS, Outcome, Verdict, Witness, judge

if TYPE_CHECKING:  # the command line reads state without a daemon: no aiohttp, no netlink
    from plugin.services import Services

DOCKER = "Docker"
DRIVER = "the pymacvlan network driver"
NOT_ASKED = "Docker was not asked (the daemon never calls it; `pymacvlan gc` does)"


@dataclass(frozen=True)
class DockerView:
    """What Docker's engine said when the command line asked it (at `asked_at`, the daemon's
    clock on the same host): per subnet of a network whose IPAM is this plugin, every address
    in use there on this host."""

    asked_at: float
    subnets: Mapping[Subnet, frozenset[int]]


def stale_candidates(
    allocations: Iterable[AllocationRecord],
    references: Mapping[Subnet, int],
    driver: DriverState,
    *,
    now: float,
    grace: float = DEFAULT_GRACE_SECONDS,
    docker_problem: str = NOT_ASKED,
) -> list[Verdict]:
    """The allocations that are stale (certain) or suspect (perhaps), oldest first, judged
    without Docker: `allocations` and `references` (its `pool_references()`) as taken from an
    allocator, `driver` the driver's records. The same for a running daemon (what its status
    report took on its event loop, judged in a worker thread) and for a stopped daemon's state
    directory read offline: the driver's records are as good a witness there as in memory."""
    return _candidates(
        judge_allocations(
            allocations,
            references,
            driver,
            None,
            now=now,
            grace=grace,
            docker_problem=docker_problem,
        )
    )


def _candidates(judged: list[Verdict]) -> list[Verdict]:
    return [v for v in judged if v.outcome is not Outcome.KEPT]


def verdicts(
    services: Services,
    docker: DockerView | None,
    *,
    grace: float,
    docker_problem: str = NOT_ASKED,
) -> list[Verdict]:
    """A verdict for every allocation of a running daemon, oldest first."""
    return verdicts_of(
        services.ipam.allocator,
        services.driver.snapshot(),
        docker,
        now=services.ipam.now(),
        grace=grace,
        docker_problem=docker_problem,
    )


def verdicts_of(
    allocator: Allocator,
    driver: DriverState,
    docker: DockerView | None,
    *,
    now: float,
    grace: float,
    docker_problem: str = NOT_ASKED,
) -> list[Verdict]:
    """A verdict for every allocation of `allocator`, oldest first."""
    return judge_allocations(
        allocator.allocation_records(),
        allocator.pool_references(),
        driver,
        docker,
        now=now,
        grace=grace,
        docker_problem=docker_problem,
    )


def judge_allocations(
    allocations: Iterable[AllocationRecord],
    references: Mapping[Subnet, int],
    driver: DriverState,
    docker: DockerView | None,
    *,
    now: float,
    grace: float,
    docker_problem: str = NOT_ASKED,
) -> list[Verdict]:
    """A verdict for every allocation of `allocations` (of an allocator whose pools' subnets
    and reference counts are `references`), oldest first."""
    from_driver = driver_witnesses(driver, references)
    witnesses: dict[Subnet, list[Witness]] = {}
    for subnet in references:
        if docker is None:
            asked = Witness(DOCKER, frozenset(), docker_problem)
        elif subnet in docker.subnets:
            asked = Witness(DOCKER, docker.subnets[subnet])
        else:
            asked = Witness(
                DOCKER,
                frozenset(),
                f"Docker has no network with this plugin's IPAM driver on {subnet} (a network "
                "of another engine, or left over)",
            )
        witnesses[subnet] = [asked, from_driver[subnet]]
    return judge(
        sorted(allocations, key=lambda a: a.allocated_at),
        witnesses,
        now=now,
        grace=grace,
        asked_at=docker.asked_at if docker is not None else None,
    )


def driver_witnesses(state: DriverState, references: Mapping[Subnet, int]) -> dict[Subnet, Witness]:
    """The driver's witness for every subnet of `references` (networks per pool subnet)."""
    networks: dict[Subnet, int] = {}
    in_use: dict[Subnet, set[int]] = {}
    pools_of: dict[str, list[tuple[Subnet, ipaddress.IPv4Network | ipaddress.IPv6Network]]] = {}
    for config in state.networks:
        for s in config.subnets:
            subnet = _subnet(s.pool)
            networks[subnet] = networks.get(subnet, 0) + 1
            used = in_use.setdefault(subnet, set())
            used.update(int(a) for a in s.aux_addresses.values())
            if s.gateway is not None:
                used.add(int(s.gateway))
            pools_of.setdefault(config.network_id, []).append((subnet, s.pool))
    for ep in state.endpoints:
        for iface in (ep.ipv4, ep.ipv6):
            if iface is None:
                continue
            for subnet, pool in pools_of.get(ep.network_id, ()):
                if iface.ip.version == pool.version and iface.ip in pool:
                    in_use[subnet].add(int(iface.ip))
    found: dict[Subnet, Witness] = {}
    for subnet, holders in references.items():
        ours = networks.get(subnet, 0)
        seen = frozenset(in_use.get(subnet, ()))
        if ours == 0:
            why: str | None = (
                f"no pymacvlan network uses {subnet} (networks of another network driver hold "
                "it, whose endpoints only Docker knows)"
            )
        elif ours != holders:
            why = (
                f"{_networks(holders)} hold a pool on {subnet} and {ours} of them "
                f"{'is a pymacvlan network' if ours == 1 else 'are pymacvlan networks'}: the "
                "endpoints of the others only Docker knows"
            )
        else:
            why = None
        found[subnet] = Witness(DRIVER, seen, why)
    return found


def _subnet(pool: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Subnet:
    family = Family.V4 if pool.version == 4 else Family.V6
    return Subnet(family, int(pool.network_address), pool.prefixlen)


def _networks(count: int) -> str:
    return "1 network" if count == 1 else f"{count} networks"
