"""DHCP mode with a real dockerd and a real DHCP server (dnsmasq) on the LAN.

The LAN is a namespace at the other end of the parent's cable running dnsmasq; the containers'
addresses come from it. What the user sees: `docker inspect` shows the leased address, the
container reaches the LAN, dnsmasq's lease file names the container's MAC, `docker stop` gives the
lease back, `docker restart` gets the same one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Plugin, wait_for
from tests.e2e.test_macvlan_e2e import LAN_PEER, Lan, lan, net, pings  # noqa: F401 (fixture)
from tests.harness.dockerd import Dockerd
from tests.harness.plugind import PluginDaemons
from tests.kernel.dnsmasq import RANGE, Dnsmasq, dnsmasq

pytestmark = pytest.mark.e2e

PINNED_MAC = "02:42:c0:00:02:77"


@pytest.fixture
def dhcp_plugin(dockerd: Dockerd, plugin_daemons: PluginDaemons) -> Iterator[Plugin]:
    """A plugin that has Docker send each container's MAC with its address request, so that a
    lease follows `--mac-address` on every Docker version (docs/ipam.md)."""
    daemon = plugin_daemons.spawn("node1", env={"PYMACVLAN_MAC_FROM_DOCKER": "on"})
    plugin = Plugin(daemon.name, dockerd, daemon)
    yield plugin
    if not dockerd.running:
        dockerd.start()
    if not daemon.running:
        daemon.start()
    plugin.remove_everything()


@pytest.fixture
def server(lan: Lan) -> Iterator[Dnsmasq]:  # noqa: F811 (the fixture imported above)
    with dnsmasq(lan.peer.name, "wire0", router=LAN_PEER) as running:
        yield running


def in_range(address: str) -> bool:
    low, high = (ipaddress.IPv4Address(a) for a in RANGE)
    return low <= ipaddress.IPv4Address(address) <= high


def _leased(server: Dnsmasq, mac: str) -> str | None:
    lease = server.lease_of(mac)
    return lease.address if lease is not None else None


def mac_of(p: Plugin, container: str, network: str) -> str:
    return p.docker(
        "inspect",
        "-f",
        f'{{{{(index .NetworkSettings.Networks "{network}").MacAddress}}}}',
        container,
    ).strip()


def test_a_container_leases_its_address_and_gives_it_back(
    dhcp_plugin: Plugin,
    busybox_image: str,
    lan: Lan,  # noqa: F811
    server: Dnsmasq,
) -> None:
    p = dhcp_plugin
    net(
        p,
        "office",
        "--subnet",
        "192.0.2.0/24",
        "--gateway",
        LAN_PEER,
        "--ipam-opt",
        "dhcp=on",
        "-o",
        f"parent={lan.parent}",
    )
    # Through the API: the docker CLI of this machine sends --mac-address per network (API >=
    # 1.44), which Docker 20.10 refuses; the container-wide MAC is what every engine takes.
    p.dockerd.client().containers.run(
        busybox_image,
        ["sleep", "600"],
        name="desk",
        network="office",
        mac_address=PINNED_MAC,
        restart_policy={"Name": "always"},
        detach=True,
    )
    address = p.ip_of("desk", "office")
    assert in_range(address), f"{address} is not from the DHCP server's range {RANGE}"
    lease = server.lease_of(PINNED_MAC)
    assert lease is not None, server.leases()
    assert lease.address == address
    assert mac_of(p, "desk", "office") == PINNED_MAC
    assert pings(p, "desk", LAN_PEER)

    p.docker("restart", "desk")
    assert p.ip_of("desk", "office") == address  # same MAC, same lease

    # A crash of both dockerd and the plugin (a reboot, as far as they can tell): the plugin's
    # leases are durable, dockerd brings the container back, the server gives the same lease.
    assert p.daemon is not None
    p.dockerd.kill9()
    p.daemon.kill9()
    p.daemon.start()
    p.dockerd.start()
    wait_for(
        lambda: p.docker("inspect", "-f", "{{.State.Running}}", "desk").strip() == "true",
        what="desk restarted",
    )
    assert p.ip_of("desk", "office") == address
    assert pings(p, "desk", LAN_PEER)

    p.docker("stop", "desk")
    server.wait_for("the release", lambda: server.lease_of(PINNED_MAC) is None)


def test_without_a_mac_from_docker_the_container_gets_the_mac_of_its_lease(
    unmanaged_plugin: Plugin,
    busybox_image: str,
    lan: Lan,  # noqa: F811
    server: Dnsmasq,
) -> None:
    """The default settings: Docker sends no MAC; the plugin picks the one it leases with and
    gives the container exactly that one."""
    p = unmanaged_plugin
    net(
        p,
        "guests",
        "--subnet",
        "192.0.2.0/24",
        "--gateway",
        LAN_PEER,
        "--ipam-opt",
        "dhcp=on",
        "-o",
        f"parent={lan.parent}",
    )
    p.docker("run", "-d", "--name", "guest", "--network", "guests", busybox_image, "sleep", "600")
    address = p.ip_of("guest", "guests")
    mac = mac_of(p, "guest", "guests")
    assert in_range(address)
    server.wait_for("the lease", lambda: _leased(server, mac) == address)
    assert pings(p, "guest", LAN_PEER)
    p.docker("rm", "-f", "guest")
    server.wait_for("the release", lambda: server.lease_of(mac) is None)
