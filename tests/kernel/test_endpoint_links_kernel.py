"""Endpoint links on real links: each belongs to the one endpoint whose ID its alias carries.

Docker's endpoint IDs may share their first 12 characters, the part a link name has room for.
Two such endpoints joined at once must get two links, and neither Join, Leave, DeleteEndpoint nor
the daemon's start-up sweep may delete the other's.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.netns import Netns, NetnsLab
from tests.harness.plugind import PluginDaemon, PluginDaemons
from tests.kernel.sandbox import create_network, ok

NET = "a1" * 32
EP_A = "c0ffee000000" + "a" * 52
EP_B = "c0ffee000000" + "b" * 52


@pytest.fixture
def host(netns_lab: NetnsLab, plugin_daemons: PluginDaemons) -> tuple[Netns, PluginDaemon]:
    ns = netns_lab.netns("host")
    lan = netns_lab.netns("lan")
    netns_lab.veth(ns, "lab0", lan, "wire0")
    daemon = plugin_daemons.spawn("node1", netns=ns, env={"PYMACVLAN_QUARANTINE_SECONDS": "0"})
    return ns, daemon


def ids(endpoint_id: str) -> dict[str, Any]:
    return {"NetworkID": NET, "EndpointID": endpoint_id}


def test_endpoints_sharing_an_id_prefix_keep_their_own_links(
    host: tuple[Netns, PluginDaemon],
) -> None:
    ns, daemon = host
    before = set(ns.link_names())
    assert create_network(daemon, NET, parent="lab0")["_status"] == 200
    for ep, address in ((EP_A, "192.0.2.10/24"), (EP_B, "192.0.2.11/24")):
        ok(daemon, "NetworkDriver.CreateEndpoint", {**ids(ep), "Interface": {"Address": address}})
    src_a = ok(daemon, "NetworkDriver.Join", ids(EP_A))["InterfaceName"]["SrcName"]
    src_b = ok(daemon, "NetworkDriver.Join", ids(EP_B))["InterfaceName"]["SrcName"]
    assert src_a != src_b
    link_a, link_b = ns.link(src_a), ns.link(src_b)
    assert link_a is not None, "Join B deleted A's link"
    assert link_b is not None
    assert link_a["ifalias"] == f"pymacvlan:endpoint:{EP_A}"
    assert link_b["ifalias"] == f"pymacvlan:endpoint:{EP_B}"

    daemon.kill9()
    daemon.start()  # the start-up sweep: both links are recorded, both stay
    ok(daemon, "NetworkDriver.EndpointOperInfo", ids(EP_A))
    assert {src_a, src_b} <= set(ns.link_names())

    ok(daemon, "NetworkDriver.Leave", ids(EP_A))
    assert src_a not in ns.link_names()
    assert src_b in ns.link_names(), "Leave A deleted B's link"
    ok(daemon, "NetworkDriver.DeleteEndpoint", ids(EP_A))
    assert src_b in ns.link_names()
    ok(daemon, "NetworkDriver.Leave", ids(EP_B))
    ok(daemon, "NetworkDriver.DeleteEndpoint", ids(EP_B))
    ok(daemon, "NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert set(ns.link_names()) == before
