"""The lab of hosts over 802.1q: containers on one VLAN reach each other across hosts, and not
across VLANs. Runs in the virtme-ng guest (this VM's kernel has no 802.1q)."""

from __future__ import annotations

import pytest

from tests.harness import prereq
from tests.harness.netns import NetnsLab
from tests.harness.plugind import PluginDaemons
from tests.kernel.sandbox import docker_network_create, docker_run

pytestmark = pytest.mark.skipif(not prereq.in_guest(), reason="runs inside the virtme-ng guest")


def test_vlans_across_hosts_connect_and_isolate(
    netns_lab: NetnsLab, plugin_daemons: PluginDaemons
) -> None:
    names = ("node1", "node2")
    namespaces = [netns_lab.netns(n) for n in names]
    netns_lab.switch("sw", namespaces, host_if="lan0")
    daemons = [
        plugin_daemons.spawn(n, netns=ns, env={"PYMACVLAN_ANNOUNCE_COUNT": "0"})
        for n, ns in zip(names, namespaces, strict=True)
    ]
    containers = {}
    for vid, subnet in (("10", "192.0.2.0/24"), ("20", "198.51.100.0/24")):
        for host, ns, daemon in zip(names, namespaces, daemons, strict=True):
            net = docker_network_create(
                daemon,
                vid * 32,
                subnet,
                ipam_options={"nodes": "node1,node2"},
                parent=f"lan0.{vid}",
            )
            c = docker_run(
                daemon, ns, netns_lab.netns(f"{host}-v{vid}"), net, f"{host[-1]}{vid}" * 16
            )
            containers[(host, vid)] = c.netns, c.address.split("/")[0]
    a10, a10_ip = containers[("node1", "10")]
    _, b10_ip = containers[("node2", "10")]
    a20, a20_ip = containers[("node1", "20")]
    b20, _ = containers[("node2", "20")]
    assert a10.ping(b10_ip)
    assert b20.ping(a20_ip)
    # Give VLAN 20's container an address in VLAN 10's subnet: still no way across.
    a20.ip("addr", "add", "192.0.2.250/24", "dev", "eth0")
    assert not a20.ping(b10_ip, timeout=1)
    assert a10_ip != b10_ip
