"""The driver on Debian's full kernel: 802.1q parents, ipvlan and dummy parents.

Runs inside the virtme-ng guest (booted by tests/kernel/test_guest.py). As in tests/kernel, a
daemon serves a throwaway "host" namespace whose parent is a veth to a "LAN" namespace, and is
driven through the protocol as dockerd drives it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.harness import prereq
from tests.harness.netns import Netns, NetnsLab
from tests.harness.plugind import PluginDaemon, PluginDaemons
from tests.kernel.sandbox import create_network, ok, run_container, stop_container

pytestmark = pytest.mark.skipif(not prereq.in_guest(), reason="runs inside the virtme-ng guest")

OWNED = "pymacvlan:"


@dataclass
class Host:
    lab: NetnsLab
    ns: Netns
    lan: Netns
    daemon: PluginDaemon

    def link(self, name: str) -> dict[str, Any] | None:
        return self.ns.link(name)


@pytest.fixture
def host(netns_lab: NetnsLab, plugin_daemons: PluginDaemons) -> Host:
    ns = netns_lab.netns("host")
    lan = netns_lab.netns("lan")
    netns_lab.veth(ns, "lab0", lan, "wire0")
    daemon = plugin_daemons.spawn("node1", netns=ns, env={"PYMACVLAN_ANNOUNCE_COUNT": "0"})
    return Host(netns_lab, ns, lan, daemon)


def net_id(n: int) -> str:
    return f"{n:02d}" * 32


def delete(host: Host, network_id: str) -> None:
    ok(host.daemon, "NetworkDriver.DeleteNetwork", {"NetworkID": network_id})


def test_vlan_parent_is_created_owned_shared_and_removed_last(host: Host) -> None:
    assert create_network(host.daemon, net_id(1), parent="lab0.10")["_status"] == 200
    vlan = host.link("lab0.10")
    assert vlan is not None
    assert vlan["linkinfo"]["info_kind"] == "vlan"
    assert vlan["linkinfo"]["info_data"]["id"] == 10
    assert vlan["link"] == "lab0"
    assert vlan["ifalias"].startswith(OWNED)
    assert "UP" in vlan["flags"]
    assert (
        create_network(host.daemon, net_id(2), pool="198.51.100.0/24", parent="lab0.10")["_status"]
        == 200
    )
    delete(host, net_id(1))
    assert host.link("lab0.10") is not None
    delete(host, net_id(2))
    assert host.link("lab0.10") is None
    assert host.link("lab0") is not None


def test_long_parent_names_use_the_vlan_option(host: Host) -> None:
    host.ns.ip("link", "add", "enp0s31f6u1u2", "type", "veth", "peer", "name", "other0")
    host.ns.set_up("enp0s31f6u1u2", "other0")
    reply = create_network(host.daemon, net_id(1), parent="enp0s31f6u1u2", vlan="4000")
    assert reply["_status"] == 200
    (vlan,) = [
        link for link in host.ns.links() if link.get("linkinfo", {}).get("info_kind") == "vlan"
    ]
    assert vlan["linkinfo"]["info_data"]["id"] == 4000
    assert vlan["link"] == "enp0s31f6u1u2"
    delete(host, net_id(1))
    assert not [x for x in host.ns.links() if x.get("linkinfo", {}).get("info_kind") == "vlan"]


def test_a_user_made_vlan_link_is_never_touched(host: Host) -> None:
    host.ns.ip("link", "add", "link", "lab0", "name", "lab0.20", "type", "vlan", "id", "20")
    host.ns.set_up("lab0.20")
    assert create_network(host.daemon, net_id(1), parent="lab0.20")["_status"] == 200
    delete(host, net_id(1))
    link = host.link("lab0.20")
    assert link is not None
    assert not link.get("ifalias")


def test_owned_vlan_link_is_recreated_after_a_reboot(host: Host) -> None:
    assert create_network(host.daemon, net_id(1), parent="lab0.30")["_status"] == 200
    host.daemon.stop()
    host.ns.ip("link", "del", "lab0.30")  # what a reboot does to VLAN links
    host.daemon.start()
    # Any call that needs the state waits for the start-up, which recreates the link.
    reply = host.daemon.call(
        "NetworkDriver.DeleteEndpoint", {"NetworkID": net_id(1), "EndpointID": "x" * 64}
    )
    assert reply[0] == 200
    vlan = host.link("lab0.30")
    assert vlan is not None
    assert vlan["linkinfo"]["info_data"]["id"] == 30


def test_containers_on_two_vlans_of_one_parent_are_isolated(host: Host) -> None:
    # The LAN side has both VLANs; a peer address on VLAN 10 only.
    for vid in ("10", "20"):
        host.lan.ip(
            "link", "add", "link", "wire0", "name", f"wire0.{vid}", "type", "vlan", "id", vid
        )
        host.lan.set_up(f"wire0.{vid}")
    host.lan.add_address("wire0.10", "192.0.2.254/24")
    assert create_network(host.daemon, net_id(1), parent="lab0.10")["_status"] == 200
    assert create_network(host.daemon, net_id(2), parent="lab0.20")["_status"] == 200
    c10 = run_container(
        host.daemon, host.ns, host.lab.netns("c10"), net_id(1), "e1" * 32, "192.0.2.10/24"
    )
    c20 = run_container(
        host.daemon, host.ns, host.lab.netns("c20"), net_id(2), "e2" * 32, "192.0.2.20/24"
    )
    assert c10.netns.ping("192.0.2.254")
    assert not c20.netns.ping("192.0.2.254", timeout=1)
    assert not c20.netns.ping("192.0.2.10", timeout=1)
    stop_container(host.daemon, host.ns, c10)
    stop_container(host.daemon, host.ns, c20)
    delete(host, net_id(1))
    delete(host, net_id(2))
    assert {"lab0.10", "lab0.20"}.isdisjoint(host.ns.link_names())


@pytest.mark.parametrize("mode", ["l2", "l3", "l3s"])
def test_ipvlan_modes_and_flags_reach_the_kernel(host: Host, mode: str) -> None:
    for n, flag in enumerate(("bridge", "private", "vepa")):
        parent = f"ip{n}"
        host.ns.ip("link", "add", parent, "type", "veth", "peer", "name", f"peer{n}")
        host.ns.set_up(parent, f"peer{n}")
        nid = net_id(n + 1)
        reply = create_network(host.daemon, nid, parent=parent, ipvlan_mode=mode, ipvlan_flag=flag)
        assert reply["_status"] == 200, reply
        ep = f"{n}e" * 32
        ok(
            host.daemon,
            "NetworkDriver.CreateEndpoint",
            {"NetworkID": nid, "EndpointID": ep, "Interface": {"Address": "192.0.2.9/24"}},
        )
        joined = ok(
            host.daemon,
            "NetworkDriver.Join",
            {"NetworkID": nid, "EndpointID": ep, "SandboxKey": "/x"},
        )
        link = host.link(joined["InterfaceName"]["SrcName"])
        assert link is not None
        data = link["linkinfo"]["info_data"]
        assert link["linkinfo"]["info_kind"] == "ipvlan"
        assert data["mode"] == mode
        # iproute2 prints the flag as a boolean: "private": true / "vepa": true / neither.
        assert data.get("private", False) == (flag == "private")
        assert data.get("vepa", False) == (flag == "vepa")
        routes = {r["Destination"] for r in joined.get("StaticRoutes") or []}
        assert routes == ({"0.0.0.0/0"} if mode != "l2" else set())


def test_ipvlan_l2_containers_reach_each_other_and_l3_routes_across_subnets(host: Host) -> None:
    assert create_network(host.daemon, net_id(1), parent="lab0", ipvlan_mode="l2")["_status"] == 200
    a = run_container(
        host.daemon, host.ns, host.lab.netns("a"), net_id(1), "a1" * 32, "192.0.2.10/24"
    )
    b = run_container(
        host.daemon, host.ns, host.lab.netns("b"), net_id(1), "b1" * 32, "192.0.2.11/24"
    )
    assert a.netns.ping("192.0.2.11")
    assert b.netns.ping("192.0.2.10")
    host.ns.ip("link", "add", "lab1", "type", "veth", "peer", "name", "lab1p")
    host.ns.set_up("lab1", "lab1p")
    assert (
        create_network(
            host.daemon, net_id(2), parent="lab1", ipvlan_mode="l3", pool="198.51.100.0/24"
        )["_status"]
        == 200
    )
    # An L3 network with two subnets: the second subnet is passed as another IPv4 pool.
    body = {
        "NetworkID": net_id(3),
        "Options": {"com.docker.network.generic": {"parent": "lab1", "ipvlan_mode": "l3"}},
        "IPv4Data": [{"Pool": "203.0.113.0/24"}],
    }
    ok(host.daemon, "NetworkDriver.CreateNetwork", body)
    c = run_container(
        host.daemon, host.ns, host.lab.netns("c"), net_id(2), "c1" * 32, "198.51.100.10/24"
    )
    d = run_container(
        host.daemon, host.ns, host.lab.netns("d"), net_id(3), "d1" * 32, "203.0.113.10/24"
    )
    assert c.netns.ping("203.0.113.10")
    assert d.netns.ping("198.51.100.10")


def test_no_parent_gets_an_owned_dummy_that_goes_with_the_network(host: Host) -> None:
    nid = net_id(7)
    assert create_network(host.daemon, nid)["_status"] == 200
    dummy = host.link(f"dm-{nid[:12]}")
    assert dummy is not None
    assert dummy["linkinfo"]["info_kind"] == "dummy"
    assert dummy["ifalias"].startswith(OWNED)
    a = run_container(host.daemon, host.ns, host.lab.netns("a"), nid, "a1" * 32, "192.0.2.10/24")
    b = run_container(host.daemon, host.ns, host.lab.netns("b"), nid, "b1" * 32, "192.0.2.11/24")
    assert a.netns.ping("192.0.2.11")
    assert "default" not in a.netns.ip("route")
    stop_container(host.daemon, host.ns, a)
    stop_container(host.daemon, host.ns, b)
    delete(host, nid)
    assert host.link(f"dm-{nid[:12]}") is None


def test_macvlan_and_ipvlan_cannot_share_a_parent(host: Host) -> None:
    assert create_network(host.daemon, net_id(1), parent="lab0", type="ipvlan")["_status"] == 200
    reply = create_network(host.daemon, net_id(2), parent="lab0", pool="198.51.100.0/24")
    assert reply["_status"] == 500
    assert "macvlan and ipvlan cannot share a parent" in reply["Err"]
