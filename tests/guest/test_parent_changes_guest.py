"""Owned VLAN links restored while the plugin runs (issue 9, part 3), on Debian's full kernel.

Runs inside the virtme-ng guest (booted by tests/kernel/test_guest.py): this host's kernel has no
802.1q. As in tests/kernel/test_parent_changes_kernel.py, a daemon serves a throwaway "host"
namespace whose parent ``lab0`` is a veth to a "LAN" namespace; the tests delete the plugin's VLAN
link, or its parent, behind the daemon's back and read the kernel back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.harness import prereq
from tests.harness.netns import Netns, NetnsLab
from tests.harness.plugind import PluginDaemon, PluginDaemons
from tests.kernel.sandbox import create_network, run_container

pytestmark = pytest.mark.skipif(not prereq.in_guest(), reason="runs inside the virtme-ng guest")

NET = "d4" * 32
RESTORE_WITHIN = 5.0  # host seconds, stretched in the guest


@dataclass
class Host:
    lab: NetnsLab
    ns: Netns
    lan: Netns
    daemon: PluginDaemon


@pytest.fixture
def host(netns_lab: NetnsLab, plugin_daemons: PluginDaemons) -> Host:
    ns = netns_lab.netns("host")
    lan = netns_lab.netns("lan")
    netns_lab.veth(ns, "lab0", lan, "wire0")
    daemon = plugin_daemons.spawn("node1", netns=ns, env={"PYMACVLAN_ANNOUNCE_COUNT": "0"})
    return Host(netns_lab, ns, lan, daemon)


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + prereq.slow(RESTORE_WITHIN)
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {prereq.slow(RESTORE_WITHIN)} s: {what}")
        time.sleep(0.2)


def vlan_30_is_ours_and_up(host: Host) -> bool:
    link = host.ns.link("lab0.30")
    return (
        link is not None
        and link["linkinfo"]["info_kind"] == "vlan"
        and link["linkinfo"]["info_data"]["id"] == 30
        and link.get("link") == "lab0"
        and link.get("ifalias", "").startswith("pymacvlan:vlan:")
        and "UP" in link["flags"]
    )


def test_an_owned_vlan_link_deleted_by_hand_is_restored(host: Host) -> None:
    assert create_network(host.daemon, NET, parent="lab0.30")["_status"] == 200
    assert vlan_30_is_ours_and_up(host)
    host.ns.ip("link", "del", "lab0.30")
    eventually(lambda: vlan_30_is_ours_and_up(host), "lab0.30 restored")
    assert host.daemon.log().count("restored a link of ours that had vanished") == 1


def test_a_replugged_parent_gets_its_vlan_link_back_and_containers_reach_the_lan(
    host: Host,
) -> None:
    assert create_network(host.daemon, NET, parent="lab0.30")["_status"] == 200
    host.ns.ip("link", "del", "lab0")  # unplugged: lab0.30 goes with it
    eventually(lambda: "waits for a missing link" in host.daemon.log(), "the daemon noticed")
    assert host.ns.link("lab0.30") is None
    host.lab.veth(host.ns, "lab0", host.lan, "wire0")  # plugged in again
    eventually(lambda: vlan_30_is_ours_and_up(host), "lab0.30 restored on the new lab0")
    # The LAN side of VLAN 30, and a container on the network reaching it through lab0.30.
    host.lan.ip("link", "add", "link", "wire0", "name", "wire0.30", "type", "vlan", "id", "30")
    host.lan.set_up("wire0.30")
    host.lan.add_address("wire0.30", "192.0.2.254/24")
    c1 = run_container(host.daemon, host.ns, host.lab.netns("c1"), NET, "e1" * 32, "192.0.2.10/24")
    assert c1.netns.ping("192.0.2.254")
