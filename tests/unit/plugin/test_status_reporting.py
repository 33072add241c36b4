"""The status report built from what a daemon holds (plugin/admin/reporting.py): the driver's
records and an allocator, made here by hand, with no daemon and no disk."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path
from typing import cast

from driver.config import NetworkConfig, Parent, Subnet
from driver.lan.claims import Claim
from driver.names import shim_link_name
from driver.records import DriverState, EndpointRecord, OwnedLink
from ipam.allocator import Allocator
from ipam.hostranges import StaticPlan
from ipam.records import (
    AllocationRecord,
    Change,
    DhcpLeaseRecord,
    Kind,
    LeaseRecord,
    QuarantineRecord,
)
from plugin.admin.reporting import Holdings, build_report
from plugin.admin.status import live_report
from plugin.services import Services
from plugin.settings import Settings

NOW = 1_800_000_000.0
NET = "9" * 64
EP = "7" * 64
KEY = "local/default/192.0.2.0/24"
POOL = KEY


def driver_state() -> DriverState:
    config = NetworkConfig(
        network_id=NET,
        kind="ipvlan",
        parent=Parent("eth1.30", vlan_base="eth1", vlan_id=30),
        ipvlan_mode="l2",
        ipvlan_flag="bridge",
        mtu=1400,
        host_address="host",
        ipv4=(
            Subnet(
                ipaddress.ip_network("192.0.2.0/24"),
                ipaddress.ip_address("192.0.2.1"),
                {"host": ipaddress.ip_address("192.0.2.2")},
            ),
        ),
    )
    endpoint = EndpointRecord(
        EP, NET, "pmv777777777777", mac="", ipv4=ipaddress.IPv4Interface("192.0.2.10/24")
    )
    links = (
        OwnedLink("eth1.30", "vlan", "pymacvlan:vlan:eth1.30", base="eth1", vlan_id=30),
        OwnedLink(shim_link_name("eth1.30"), "ipvlan", "pymacvlan:shim:eth1.30", base="eth1.30"),
    )
    return DriverState(networks=(config,), endpoints=(endpoint,), owned_links=links)


def allocator() -> Allocator:
    found = Allocator(StaticPlan("node1"), 300.0)
    options = {"range.node1": "192.0.2.10-192.0.2.19", "exclude": "192.0.2.19"}
    found.apply(
        Change(
            put_leases=(
                LeaseRecord(POOL, "local", "default", "192.0.2.0/24", "", options, 1, NOW),
            ),
            put_allocations=(
                AllocationRecord(KEY, "192.0.2.1", POOL, Kind.GATEWAY, 1, None, None, NOW),
                AllocationRecord(KEY, "192.0.2.2", POOL, Kind.RESERVED, 1, None, None, NOW),
                AllocationRecord(KEY, "192.0.2.10", POOL, Kind.DYNAMIC, 1, None, "web", NOW),
            ),
            put_quarantine=(
                QuarantineRecord(KEY, "192.0.2.11", NOW - 10, NOW + 290, "old"),
                QuarantineRecord(KEY, "192.0.2.12", NOW - 5, NOW + 595, None, "00:11:22:33:44:55"),
            ),
        )
    )
    return found


def test_everything_a_daemon_holds_is_in_the_report() -> None:
    lease = DhcpLeaseRecord(
        POOL,
        "192.0.2.13",
        24,
        "02:00:00:00:00:13",
        "01",
        None,
        "dhcp-one",
        "192.0.2.1",
        "00:00:5e:00:01:01",
        "192.0.2.1",
        3600,
        1800,
        3150,
        NOW - 100,
        "bound",
        None,
    )
    claim = Claim(
        ipaddress.ip_address("192.0.2.10"), "02:00:00:00:00:10", "00:aa:bb:cc:dd:ee", "eth1.30", NOW
    )
    report = build_report(
        Holdings(
            source="daemon",
            state_dir="/var/lib/pymacvlan",
            node_name="node1",
            now=NOW,
            driver=driver_state(),
            allocator=allocator(),
            dhcp_leases=(lease,),
            claims=(claim,),
            claims_seen=4,
        )
    )
    [network] = report.networks
    assert (network.kind, network.mode, network.parent, network.vlan, network.link) == (
        "ipvlan",
        "l2/bridge",
        "eth1",
        30,
        "eth1.30",
    )
    assert network.mtu == 1400
    assert network.shim is not None
    assert (network.shim.link, network.shim.address) == (shim_link_name("eth1.30"), "192.0.2.2")
    assert network.owned_links == ["eth1.30", shim_link_name("eth1.30")]
    assert network.subnets[0].aux_addresses == {"host": "192.0.2.2"}
    assert {link.name: link.networks for link in report.owned_links} == {
        "eth1.30": [NET],
        shim_link_name("eth1.30"): [NET],
    }
    [endpoint] = report.endpoints
    assert (endpoint.ipv4, endpoint.container) == ("192.0.2.10/24", "web")

    [pool] = report.pools
    assert pool.host_ranges == ["192.0.2.10-192.0.2.18"]  # the range minus the exclusion
    assert pool.exclude == ["192.0.2.19"]
    # 9 addresses: .10 held, .11 resting, .12 answered on the LAN, 6 free; .1 and .2 are held
    # by the pool outside its range.
    assert pool.counts.model_dump() == {
        "size": 9,
        "used": 3,
        "free": 6,
        "quarantined": 1,
        "lan_in_use": 1,
    }
    assert [(a.address, a.kind) for a in report.allocations] == [
        ("192.0.2.1", "gateway"),
        ("192.0.2.2", "reserved"),
        ("192.0.2.10", "dynamic"),
    ]
    [conflict] = report.lan_conflicts
    assert (conflict.subnet, conflict.address, conflict.mac) == (
        "192.0.2.0/24",
        "192.0.2.12",
        "00:11:22:33:44:55",
    )
    [dhcp] = report.dhcp_leases
    assert (dhcp.address, dhcp.expires_at, dhcp.state) == ("192.0.2.13", NOW + 3500, "bound")
    assert report.claims is not None
    assert [(c.address, c.foreign_mac) for c in report.claims] == [
        ("192.0.2.10", "00:aa:bb:cc:dd:ee")
    ]
    assert report.claims_seen == 4


def test_a_plan_without_this_node_is_a_pools_problem_not_a_failure() -> None:
    held = allocator()
    other = Allocator(StaticPlan("node2"), 300.0)
    other.apply(Change(put_leases=tuple(lease.record for lease in held.leases.values())))
    report = build_report(
        Holdings(source="state-dir", state_dir="/s", node_name="node2", now=NOW, allocator=other)
    )
    [pool] = report.pools
    assert pool.counts.size == 0
    assert pool.problem is not None
    assert 'not this host "node2"' in pool.problem


class Loading:
    """A daemon's services while the state is still being read."""

    loaded = False
    load_error = None


def test_a_daemon_still_loading_says_so_at_once() -> None:
    settings = Settings(socket=Path("/run/x.sock"), state_dir=Path("/s"), node_name="node1")
    report = asyncio.run(live_report(cast(Services, Loading()), settings))
    assert (report.source, report.health, report.node_name) == ("daemon", "loading", "node1")
    assert report.problems == ["the daemon is still loading its state"]
    assert report.networks == []
