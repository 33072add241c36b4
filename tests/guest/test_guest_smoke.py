"""Smoke tests that prove the guest has what the host lacks: VLAN, ipvlan, dummy, and a dockerd."""

from __future__ import annotations

import pytest

from tests.harness import prereq
from tests.harness.netns import NetnsLab

pytestmark = pytest.mark.skipif(not prereq.in_guest(), reason="runs inside the virtme-ng guest")


def test_vlan_ipvlan_and_dummy_links_work(netns_lab: NetnsLab) -> None:
    for kind in ("vlan", "ipvlan", "dummy"):
        prereq.require_kernel_kind(kind)
    a, b = netns_lab.netns("a"), netns_lab.netns("b")
    netns_lab.veth(a, "lab0", b, "lab0")
    for ns, address in ((a, "192.0.2.1/24"), (b, "192.0.2.2/24")):
        ns.ip("link", "add", "link", "lab0", "name", "lab0.30", "type", "vlan", "id", "30")
        ns.add_address("lab0.30", address)
        ns.set_up("lab0.30")
    a.ip("link", "add", "link", "lab0", "name", "ipv0", "type", "ipvlan", "mode", "l2")
    a.ip("link", "add", "dum0", "type", "dummy")

    assert a.ping("192.0.2.2")
    kinds = {link["ifname"]: link.get("linkinfo", {}).get("info_kind") for link in a.links()}
    assert kinds["lab0.30"] == "vlan"
    assert kinds["ipv0"] == "ipvlan"
    assert kinds["dum0"] == "dummy"
