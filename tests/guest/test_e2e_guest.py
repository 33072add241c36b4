"""End to end in the guest: a real dockerd, pymacvlan as its plugin, VLAN, ipvlan and
parent-less networks that this VM's kernel cannot make.

Every `docker run` costs tens of seconds under software emulation, so one scenario covers them
all: two containers, each attached to four networks, and one `docker exec` per container that
runs all its pings. The guest is a throwaway VM: its root namespace (dockerd's) may change.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import Plugin
from tests.harness import prereq
from tests.harness.dockerd import Dockerd
from tests.harness.netns import NetnsLab, root_link_names
from tests.harness.plugind import PluginDaemons

pytestmark = pytest.mark.skipif(not prereq.in_guest(), reason="runs inside the virtme-ng guest")


def ips(p: Plugin, container: str) -> dict[str, str]:
    out = p.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", container)
    return {name: str(net["IPAddress"]) for name, net in json.loads(out).items()}


def ping_all(p: Plugin, container: str, targets: list[str]) -> dict[str, bool]:
    script = "; ".join(
        f"ping -c 1 -W 3 {t} >/dev/null 2>&1 && echo {t} ok || echo {t} no" for t in targets
    )
    out = p.docker("exec", container, "sh", "-c", script)
    return {line.split()[0]: line.split()[1] == "ok" for line in out.splitlines()}


def test_vlan_ipvlan_and_nil_parent_networks_with_a_real_dockerd(
    dockerd: Dockerd, busybox_image: str, netns_lab: NetnsLab, plugin_daemons: PluginDaemons
) -> None:
    daemon = plugin_daemons.spawn("node1", env={"PYMACVLAN_ANNOUNCE_COUNT": "0"})
    p = Plugin(daemon.name, dockerd, daemon)
    before = set(root_link_names())
    # Three "cables" to a LAN namespace; VLAN 40 of the first is the macvlan network's parent.
    peer = netns_lab.netns("lan")
    trunk = netns_lab.veth_to_root(peer, "wire0")
    l2_parent = netns_lab.veth_to_root(peer, "wire1")
    l3_parent = netns_lab.veth_to_root(peer, "wire2")
    peer.ip("link", "add", "link", "wire0", "name", "wire0.40", "type", "vlan", "id", "40")
    peer.set_up("wire0.40")
    peer.add_address("wire0.40", "192.0.2.62/26")

    def create(name: str, *args: str) -> None:
        p.docker("network", "create", "-d", p.name, "--ipam-driver", p.name, *args, name)

    # A container has one default route, and ipvlan l3 brings its own ("default dev ..."): the
    # other networks are --internal, or Docker 20.10, which always picks a gateway for a network,
    # would fail the l3 connect with "file exists" (as with Docker's own ipvlan driver).
    create("v40", "--internal", "--subnet", "192.0.2.0/26", "-o", f"parent={trunk}.40")
    create(
        "ipl2",
        "--internal",
        "--subnet",
        "192.0.2.64/26",
        "-o",
        f"parent={l2_parent}",
        "-o",
        "ipvlan_mode=l2",
    )
    create(
        "ipl3",
        "--subnet",
        "198.51.100.0/25",
        "--subnet",
        "198.51.100.128/25",
        "-o",
        f"parent={l3_parent}",
        "-o",
        "ipvlan_mode=l3",
    )
    create("nil", "--subnet", "203.0.113.0/24")
    vlan_link = f"{trunk}.40"
    assert vlan_link in root_link_names()

    for name, v40, l2, l3 in (
        ("c1", "192.0.2.10", "192.0.2.74", "198.51.100.10"),
        ("c2", "192.0.2.11", "192.0.2.75", "198.51.100.140"),
    ):
        p.docker(
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "v40",
            "--ip",
            v40,
            busybox_image,
            "sleep",
            "600",
        )
        p.docker("network", "connect", "--ip", l2, "ipl2", name)
        p.docker("network", "connect", "--ip", l3, "ipl3", name)
        p.docker("network", "connect", "nil", name)
    c2 = ips(p, "c2")
    reach = ping_all(
        p, "c1", ["192.0.2.11", "192.0.2.62", "192.0.2.75", "198.51.100.140", c2["nil"]]
    )
    assert reach == {
        "192.0.2.11": True,  # macvlan on an auto-created VLAN link
        "192.0.2.62": True,  # the LAN, tagged 40
        "192.0.2.75": True,  # ipvlan l2
        "198.51.100.140": True,  # ipvlan l3, across subnets
        c2["nil"]: True,  # no parent: the plugin's dummy link
    }
    routes = p.docker("exec", "c1", "ip", "route")
    assert "default dev" in routes  # ipvlan l3's connected default route

    p.docker("rm", "-f", "c1", "c2")
    for net in ("v40", "ipl2", "ipl3", "nil"):
        p.docker("network", "rm", net)
    left = set(root_link_names()) - before - {trunk, l2_parent, l3_parent}
    assert not left, f"left on the host: {left}"
