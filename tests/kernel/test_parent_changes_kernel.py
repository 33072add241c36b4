"""The parent and the LAN change under us (issue 9, part 3), on real links.

A daemon serves a throwaway "host" namespace whose "physical" parent ``lab0`` is a veth to a
"LAN" namespace, driven through the protocol as dockerd drives it. Each test changes the host
behind the daemon's back, as a user or the hardware would (``ip link del``, a replugged NIC, a
parent that is down or not there yet), and reads the kernel back: links, addresses, routes, pings,
and the daemon's log line. 802.1q VLAN links are covered in the guest
(tests/guest/test_parent_changes_guest.py): this kernel has no 8021q.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.harness.netns import Netns, NetnsLab
from tests.harness.plugind import PluginDaemon, PluginDaemons
from tests.harness.prereq import slow
from tests.kernel.sandbox import create_network, ok, run_container

NET = "c3" * 32
RESTORE_WITHIN = 5.0  # seconds: "within a few seconds"


@dataclass
class Host:
    lab: NetnsLab
    ns: Netns
    lan: Netns  # another machine on the LAN, at 192.0.2.254
    daemon: PluginDaemon

    def shim(self) -> str:
        (name,) = [n for n in self.ns.link_names() if n.startswith("pmvh-")]
        return name

    def routes(self, dev: str) -> list[str]:
        return [r["dst"] for r in self.ns.ip_json("route", "show", "dev", dev)]


@pytest.fixture
def host(netns_lab: NetnsLab, plugin_daemons: PluginDaemons) -> Host:
    ns = netns_lab.netns("host")
    lan = netns_lab.netns("lan")
    netns_lab.veth(ns, "lab0", lan, "wire0")
    lan.add_address("wire0", "192.0.2.254/24")
    daemon = plugin_daemons.spawn("node1", netns=ns, env={"PYMACVLAN_ANNOUNCE_COUNT": "0"})
    return Host(netns_lab, ns, lan, daemon)


def eventually(check: Callable[[], bool], what: str, within: float = RESTORE_WITHIN) -> None:
    deadline = time.monotonic() + slow(within)
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        time.sleep(0.1)


def shim_network(host: Host, parent: str = "lab0") -> None:
    reply = create_network(
        host.daemon, NET, parent=parent, aux={"me": "192.0.2.2"}, host_address="me"
    )
    assert reply["_status"] == 200, reply


def shim_is_complete(host: Host, name: str, routes: list[str]) -> bool:
    link = host.ns.link(name)
    return (
        link is not None
        and "UP" in link["flags"]
        and link.get("ifalias", "").startswith("pymacvlan:shim:")
        and "192.0.2.2/32" in host.ns.addresses(name)
        and set(routes) <= set(host.routes(name))
    )


def test_a_shim_deleted_by_hand_comes_back_with_its_address_and_routes(host: Host) -> None:
    shim_network(host)
    c1 = run_container(host.daemon, host.ns, host.lab.netns("c1"), NET, "e1" * 32, "192.0.2.10/24")
    shim = host.shim()
    assert host.ns.ping("192.0.2.10")
    host.ns.ip("link", "del", shim)
    assert not host.ns.ping("192.0.2.10", timeout=1)
    eventually(lambda: shim_is_complete(host, shim, ["192.0.2.10"]), "the shim back")
    assert host.ns.ping("192.0.2.10")
    assert c1.netns.ping("192.0.2.2")
    assert host.daemon.log().count("restored the host shim, which had vanished") == 1


def test_a_replugged_parent_brings_the_shim_back(host: Host) -> None:
    shim_network(host)
    run_container(host.daemon, host.ns, host.lab.netns("c1"), NET, "e1" * 32, "192.0.2.10/24")
    shim = host.shim()
    host.ns.ip("link", "del", "lab0")  # unplugged: the shim (and c1's link) go with it
    eventually(lambda: "waits for a missing link" in host.daemon.log(), "the daemon noticed")
    assert shim not in host.ns.link_names()
    host.lab.veth(host.ns, "lab0", host.lan, "wire0")  # plugged in again
    host.lan.add_address("wire0", "192.0.2.254/24")
    eventually(lambda: shim_is_complete(host, shim, ["192.0.2.10"]), "the shim back")
    # c1's link died with the parent (the kernel's doing); a new container works at once.
    c2 = run_container(host.daemon, host.ns, host.lab.netns("c2"), NET, "e2" * 32, "192.0.2.11/24")
    assert host.ns.ping("192.0.2.11")
    assert c2.netns.ping("192.0.2.254")
    log = host.daemon.log()
    assert "a link of ours waits for a missing link" in log
    assert "restored the host shim, which had vanished" in log


def test_a_container_starts_on_a_parent_that_is_down_and_gets_traffic_when_it_is_up(
    host: Host,
) -> None:
    host.ns.ip("link", "set", "lab0", "down")
    assert create_network(host.daemon, NET, parent="lab0")["_status"] == 200
    c1 = run_container(host.daemon, host.ns, host.lab.netns("c1"), NET, "e1" * 32, "192.0.2.10/24")
    assert not c1.netns.ping("192.0.2.254", timeout=1)
    log = host.daemon.log()
    assert "parent is down: containers on it have no traffic until it is up" in log
    assert "ip link set lab0 up" in log
    host.ns.set_up("lab0")
    eventually(lambda: c1.netns.ping("192.0.2.254", timeout=1), "traffic once lab0 is up")


def test_a_network_created_before_its_parent_works_once_the_parent_appears(host: Host) -> None:
    reply = create_network(
        host.daemon,
        NET,
        pool="198.51.100.0/24",
        parent="eth5",
        aux={"me": "198.51.100.2"},
        host_address="me",
    )
    assert reply["_status"] == 200, reply
    assert "eth5" not in host.ns.link_names()
    ep = "e5" * 32
    ok(
        host.daemon,
        "NetworkDriver.CreateEndpoint",
        {"NetworkID": NET, "EndpointID": ep, "Interface": {"Address": "198.51.100.10/24"}},
    )
    status, answer = host.daemon.call(
        "NetworkDriver.Join", {"NetworkID": NET, "EndpointID": ep, "SandboxKey": "/x"}
    )
    assert status == 500
    assert answer["Err"] == (
        f"parent interface eth5 of network {NET[:12]} does not exist on this host; containers on "
        "this network start once it is there (check: ip link show eth5)"
    )
    ok(host.daemon, "NetworkDriver.DeleteEndpoint", {"NetworkID": NET, "EndpointID": ep})
    # The NIC appears (a USB NIC, a driver loaded late): the shim comes with it.
    host.lab.veth(host.ns, "eth5", host.lan, "wire5")
    host.lan.add_address("wire5", "198.51.100.254/24")
    eventually(lambda: any(n.startswith("pmvh-") for n in host.ns.link_names()), "the shim made")
    shim = host.shim()
    eventually(lambda: "198.51.100.2/32" in host.ns.addresses(shim), "the host address")
    c1 = run_container(host.daemon, host.ns, host.lab.netns("c1"), NET, ep, "198.51.100.10/24")
    assert c1.netns.ping("198.51.100.254")
    assert host.ns.ping("198.51.100.10")


def test_a_link_that_is_not_ours_is_never_restored_nor_touched(host: Host) -> None:
    assert create_network(host.daemon, NET, parent="lab0")["_status"] == 200
    host.ns.ip("link", "add", "mine0", "link", "lab0", "type", "macvlan")
    host.ns.ip("link", "del", "mine0")
    time.sleep(1)
    assert "mine0" not in host.ns.link_names()
    assert "restored" not in host.daemon.log()
