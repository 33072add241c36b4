"""Probing before hand-out (driver/lan/probe.py) on this host's kernel.

Topology, all in namespaces the test creates:

    ns "host": lab0 (the "physical" parent) ── ns "sw": br0 (the LAN's switch)
                                                  ├── ns "holder": eth0, 192.0.2.50/24,
                                                  │   2001:db8::50/64: a device nobody listed
                                                  └── ...

Every answer comes from a real kernel: Linux answers an ARP probe (sender 0.0.0.0) with a reply
and a DAD solicitation for an address it holds with an advertisement to all nodes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
from dataclasses import dataclass

import pytest

from driver.errors import LinkError, LinkNotFound
from driver.lan.probe import probe_address
from tests.harness.netns import Netns, NetnsLab, Switch
from tests.harness.prereq import require_root

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


@dataclass
class Lan:
    lab: NetnsLab
    host: Netns
    switch: Switch

    def device(self, label: str, *addresses: str) -> tuple[Netns, str]:
        """A namespace on the switch holding ``addresses`` on its eth0; returns it and the MAC."""
        ns = self.lab.netns(label)
        self.switch.attach(ns, "eth0")
        for address in addresses:
            # nodad: the address is usable (and defended) at once, with no DAD wait.
            ns.ip("addr", "add", address, "dev", "eth0", *(("nodad",) if ":" in address else ()))
        return ns, mac_of(ns, "eth0")


def mac_of(ns: Netns, link: str) -> str:
    found = ns.link(link)
    assert found is not None, f"{link} is missing in {ns.name}"
    return str(found["address"])


@pytest.fixture
def lan(netns_lab: NetnsLab) -> Lan:
    require_root()
    host = netns_lab.netns("host")
    switch = netns_lab.switch("sw")
    switch.attach(host, "lab0")
    return Lan(netns_lab, host, switch)


async def test_a_holder_answers_and_a_free_address_stays_silent(lan: Lan) -> None:
    _, holder_mac = lan.device("holder", "192.0.2.50/24", "2001:db8::50/64")
    assert await probe_address("lab0", V4("192.0.2.50"), netns=lan.host.name) == holder_mac
    assert await probe_address("lab0", V6("2001:db8::50"), netns=lan.host.name) == holder_mac

    for free in (V4("192.0.2.51"), V6("2001:db8::51")):
        started = time.monotonic()
        assert await probe_address("lab0", free, wait=0.3, netns=lan.host.name) is None
        # The whole wait went by: "nobody answered" was not decided early.
        assert time.monotonic() - started >= 0.3


async def test_a_probe_on_a_down_link_is_refused_with_the_reason(lan: Lan) -> None:
    lan.device("holder", "192.0.2.50/24")
    lan.host.ip("link", "set", "lab0", "down")
    with pytest.raises(LinkError) as refused:
        await probe_address("lab0", V4("192.0.2.50"), netns=lan.host.name)
    assert str(refused.value) == "cannot probe 192.0.2.50 on lab0: the link is down"
    with pytest.raises(LinkError, match=r"^cannot probe 2001:db8::50 on lab0: the link is down$"):
        await probe_address("lab0", V6("2001:db8::50"), netns=lan.host.name)

    # Up, but the cable is out (the switch's port is down): nothing would reach the LAN.
    lan.host.set_up("lab0")
    lan.switch.netns.ip("link", "set", lan.switch.ports[0], "down")
    with pytest.raises(LinkError) as no_carrier:
        await probe_address("lab0", V4("192.0.2.50"), netns=lan.host.name)
    assert str(no_carrier.value) == "cannot probe 192.0.2.50 on lab0: the link is down (no carrier)"


async def test_a_probe_on_a_missing_link_is_refused(lan: Lan) -> None:
    with pytest.raises(LinkNotFound) as refused:
        await probe_address("nope0", V4("192.0.2.50"), netns=lan.host.name)
    assert str(refused.value) == "cannot probe 192.0.2.50 on nope0: the link does not exist"


async def test_probing_over_a_macvlan_parent_that_has_children(lan: Lan) -> None:
    """The parent carries this host's containers (macvlan children in their namespaces); another
    host on the LAN carries its own. The other host's containers are foreign holders: each is
    found with its own MAC, not its host's."""
    containers = []
    for n, address in enumerate(("192.0.2.60/24", "192.0.2.61/24")):
        container = lan.lab.netns(f"c{n}")
        containers.append(container)
        lan.host.ip("link", "add", f"mv{n}", "link", "lab0", "type", "macvlan", "mode", "bridge")
        lan.host.ip("link", "set", f"mv{n}", "netns", container.name)
        container.add_address(f"mv{n}", address)
        container.set_up(f"mv{n}")
    other_host, other_host_mac = lan.device("otherhost")
    remote = lan.lab.netns("remote")
    other_host.ip("link", "add", "mv0", "link", "eth0", "type", "macvlan", "mode", "bridge")
    other_host.ip("link", "set", "mv0", "netns", remote.name)
    remote.add_address("mv0", "192.0.2.70/24")
    remote.ip("addr", "add", "2001:db8::70/64", "dev", "mv0", "nodad")
    remote.set_up("mv0")
    remote_mac = mac_of(remote, "mv0")
    _, holder_mac = lan.device("holder", "192.0.2.50/24")

    assert await probe_address("lab0", V4("192.0.2.70"), netns=lan.host.name) == remote_mac
    assert await probe_address("lab0", V6("2001:db8::70"), netns=lan.host.name) == remote_mac
    assert remote_mac != other_host_mac
    assert await probe_address("lab0", V4("192.0.2.50"), netns=lan.host.name) == holder_mac
    assert await probe_address("lab0", V4("192.0.2.71"), netns=lan.host.name) is None
    # The host's own containers still reach the LAN through the parent the probes used.
    assert all(container.ping("192.0.2.70") for container in containers)


async def test_probes_at_once_get_their_own_answers_and_leave_nothing_open(lan: Lan) -> None:
    _, first = lan.device("first", "192.0.2.50/24", "2001:db8::50/64")
    _, second = lan.device("second", "192.0.2.52/24")
    fds_before = len(os.listdir("/proc/self/fd"))
    asked: list[V4 | V6] = [
        V4("192.0.2.50"),
        V4("192.0.2.51"),
        V4("192.0.2.52"),
        V6("2001:db8::50"),
        V6("2001:db8::51"),
    ] * 4
    answers = await asyncio.gather(
        *(probe_address("lab0", address, netns=lan.host.name) for address in asked)
    )
    expected = {
        V4("192.0.2.50"): first,
        V4("192.0.2.51"): None,
        V4("192.0.2.52"): second,
        V6("2001:db8::50"): first,
        V6("2001:db8::51"): None,
    }
    assert answers == [expected[address] for address in asked]
    assert len(os.listdir("/proc/self/fd")) == fds_before


async def test_a_probe_cancelled_midway_closes_its_socket(lan: Lan) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    probe = asyncio.create_task(
        probe_address("lab0", V4("192.0.2.51"), wait=5, netns=lan.host.name)
    )
    await asyncio.sleep(0.2)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert len(os.listdir("/proc/self/fd")) == fds_before
