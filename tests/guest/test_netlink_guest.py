"""The link layer's VLAN, ipvlan and dummy verbs, on Debian's full kernel in a virtme-ng guest.

Runs only inside the guest (``PYMACVLAN_IN_GUEST=1``); the host kernel has none of these kinds. By
hand:

    PATH=$PWD/.venv/bin:$PATH vng -r /boot/vmlinuz-*-amd64 --disable-kvm --memory 2G \\
        --rwdir "$PWD" -- "cd $PWD && PYMACVLAN_IN_GUEST=1 .venv/bin/python -m pytest \\
        tests/guest/test_netlink_guest.py -q"

Topology of the ``lab`` fixture, all in namespaces the test creates:

    ns "host":  lab0 (veth, the "physical" parent) ── ns "lan": lan0 (its peer: the LAN)

Further namespaces play containers. Deleting the namespaces removes everything made inside them.
"""

from __future__ import annotations

import errno
import re
from collections.abc import AsyncIterator, Iterator

import pytest

from driver.errors import InvalidOption, LinkExists, ParentBusy
from driver.linkinfo import IpvlanFlag, IpvlanMode
from driver.netlink import LinkLayer
from driver.sharing import ParentUser, check_sharing, link_user
from tests.harness.prereq import in_guest, kernel_supports, require
from tests.kernel.nslab import Lab, cabled_lab, ip_link_json, link_names, read, sh

pytestmark = [
    pytest.mark.guest,
    pytest.mark.skipif(not in_guest(), reason="runs inside the virtme-ng guest (tests/guest)"),
]


@pytest.fixture(scope="session", autouse=True)
def kernel_modules() -> None:
    # The guest's kernel loads these on demand too; loading them first keeps the first test fast
    # and turns a missing module into a clear skip instead of a failed assertion.
    for module in ("8021q", "ipvlan", "dummy", "macvlan"):
        sh("modprobe", module, check=False)
    for kind in ("vlan", "ipvlan", "dummy", "macvlan"):
        require(kernel_supports(kind), f"the guest kernel has no {kind}")


@pytest.fixture
def lab() -> Iterator[Lab]:
    with cabled_lab() as lab:
        yield lab


@pytest.fixture
async def links(lab: Lab) -> AsyncIterator[LinkLayer]:
    async with await LinkLayer.open(netns=lab.host) as layer:
        yield layer


def move_to_container(lab: Lab, link: str, address: str) -> str:
    ns = lab.namespace(f"c{len(lab.namespaces)}")
    sh("ip", "-n", lab.host, "link", "set", link, "netns", ns)
    sh("ip", "-n", ns, "addr", "add", address, "dev", link)
    sh("ip", "-n", ns, "link", "set", link, "up")
    return ns


def pings(ns: str, address: str) -> bool:
    ping = ("ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "1", address)
    return sh(*ping, check=False).returncode == 0


# -- 802.1q ---------------------------------------------------------------------------------------


async def test_vlan_link_is_created_and_read_back(lab: Lab, links: LinkLayer) -> None:
    made = await links.create_vlan("lab0.10", "lab0", 10, alias="pymacvlan:vlan:net1")

    assert (made.kind, made.vlan_id, made.parent_name) == ("vlan", 10, "lab0")
    assert made.alias == "pymacvlan:vlan:net1"
    assert made.mtu == 1500
    assert not made.up
    kernel = ip_link_json(lab.host, "lab0.10")
    assert kernel["linkinfo"]["info_kind"] == "vlan"
    assert kernel["linkinfo"]["info_data"]["id"] == 10
    assert kernel["linkinfo"]["info_data"]["protocol"] == "802.1Q"
    assert (kernel["link"], kernel["ifalias"]) == ("lab0", "pymacvlan:vlan:net1")

    await links.set_up("lab0.10")
    assert (await read(links, "lab0.10")).up
    assert await links.delete_link("lab0.10") is True
    assert await links.delete_link("lab0.10") is False


async def test_a_second_link_for_one_vlan_id_is_named(lab: Lab, links: LinkLayer) -> None:
    await links.create_vlan("lab0.10", "lab0", 10)
    with pytest.raises(
        LinkExists, match=re.escape("parent lab0 already has VLAN 10 as link lab0.10")
    ):
        await links.create_vlan("v10-other", "lab0", 10)


# -- ipvlan ---------------------------------------------------------------------------------------


async def test_ipvlan_keeps_one_mode_per_parent(lab: Lab, links: LinkLayer) -> None:
    """Kernel behaviour: a new ipvlan link in another mode switches its siblings. The link layer
    does as it is told; driver.sharing refuses it, reading the siblings back from the kernel."""
    sh(
        "ip",
        "-n",
        lab.host,
        "link",
        "add",
        "link",
        "lab0",
        "iv0",
        "type",
        "ipvlan",
        "mode",
        "l2",
        "private",
    )
    sh(
        "ip",
        "-n",
        lab.host,
        "link",
        "add",
        "link",
        "lab0",
        "iv1",
        "type",
        "ipvlan",
        "mode",
        "l3",
        "bridge",
    )
    assert ip_link_json(lab.host, "iv0")["linkinfo"]["info_data"]["mode"] == "l3"
    assert not ip_link_json(lab.host, "iv0")["linkinfo"]["info_data"].get("private")
    sh("ip", "-n", lab.host, "link", "del", "iv1")

    iv0 = link_user(await read(links, "iv0"), "not made by pymacvlan")
    assert iv0 is not None
    with pytest.raises(
        ParentBusy,
        match=re.escape(
            "network 0123456789ab (ipvlan l2/vepa) cannot use parent lab0: it already has link iv0 "
            "(ipvlan l3/bridge, not made by pymacvlan); ipvlan users of one parent must have the "
            "same ipvlan_mode and ipvlan_flag"
        ),
    ):
        check_sharing("lab0", _ipvlan_network("l2", "vepa"), [iv0])
    check_sharing("lab0", _ipvlan_network("l3", "bridge"), [iv0])  # the same mode is fine
    await links.create_ipvlan("iv2", "lab0", "l3", "bridge")


def _ipvlan_network(mode: IpvlanMode, flag: IpvlanFlag) -> ParentUser:
    return ParentUser("network 0123456789ab", "ipvlan", ipvlan_mode=mode, ipvlan_flag=flag)


@pytest.mark.parametrize(("flag", "reachable"), [("bridge", True), ("private", False)])
async def test_ipvlan_l2_endpoints_and_the_flag(
    lab: Lab, links: LinkLayer, flag: IpvlanFlag, reachable: bool
) -> None:
    for name in ("ep1", "ep2"):
        await links.create_ipvlan(name, "lab0", "l2", flag)
    c1 = move_to_container(lab, "ep1", "192.0.2.11/24")
    move_to_container(lab, "ep2", "192.0.2.12/24")
    assert pings(c1, "192.0.2.12") is reachable


async def test_ipvlan_mtu_above_the_parent_is_refused(lab: Lab, links: LinkLayer) -> None:
    # The 6.1 kernel would accept it (its frames would then be dropped by the parent).
    with pytest.raises(
        InvalidOption, match=re.escape("larger than the MTU of its parent lab0 (1500)")
    ):
        await links.create_ipvlan("iv0", "lab0", mtu=9000)


# -- macvlan and ipvlan on one parent -------------------------------------------------------------


async def test_ipvlan_next_to_macvlan_the_rule_names_the_link_and_the_kernel_says_ebusy(
    lab: Lab, links: LinkLayer
) -> None:
    mv0 = link_user(await links.create_macvlan("mv0", "lab0"), "not made by pymacvlan")
    assert mv0 is not None
    with pytest.raises(
        ParentBusy,
        match=re.escape(
            "it already has link mv0 (macvlan bridge, not made by pymacvlan), and macvlan and "
            "ipvlan cannot share a parent"
        ),
    ):
        check_sharing("lab0", _ipvlan_network("l2", "bridge"), [mv0])
    with pytest.raises(ParentBusy, match="parent lab0 is already in use by macvlan links") as info:
        await links.create_ipvlan("iv0", "lab0")
    assert info.value.errno == errno.EBUSY
    assert link_names(lab.host) == {"lo", "lab0", "mv0"}


async def test_macvlan_next_to_ipvlan_the_rule_names_the_link_and_the_kernel_says_ebusy(
    lab: Lab, links: LinkLayer
) -> None:
    iv0 = link_user(await links.create_ipvlan("iv0", "lab0"), "not made by pymacvlan")
    assert iv0 is not None
    network = ParentUser("network 0123456789ab", "macvlan", macvlan_mode="bridge")
    with pytest.raises(
        ParentBusy,
        match=re.escape(
            "it already has link iv0 (ipvlan l2/bridge, not made by pymacvlan), and macvlan and "
            "ipvlan cannot share a parent"
        ),
    ):
        check_sharing("lab0", network, [iv0])
    with pytest.raises(ParentBusy, match="parent lab0 is already in use by ipvlan links") as info:
        await links.create_macvlan("mv0", "lab0")
    assert info.value.errno == errno.EBUSY
    assert link_names(lab.host) == {"lo", "lab0", "iv0"}


async def test_a_conflict_inside_a_container_is_still_worded(lab: Lab, links: LinkLayer) -> None:
    """Moved into a container, the macvlan is invisible here: the kernel's EBUSY is translated."""
    await links.create_macvlan("mv0", "lab0")
    move_to_container(lab, "mv0", "192.0.2.11/24")
    with pytest.raises(
        ParentBusy,
        match="parent lab0 is already in use by macvlan links \\(perhaps inside containers\\)",
    ) as info:
        await links.create_ipvlan("iv0", "lab0")
    assert info.value.errno == 16  # EBUSY
    assert link_names(lab.host) == {"lo", "lab0"}


# -- dummy ----------------------------------------------------------------------------------------


# -- wireless -------------------------------------------------------------------------------------


async def test_wireless_parents_are_recognised() -> None:
    """mac80211_hwsim makes a simulated radio in the guest's own namespace, read-only here."""
    if sh("modprobe", "mac80211_hwsim", "radios=1", check=False).returncode != 0:
        pytest.skip("no mac80211_hwsim module in this kernel")
    try:
        async with await LinkLayer.open() as links:
            found = {link.name: link.wireless for link in await links.list_links()}
        assert any(found.values()), found
        assert found["lo"] is False
    finally:
        sh("modprobe", "-r", "mac80211_hwsim", check=False)
