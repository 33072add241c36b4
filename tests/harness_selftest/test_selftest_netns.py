"""The namespace lab: veths, switches, macvlan on a veth parent, and cleanup that leaves nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import prereq
from tests.harness.netns import NetnsLab, own_leftovers
from tests.harness.proc import HarnessError, pid_alive


def test_two_namespaces_ping_over_a_veth_pair(netns_lab: NetnsLab) -> None:
    a, b = netns_lab.netns("a"), netns_lab.netns("b")
    netns_lab.veth(a, "lan0", b, "lan0")
    a.add_address("lan0", "192.0.2.1/24")
    b.add_address("lan0", "192.0.2.2/24")

    assert a.ping("192.0.2.2")
    assert a.addresses("lan0") == ["192.0.2.1/24"] or "192.0.2.1/24" in a.addresses("lan0")
    link = b.link("lan0")
    assert link is not None
    assert link["linkinfo"]["info_kind"] == "veth"


def test_switch_joins_hosts_over_ipv4_and_ipv6(netns_lab: NetnsLab) -> None:
    hosts = [netns_lab.netns(f"h{i}") for i in range(3)]
    netns_lab.switch(hosts=hosts)
    for i, host in enumerate(hosts, start=1):
        host.add_address("lan0", f"198.51.100.{i}/24")
        host.add_address("lan0", f"2001:db8::{i}/64")

    assert hosts[0].ping("198.51.100.3")
    assert hosts[2].ping("2001:db8::2")


def test_macvlan_children_on_a_veth_parent_reach_each_other(netns_lab: NetnsLab) -> None:
    # Two hosts on a switch; each puts a macvlan on its "physical" lan0 into a "container".
    host_a, host_b = netns_lab.netns("ha"), netns_lab.netns("hb")
    netns_lab.switch(hosts=[host_a, host_b])
    containers = []
    for host, address in ((host_a, "203.0.113.10/24"), (host_b, "203.0.113.11/24")):
        container = netns_lab.netns(f"c-{host.name[-2:]}")
        host.ip("link", "add", "link", "lan0", "name", "mv0", "type", "macvlan", "mode", "bridge")
        host.ip("link", "set", "mv0", "netns", container.name)
        container.add_address("mv0", address)
        container.set_up("mv0")
        containers.append(container)

    assert containers[0].ping("203.0.113.11")
    mv0 = containers[1].link("mv0")
    assert mv0 is not None
    assert mv0["linkinfo"]["info_kind"] == "macvlan"


def test_only_documentation_ranges_go_on_interfaces(netns_lab: NetnsLab) -> None:
    ns = netns_lab.netns("a")
    with pytest.raises(HarnessError, match="documentation ranges"):
        ns.add_address("lo", "10.1.2.3/24")


def test_cleanup_removes_namespaces_root_links_and_processes(tmp_path: Path) -> None:
    prereq.require_root()
    lab = NetnsLab(tmp_path)
    ns = lab.netns("a")
    root_end = lab.veth_to_root(ns, "lan0")
    sleeper = lab.spawn(ns, ["sleep", "300"], tmp_path / "sleep.log")
    assert Path("/sys/class/net", root_end).exists()
    assert sleeper.pid is not None
    assert pid_alive(sleeper.pid)

    lab.cleanup()

    assert not ns.exists()
    assert not Path("/sys/class/net", root_end).exists()
    assert not pid_alive(sleeper.pid)
    assert own_leftovers() == []


def test_kernel_probe_finds_macvlan_and_leaves_nothing() -> None:
    prereq.require_root()
    assert prereq.kernel_supports("macvlan")
    assert not prereq.kernel_supports("no-such-kind")
    assert own_leftovers() == []
