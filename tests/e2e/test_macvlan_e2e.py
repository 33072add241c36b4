"""`docker network create -d pymacvlan` with a real dockerd on this VM's kernel (macvlan only).

The "physical" parent is a veth whose other end sits in a LAN namespace at 192.0.2.254: the
containers' neighbour on the wire. Scenarios follow moby's integration/network/macvlan tests,
ported to `-d pymacvlan`; VLAN, ipvlan and parent-less networks run in the guest (tests/guest).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.conftest import Plugin, wait_for
from tests.harness.netns import Netns, NetnsLab, root_link_names
from tests.harness.prereq import require_command

pytestmark = pytest.mark.e2e

LAN_PEER = "192.0.2.254"


@dataclass
class Lan:
    parent: str  # the root-namespace end of the "cable"
    peer: Netns  # another machine on the LAN


@pytest.fixture
def lan(netns_lab: NetnsLab) -> Lan:
    peer = netns_lab.netns("lan")
    parent = netns_lab.veth_to_root(peer, "wire0")
    peer.add_address("wire0", f"{LAN_PEER}/24")
    peer.add_address("wire0", "2001:db8:1::254/64")
    return Lan(parent, peer)


def net(p: Plugin, name: str, *args: str) -> None:
    p.docker("network", "create", "-d", p.name, "--ipam-driver", p.name, *args, name)


def run(p: Plugin, image: str, name: str, network: str, *args: str) -> None:
    p.docker("run", "-d", "--name", name, "--network", network, *args, image, "sleep", "600")


def container_link(p: Plugin, container: str, ifname: str = "eth0") -> dict[str, Any]:
    """The container's interface as the kernel describes it (busybox's ip has no -d)."""
    nsenter = require_command("nsenter")
    pid = p.docker("inspect", "-f", "{{.State.Pid}}", container).strip()
    out = subprocess.run(
        [nsenter, "-t", pid, "-n", "ip", "-j", "-d", "link", "show", ifname],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    link: dict[str, Any] = json.loads(out)[0]
    return link


def pings(p: Plugin, container: str, target: str, v6: bool = False) -> bool:
    cmd = ["exec", container, "ping", "-6" if v6 else "-4", "-c", "1", "-W", "2", target]
    return p.dockerd.cli(*cmd, check=False).returncode == 0


def test_bridge_mode_reaches_siblings_by_name_and_the_lan(
    unmanaged_plugin: Plugin, busybox_image: str, lan: Lan
) -> None:
    p = unmanaged_plugin
    links_before = set(root_link_names())
    net(
        p,
        "lan",
        "--subnet",
        "192.0.2.0/24",
        "--gateway",
        "192.0.2.254",
        "--ip-range",
        "192.0.2.64/26",
        "-o",
        f"parent={lan.parent}",
    )
    run(p, busybox_image, "c1", "lan")
    run(p, busybox_image, "c2", "lan")
    assert pings(p, "c1", "c2")
    assert pings(p, "c2", "c1")
    assert pings(p, "c1", LAN_PEER)
    assert lan.peer.ping(p.ip_of("c1", "lan"))
    route = p.docker("exec", "c1", "ip", "route")
    assert f"default via {LAN_PEER} dev eth0" in route
    link = container_link(p, "c1")
    assert link["linkinfo"]["info_kind"] == "macvlan"
    assert link["linkinfo"]["info_data"]["mode"] == "bridge"
    p.docker("rm", "-f", "c1", "c2")
    p.docker("network", "rm", "lan")
    assert set(root_link_names()) == links_before


def test_private_mode_isolates_siblings_not_the_lan(
    unmanaged_plugin: Plugin, busybox_image: str, lan: Lan
) -> None:
    p = unmanaged_plugin
    net(
        p,
        "priv",
        "--subnet",
        "192.0.2.0/24",
        "-o",
        f"parent={lan.parent}",
        "-o",
        "macvlan_mode=private",
    )
    run(p, busybox_image, "c1", "priv", "--ip", "192.0.2.10")
    run(p, busybox_image, "c2", "priv", "--ip", "192.0.2.11")
    assert pings(p, "c1", LAN_PEER)
    assert not pings(p, "c1", "192.0.2.11")
    assert not pings(p, "c2", "192.0.2.10")


def test_overlapping_parents_and_passthru_first_and_second(
    unmanaged_plugin: Plugin, busybox_image: str, lan: Lan
) -> None:
    p = unmanaged_plugin
    net(p, "one", "--subnet", "192.0.2.0/25", "-o", f"parent={lan.parent}")
    net(p, "two", "--subnet", "192.0.2.128/25", "-o", f"parent={lan.parent}")
    err = p.fails(
        "network",
        "create",
        "-d",
        p.name,
        "--ipam-driver",
        p.name,
        "--subnet",
        "198.51.100.0/24",
        "-o",
        f"parent={lan.parent}",
        "-o",
        "macvlan_mode=passthru",
        "pt",
    )
    assert "passthru mode needs the parent to itself" in err or "passthru" in err
    p.docker("network", "rm", "two")
    run(p, busybox_image, "c1", "one")
    assert pings(p, "c1", LAN_PEER) is False  # 192.0.2.0/25 cannot reach .254 without a gateway
    p.docker("rm", "-f", "c1")
    p.docker("network", "rm", "one")
    net(
        p,
        "pt",
        "--subnet",
        "192.0.2.0/24",
        "-o",
        f"parent={lan.parent}",
        "-o",
        "macvlan_mode=passthru",
    )
    err = p.fails(
        "network",
        "create",
        "-d",
        p.name,
        "--ipam-driver",
        p.name,
        "--subnet",
        "198.51.100.0/24",
        "-o",
        f"parent={lan.parent}",
        "after",
    )
    assert "passthru" in err
    run(p, busybox_image, "solo", "pt")
    assert pings(p, "solo", LAN_PEER)


def test_internal_mode_has_no_default_route(
    unmanaged_plugin: Plugin, busybox_image: str, lan: Lan
) -> None:
    p = unmanaged_plugin
    net(
        p,
        "inside",
        "--internal",
        "--subnet",
        "192.0.2.0/24",
        "--gateway",
        "192.0.2.254",
        "-o",
        f"parent={lan.parent}",
    )
    run(p, busybox_image, "c1", "inside")
    run(p, busybox_image, "c2", "inside")
    assert pings(p, "c2", "c1")
    assert "default" not in p.docker("exec", "c1", "ip", "route")
    out = p.dockerd.cli("exec", "c1", "ping", "-c", "1", "-W", "1", "203.0.113.9", check=False)
    assert "unreachable" in (out.stdout + out.stderr).lower()


def test_dual_stack_multi_subnet_with_and_without_gateways(
    unmanaged_plugin: Plugin, busybox_image: str, lan: Lan
) -> None:
    p = unmanaged_plugin
    net(
        p,
        "dual",
        "--ipv6",
        "-o",
        f"parent={lan.parent}",
        "--subnet",
        "198.51.100.0/24",
        "--subnet",
        "192.0.2.0/24",
        "--gateway",
        "192.0.2.254",
        "--subnet",
        "2001:db8:2::/64",
        "--subnet",
        "2001:db8:1::/64",
        "--gateway",
        "2001:db8:1::254",
    )
    run(p, busybox_image, "a1", "dual", "--ip", "198.51.100.20", "--ip6", "2001:db8:2::20")
    run(p, busybox_image, "a2", "dual", "--ip", "198.51.100.21", "--ip6", "2001:db8:2::21")
    assert pings(p, "a2", "198.51.100.20")
    assert pings(p, "a2", "2001:db8:2::20", v6=True)
    run(p, busybox_image, "b1", "dual", "--ip", "192.0.2.20", "--ip6", "2001:db8:1::20")
    run(p, busybox_image, "b2", "dual", "--ip", "192.0.2.21", "--ip6", "2001:db8:1::21")
    assert pings(p, "b2", "192.0.2.20")
    assert pings(p, "b2", "2001:db8:1::20", v6=True)
    # The subnet with a gateway gets default routes through it, on both families.
    assert "default via 192.0.2.254 dev eth0" in p.docker("exec", "b1", "ip", "route")
    assert "default via 2001:db8:1::254 dev eth0" in p.docker("exec", "b1", "ip", "-6", "route")
    assert pings(p, "b1", LAN_PEER)
    assert pings(p, "b1", "2001:db8:1::254", v6=True)
    # Docker >= 28 asks GwAllocCheck: a subnet without --gateway then gets no gateway at all.
    # Older engines always take one (docs/driver.md says: give --gateway there).
    if not p.dockerd.engine.picks_gateways():
        assert "default via" not in p.docker("exec", "a1", "ip", "route")


def test_point_to_point_31_with_the_lan_peer_as_gateway(
    unmanaged_plugin: Plugin, busybox_image: str, lan: Lan
) -> None:
    # RFC 3021: both addresses of a /31 are hosts; here the container and its router.
    p = unmanaged_plugin
    lan.peer.add_address("wire0", "203.0.113.1/31")
    net(
        p,
        "p2p",
        "--subnet",
        "203.0.113.0/31",
        "--gateway",
        "203.0.113.1",
        "-o",
        f"parent={lan.parent}",
    )
    run(p, busybox_image, "one", "p2p")
    assert p.ip_of("one", "p2p") == "203.0.113.0"
    assert pings(p, "one", "203.0.113.1")


def test_point_to_point_31_between_two_containers(
    unmanaged_plugin: Plugin, busybox_image: str, lan: Lan
) -> None:
    p = unmanaged_plugin
    net(p, "p2p", "--subnet", "203.0.113.0/31", "-o", f"parent={lan.parent}")
    run(p, busybox_image, "one", "p2p")
    out = p.dockerd.cli(
        "run", "--rm", "--network", "p2p", busybox_image, "ping", "-c1", "-W3", "one", check=False
    )
    if p.dockerd.engine.picks_gateways():
        # Docker < 28 takes one of the two addresses as the gateway: no room for a second
        # container, and the user is told so.
        assert "no available addresses on this pool: 203.0.113.0/31" in out.stderr, out
        assert "(2 addresses, 2 in use)" in out.stderr, out
    else:
        assert "1 packets transmitted, 1 packets received" in out.stdout, out.stderr


def test_network_survives_dockerd_and_plugin_restarts(
    unmanaged_plugin: Plugin, busybox_image: str, lan: Lan
) -> None:
    p = unmanaged_plugin
    assert p.daemon is not None
    net(
        p,
        "keep",
        "--subnet",
        "192.0.2.0/24",
        "--gateway",
        "192.0.2.254",
        "-o",
        f"parent={lan.parent}",
    )
    run(p, busybox_image, "pinned", "keep", "--restart=always", "--ip", "192.0.2.30")
    p.dockerd.kill9()
    p.daemon.kill9()
    p.daemon.start()
    p.dockerd.start()
    wait_for(
        lambda: p.docker("inspect", "-f", "{{.State.Running}}", "pinned").strip() == "true",
        what="pinned restarted",
    )
    assert p.ip_of("pinned", "keep") == "192.0.2.30"
    assert lan.peer.ping("192.0.2.30")
    run(p, busybox_image, "fresh", "keep")
    assert pings(p, "fresh", "pinned")
    fresh_ip = ipaddress.ip_address(p.ip_of("fresh", "keep"))
    assert fresh_ip != ipaddress.ip_address("192.0.2.30")


def test_host_shim_host_and_container_reach_each_other(
    unmanaged_plugin: Plugin, busybox_image: str, lan: Lan
) -> None:
    require_command("ping")  # from the host
    p = unmanaged_plugin
    links_before = set(root_link_names())
    # The shim lives in the root namespace, whose uplink is in 203.0.113.0/24: use another range.
    lan.peer.add_address("wire0", "203.0.113.254/24")
    net(
        p,
        "shimmed",
        "--subnet",
        "203.0.113.0/24",
        "--gateway",
        "203.0.113.254",
        "--aux-address",
        "node1=203.0.113.3",
        "-o",
        "host_address=@node",
        "-o",
        f"parent={lan.parent}",
    )
    run(p, busybox_image, "c1", "shimmed", "--ip", "203.0.113.70")
    host_ping = subprocess.run(
        ["ping", "-c", "1", "-W", "2", "203.0.113.70"], capture_output=True, check=False
    )
    assert host_ping.returncode == 0, host_ping.stdout
    assert pings(p, "c1", "203.0.113.3")
    assert pings(p, "c1", "203.0.113.254")
    p.docker("rm", "-f", "c1")
    p.docker("network", "rm", "shimmed")
    assert set(root_link_names()) == links_before
    assert (
        "203.0.113.70"
        not in subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    )
