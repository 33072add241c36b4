"""Probes and claim watching over an 802.1q VLAN link, on Debian's full kernel in the virtme-ng
guest (this VM's kernel has no 802.1q).

    ns "host": lab0 ── lab0.30 (VLAN 30)      ns "lan": lan0 ── lan0.30 → ns "v30": 192.0.2.50
                  (veth to lan0)                          └──── lan0.40 → ns "v40": 192.0.2.51

A VLAN is a LAN of its own: the probe on lab0.30 finds VLAN 30's holder and not VLAN 40's, and a
claim on VLAN 30 is one for the network on lab0.30, never for one on the untagged lab0.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from driver.lan.claims import ClaimWatcher
from driver.lan.probe import probe_address
from tests.harness.prereq import in_guest, kernel_supports, require
from tests.kernel.nslab import Lab, cabled_lab, ns_sh, sh

pytestmark = [
    pytest.mark.guest,
    pytest.mark.skipif(not in_guest(), reason="runs inside the virtme-ng guest (tests/guest)"),
]

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
CONTAINER_MAC = "02:00:00:00:00:50"  # the container the network on the link gave 192.0.2.50


def mac_of(ns: str, link: str) -> str:
    return sh("ip", "-n", ns, "-br", "link", "show", "dev", link).stdout.split()[2]


def v30(lab: Lab) -> str:
    """The namespace of VLAN 30's device."""
    return next(ns for ns in lab.namespaces if ns.endswith("-v30"))


@pytest.fixture
def vlans() -> Iterator[Lab]:
    sh("modprobe", "8021q", check=False)
    require(kernel_supports("vlan"), "the guest kernel has no 802.1q")
    with cabled_lab() as lab:
        host, lan = lab.host, lab.lan
        sh(
            "ip",
            "-n",
            host,
            "link",
            "add",
            "link",
            "lab0",
            "name",
            "lab0.30",
            "type",
            "vlan",
            "id",
            "30",
        )
        sh("ip", "-n", host, "link", "set", "lab0.30", "up")
        for vid, v4, v6 in (
            ("30", "192.0.2.50/24", "2001:db8::50/64"),
            ("40", "192.0.2.51/24", "2001:db8::51/64"),
        ):
            # Each VLAN's holder in a namespace of its own: one namespace holding both would
            # answer for either address on either VLAN (Linux answers ARP for any of its own).
            holder = lab.namespace(f"v{vid}")
            link = f"lan0.{vid}"
            sh(
                "ip",
                "-n",
                lan,
                "link",
                "add",
                "link",
                "lan0",
                "name",
                link,
                "type",
                "vlan",
                "id",
                vid,
            )
            sh("ip", "-n", lan, "link", "set", link, "netns", holder)
            sh("ip", "-n", holder, "addr", "add", v4, "dev", link)
            sh("ip", "-n", holder, "addr", "add", v6, "dev", link, "nodad")
            sh("ip", "-n", holder, "link", "set", link, "up")
        yield lab


async def test_a_probe_on_a_vlan_link_sees_that_vlan_only(vlans: Lab) -> None:
    holder = mac_of(v30(vlans), "lan0.30")
    ns = vlans.host
    assert await probe_address("lab0.30", V4("192.0.2.50"), netns=ns) == holder
    assert await probe_address("lab0.30", V6("2001:db8::50"), netns=ns) == holder
    # VLAN 40's holder is on another LAN, and so is VLAN 30's for the untagged parent.
    assert await probe_address("lab0.30", V4("192.0.2.51"), netns=ns) is None
    assert await probe_address("lab0.30", V6("2001:db8::51"), netns=ns) is None
    assert await probe_address("lab0", V4("192.0.2.50"), netns=ns) is None


@pytest.fixture
async def watchers(vlans: Lab) -> AsyncIterator[dict[str, ClaimWatcher]]:
    ours: dict[V4 | V6, str] = {V4("192.0.2.50"): CONTAINER_MAC}
    started = {link: ClaimWatcher(link, ours.get, netns=vlans.host) for link in ("lab0", "lab0.30")}
    for watcher in started.values():
        watcher.start()
    await asyncio.sleep(0.5)  # their sockets are open
    yield started
    for watcher in started.values():
        await watcher.stop()


async def test_a_claim_on_a_vlan_is_that_vlans_and_not_the_parents(
    vlans: Lab, watchers: dict[str, ClaimWatcher]
) -> None:
    # VLAN 30's device with 192.0.2.50 talks (its ARP names it as the sender), tagged on lab0.
    v30_ns = v30(vlans)
    ns_sh(v30_ns, "ping", "-c", "1", "-W", "1", "192.0.2.9", check=False)
    deadline = time.monotonic() + 10
    while not watchers["lab0.30"].record.recent:
        assert time.monotonic() < deadline, "no claim seen on lab0.30"
        await asyncio.sleep(0.1)
    claim = watchers["lab0.30"].record.recent[0]
    assert (claim.address, claim.expected_mac, claim.foreign_mac) == (
        V4("192.0.2.50"),
        CONTAINER_MAC,
        mac_of(v30_ns, "lan0.30"),
    )
    assert not watchers["lab0"].record.recent

    # The same address on the untagged LAN is the parent's network's business.
    sh("ip", "-n", vlans.lan, "addr", "add", "192.0.2.50/24", "dev", "lan0")
    ns_sh(vlans.lan, "ping", "-c", "1", "-W", "1", "192.0.2.9", check=False)
    deadline = time.monotonic() + 10
    while not watchers["lab0"].record.recent:
        assert time.monotonic() < deadline, "no claim seen on lab0"
        await asyncio.sleep(0.1)
    assert watchers["lab0"].record.recent[0].foreign_mac == mac_of(vlans.lan, "lan0")
    assert len(watchers["lab0.30"].record.recent) == 1
