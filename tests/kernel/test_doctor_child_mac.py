"""`pymacvlan doctor`'s child-MAC test (driver/diagnose/child_mac.py) on this host's kernel.

Topology, all in namespaces the test creates (tests/kernel/nslab.py, ``cabled_lab(switch=True)``):

    ns "host": lab0 (the "physical" parent) ── ns "lan": lan0, a port of br0 (the LAN's switch),
                                                          which is also the gateway 192.0.2.1/24
                                                          and 2001:db8::1/64

The strict NIC: an ``ebtables`` rule (the nf_tables bridge family behind ebtables-nft; this
kernel has no tc classifiers) on the switch drops every frame that enters through lan0 with a
source MAC other than lab0's, on the way to the bridge itself (INPUT: the gateway is the bridge's
own address) and through it (FORWARD). That is what vSphere without forged transmits, Hyper-V
without MAC address spoofing and a port-security switch do.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Iterator

import pytest

from driver.diagnose.child_mac import CHILD_PREFIX, Timing, ask_gateway, sweep_stale_children
from driver.names import ROLE_DOCTOR, owned_alias
from driver.netlink import LinkLayer
from tests.harness.prereq import require_command, require_root
from tests.kernel.nslab import Lab, cabled_lab, ip_link_json, link_names, ns_sh, sh

GATEWAY = ipaddress.IPv4Address("192.0.2.1")
GATEWAY6 = ipaddress.IPv6Address("2001:db8::1")
QUICK = Timing(wait=0.5)


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_root()
    with cabled_lab(switch=True) as lab:
        sh("ip", "-n", lab.lan, "addr", "add", f"{GATEWAY6}/64", "dev", "br0", "nodad")
        yield lab


@pytest.fixture
async def links(lab: Lab) -> AsyncIterator[LinkLayer]:
    layer = await LinkLayer.open(lab.host)
    try:
        yield layer
    finally:
        layer.close()


def parent_mac(lab: Lab) -> str:
    return str(ip_link_json(lab.host, "lab0")["address"])


def strict_switch(lab: Lab) -> None:
    """Only lab0's own MAC may enter the LAN through lan0."""
    require_command("ebtables")
    for chain in ("INPUT", "FORWARD"):
        ns_sh(
            lab.lan, "ebtables", "-A", chain, "-i", "lan0", "-s", "!", parent_mac(lab), "-j", "DROP"
        )


def dropped(lab: Lab) -> int:
    """Frames the strict switch dropped so far."""
    out = ns_sh(lab.lan, "ebtables", "-L", "INPUT", "--Lc").stdout
    return sum(int(part.split("=")[1].split()[0]) for part in out.split(",") if "pcnt" in part)


def gateway_mac(lab: Lab) -> str:
    return str(ip_link_json(lab.lan, "br0")["address"])


async def test_a_switch_that_forwards_any_mac_passes(lab: Lab, links: LinkLayer) -> None:
    before = link_names(lab.host)
    facts = await ask_gateway(links, "lab0", GATEWAY, netns=lab.host, timing=QUICK)

    assert facts.child.answer == gateway_mac(lab)
    assert facts.child.mac is not None
    assert facts.child.mac != parent_mac(lab)
    assert facts.child.link.startswith(CHILD_PREFIX)
    assert facts.control.answer == gateway_mac(lab)
    assert facts.control.mac == parent_mac(lab)
    assert facts.left_behind is None
    assert link_names(lab.host) == before  # the test link is gone, nothing else changed


async def test_ipv6_the_gateway_answers_a_child_solicitation(lab: Lab, links: LinkLayer) -> None:
    facts = await ask_gateway(links, "lab0", GATEWAY6, netns=lab.host, timing=QUICK)
    assert facts.child.answer == gateway_mac(lab)
    assert facts.control.answer == gateway_mac(lab)


async def test_a_switch_that_lets_only_the_parents_mac_through(lab: Lab, links: LinkLayer) -> None:
    strict_switch(lab)
    before = link_names(lab.host)
    parent_before = ip_link_json(lab.host, "lab0")

    for gateway in (GATEWAY, GATEWAY6):
        facts = await ask_gateway(links, "lab0", gateway, netns=lab.host, timing=QUICK)
        assert facts.child.error is None
        assert facts.child.answer is None, gateway  # the child's frames were dropped
        assert facts.control.answer == gateway_mac(lab), gateway  # the parent's were not

    assert dropped(lab) > 0
    assert link_names(lab.host) == before
    parent_after = ip_link_json(lab.host, "lab0")
    for key in ("address", "mtu", "flags", "operstate", "promiscuity"):
        assert parent_after.get(key) == parent_before.get(key), key


async def test_a_gateway_that_nobody_has_answers_neither(lab: Lab, links: LinkLayer) -> None:
    facts = await ask_gateway(
        links, "lab0", ipaddress.IPv4Address("192.0.2.99"), netns=lab.host, timing=QUICK
    )
    assert (facts.child.answer, facts.child.error) == (None, None)
    assert (facts.control.answer, facts.control.error) == (None, None)


async def test_a_parent_without_carrier_says_why(lab: Lab, links: LinkLayer) -> None:
    sh("ip", "-n", lab.lan, "link", "set", "lan0", "down")
    before = link_names(lab.host)
    facts = await ask_gateway(links, "lab0", GATEWAY, netns=lab.host, timing=Timing(up_within=0.5))
    assert facts.child.error is not None
    assert "did not come up" in facts.child.error
    assert facts.control.error == "cannot probe 192.0.2.1 on lab0: the link is down (no carrier)"
    assert link_names(lab.host) == before


async def test_a_missing_parent_makes_no_link(lab: Lab, links: LinkLayer) -> None:
    before = link_names(lab.host)
    facts = await ask_gateway(links, "nope0", GATEWAY, netns=lab.host, timing=QUICK)
    assert facts.child.error == (
        "cannot make the test link: parent interface nope0 does not exist on this host"
    )
    assert facts.control.error == "cannot probe 192.0.2.1 on nope0: the link does not exist"
    assert link_names(lab.host) == before


async def test_cancelled_midway_the_test_link_is_still_deleted(lab: Lab, links: LinkLayer) -> None:
    before = link_names(lab.host)
    task = asyncio.create_task(
        ask_gateway(
            links,
            "lab0",
            ipaddress.IPv4Address("192.0.2.99"),
            netns=lab.host,
            timing=Timing(wait=5),
        )
    )
    for _ in range(100):  # until the test link is there and asking
        await asyncio.sleep(0.05)
        if any(n.startswith(CHILD_PREFIX) for n in link_names(lab.host)):
            break
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert link_names(lab.host) == before


async def test_a_test_link_left_by_a_killed_run_is_swept_later(lab: Lab, links: LinkLayer) -> None:
    old = owned_alias(ROLE_DOCTOR, "1000")
    recent = owned_alias(ROLE_DOCTOR, "9999999999")
    other_role = owned_alias("shim", "1000")
    for name, alias in (("pmvd-old", old), ("pmvd-recent", recent), ("other0", other_role)):
        sh("ip", "-n", lab.host, "link", "add", name, "link", "lab0", "type", "macvlan")
        sh("ip", "-n", lab.host, "link", "set", name, "alias", alias)
    # Someone else's link with another alias, or none, stays whatever its name.
    sh("ip", "-n", lab.host, "link", "add", "pmvd-theirs", "link", "lab0", "type", "macvlan")

    assert await sweep_stale_children(links) == ["pmvd-old"]
    names = link_names(lab.host)
    assert "pmvd-old" not in names
    assert {"pmvd-recent", "pmvd-theirs", "other0"} <= names
