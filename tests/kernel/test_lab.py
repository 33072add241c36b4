"""A lab of hosts: namespaces cabled to a bridge "switch", each running its own pymacvlan daemon
(own socket, own state), driven through the protocol exactly as each host's dockerd drives it.

The same `docker network create` on every host must give each host its own part of the subnet,
containers on different hosts must reach each other over macvlan, and aux reservations must hold
everywhere. (The VLAN variant runs in the guest: tests/guest/test_lab_guest.py.)
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pytest

from tests.harness.netns import Netns, NetnsLab
from tests.harness.plugind import PluginDaemon, PluginDaemons
from tests.kernel.sandbox import DockerNetwork, docker_network_create, docker_run

NODES = ("node1", "node2", "node3")
NET = "1a" * 32


@dataclass
class LabHost:
    name: str
    ns: Netns
    daemon: PluginDaemon


@pytest.fixture
def hosts(netns_lab: NetnsLab, plugin_daemons: PluginDaemons) -> list[LabHost]:
    found = []
    namespaces = [netns_lab.netns(name) for name in NODES]
    netns_lab.switch("sw", namespaces, host_if="lan0")
    for name, ns in zip(NODES, namespaces, strict=True):
        daemon = plugin_daemons.spawn(name, netns=ns, env={"PYMACVLAN_QUARANTINE_SECONDS": "0"})
        found.append(LabHost(name, ns, daemon))
    return found


def create_everywhere(hosts: list[LabHost], **ipam: str) -> list[DockerNetwork]:
    """The same `docker network create` command, run unchanged on every host."""
    return [
        docker_network_create(
            h.daemon,
            NET,
            "192.0.2.0/24",
            gateway="192.0.2.254",
            aux={"router2": "192.0.2.253", "printer": "192.0.2.100"},
            ipam_options={"nodes": ",".join(NODES), **ipam},
            parent="lan0",
        )
        for h in hosts
    ]


def test_same_command_on_every_host_gives_disjoint_ranges_and_cross_host_pings(
    hosts: list[LabHost], netns_lab: NetnsLab
) -> None:
    nets = create_everywhere(hosts)
    containers = []
    for n, (h, net) in enumerate(zip(hosts, nets, strict=True)):
        for k in range(2):
            ns = netns_lab.netns(f"{h.name}-c{k}")
            containers.append((h, docker_run(h.daemon, h.ns, ns, net, f"{n}{k}" * 32)))
    addresses = [ipaddress.ip_interface(c.address).ip for _, c in containers]
    assert len(set(addresses)) == len(addresses)
    # nodes=node1,node2,node3 splits .1-.254 into three contiguous parts, in that order.
    per_host = {
        h.name: [ipaddress.IPv4Interface(c.address).ip for hh, c in containers if hh is h]
        for h in hosts
    }
    assert max(per_host["node1"]) < min(per_host["node2"])
    assert max(per_host["node2"]) < min(per_host["node3"])
    # Containers on different hosts reach each other across the switch.
    first, last = containers[0][1], containers[-1][1]
    assert first.netns.ping(last.address.split("/")[0])
    assert last.netns.ping(first.address.split("/")[0])


def test_aux_reservations_hold_on_every_host(hosts: list[LabHost]) -> None:
    nets = create_everywhere(hosts)
    for h, net in zip(hosts, nets, strict=True):
        status, answer = h.daemon.call(
            "IpamDriver.RequestAddress",
            {
                "PoolID": net.pool_id,
                "Address": "192.0.2.100",
                "Options": {"com.docker.network.endpoint.name": "sneaky"},
            },
        )
        assert status == 500
        assert "Address already in use: 192.0.2.100" in answer["Err"]
        # Automatic allocation on the host whose part holds .100 skips it.
        handed = set()
        for _ in range(90):
            status, answer = h.daemon.call(
                "IpamDriver.RequestAddress", {"PoolID": net.pool_id, "Address": ""}
            )
            if status != 200:
                break
            handed.add(answer["Address"].split("/")[0])
        assert not {"192.0.2.100", "192.0.2.253", "192.0.2.254"} & handed


def test_a_plan_without_this_host_is_refused_on_that_host(hosts: list[LabHost]) -> None:
    outsider = hosts[2]
    status, answer = outsider.daemon.call(
        "IpamDriver.RequestPool",
        {
            "AddressSpace": "local",
            "Pool": "198.51.100.0/24",
            "Options": {"range.node1": "198.51.100.0/25", "range.node2": "198.51.100.128/25"},
        },
    )
    assert status == 400
    assert '"node3"' in answer["Err"]
