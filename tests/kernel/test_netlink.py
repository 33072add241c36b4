"""The link layer (driver/netlink/) against this host's kernel, in throwaway namespaces.

This kernel has macvlan, veth and bridge but no 802.1q, ipvlan or dummy: those kinds are checked
here only for the "this kernel has no ... support" message, and for real in tests/guest.

Topology of the ``lab`` fixture (every name is the test's own, all in namespaces it creates):

    ns "host":  lab0 (veth, the "physical" parent) ──┐
    ns "lan":   lan0 (veth peer) ── br0 (a bridge: the LAN switch, 192.0.2.1/24)

"Containers" are further namespaces that macvlan links are moved into. The LinkLayer under test is
opened in the "host" namespace without this process ever entering it (see LinkLayer.open).
Deleting the namespaces at the end removes every link made inside them, also when a test fails.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from driver.errors import (
    AddressInUse,
    DriverError,
    InvalidOption,
    KindNotSupported,
    LinkError,
    LinkExists,
    ParentBusy,
    ParentNotFound,
)
from driver.linkinfo import LinkInfo, MacvlanMode, check_link_name, check_vlan_id, normalize_mac
from driver.netlink import LinkLayer
from driver.netlink.translate import Op, translate
from tests.harness.prereq import kernel_supports, require, require_command, require_root
from tests.kernel.nslab import Lab, cabled_lab, ip_link_json, link_names, ns_sh, read, sh

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_root()
    require_command("ip")
    require_command("ping")
    with cabled_lab(switch=True) as lab:
        yield lab


@pytest.fixture
async def links(lab: Lab) -> AsyncIterator[LinkLayer]:
    # Closed before ``lab`` deletes the namespaces: an open socket would keep a namespace alive.
    async with await LinkLayer.open(netns=lab.host) as layer:
        yield layer


def move_to_container(lab: Lab, link: str, address: str | None = None) -> str:
    """Move a link into a new "container" namespace as Docker does at Join; up, with ``address``."""
    ns = lab.namespace(f"c{len(lab.namespaces)}")
    sh("ip", "-n", lab.host, "link", "set", link, "netns", ns)
    if address is not None:
        sh("ip", "-n", ns, "addr", "add", address, "dev", link)
    sh("ip", "-n", ns, "link", "set", link, "up")
    return ns


def pings(ns: str, address: str) -> bool:
    return (
        ns_sh(ns, "ping", "-c", "2", "-i", "0.2", "-W", "1", address, check=False).returncode == 0
    )


# -- pure checks: no root needed ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a" * 16, "interface name aaaaaaaaaaaaaaaa is longer than 15 characters"),
        ("", "interface name is empty"),
        ("..", "interface name '..' is not valid: a name may not be '.' or '..'"),
        ("eth0/1", "interface name 'eth0/1' is not valid: character '/' (U+002F) is not allowed"),
        ("eth 0", "interface name 'eth 0' is not valid: character ' ' (U+0020) is not allowed"),
        ("eth0\x00x", "interface name 'eth0\\x00x' is not valid: character '\\x00' (U+0000)"),
    ],
)
def test_bad_link_names_are_refused_with_the_name(name: str, message: str) -> None:
    with pytest.raises(InvalidOption, match=re.escape(message)) as info:
        check_link_name(name)
    assert info.value.caller_fault


def test_longest_allowed_name_passes() -> None:
    check_link_name("a" * 15)


@pytest.mark.parametrize("vlan_id", [0, 4095, -1, 5000])
def test_reserved_and_impossible_vlan_ids_are_refused(vlan_id: int) -> None:
    with pytest.raises(InvalidOption, match=f"VLAN id {vlan_id} is out of range"):
        check_vlan_id(vlan_id)


@pytest.mark.parametrize(
    ("mac", "result"),
    [("02-42-AC-11-00-02", "02:42:ac:11:00:02"), ("02:00:5e:10:00:01", "02:00:5e:10:00:01")],
)
def test_mac_addresses_are_normalized(mac: str, result: str) -> None:
    assert normalize_mac(mac) == result


@pytest.mark.parametrize(
    ("mac", "message"),
    [
        ("01:00:5e:00:00:01", "is a multicast address"),
        ("00:00:00:00:00:00", "is all zeros"),
        ("02:42:ac:11:00", "is not of the form"),
        ("02:42:ac:11:00:zz", "is not of the form"),
    ],
)
def test_unusable_mac_addresses_are_refused(mac: str, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        normalize_mac(mac)


def _netlink_error(code: int, message: str | None = None) -> NetlinkError:
    return NetlinkError(code, message)


@pytest.mark.parametrize(
    ("code", "kernel_message", "op", "cls", "text"),
    [
        (
            errno.EEXIST,
            None,
            Op("create", "mv0", kind="macvlan", parent="lab0", mode="bridge"),
            LinkExists,
            "a link named mv0 already exists",
        ),
        (
            errno.EEXIST,
            "8021q: VLAN device already exists",
            Op("create", "v10", kind="vlan", parent="lab0", vlan_id=10),
            LinkExists,
            "parent lab0 already has a link for VLAN 10",
        ),
        (
            errno.ENODEV,
            None,
            Op("create", "mv0", kind="macvlan", parent="gone0"),
            ParentNotFound,
            "parent interface gone0 does not exist on this host",
        ),
        (
            errno.EOPNOTSUPP,
            "Unknown device type",
            Op("create", "iv0", kind="ipvlan", parent="lab0"),
            KindNotSupported,
            r"this kernel has no ipvlan support \(module ipvlan\)",
        ),
        (
            errno.EOPNOTSUPP,
            "VLANs not supported on device",
            Op("create", "v10", kind="vlan", parent="wg0", vlan_id=10),
            LinkError,
            "cannot create VLAN 10 link v10 on parent wg0: EOPNOTSUPP: VLANs not supported",
        ),
        (
            errno.EBUSY,
            None,
            Op("create", "mv0", kind="macvlan", parent="lab0", mode="bridge"),
            ParentBusy,
            "parent lab0 is already in use by ipvlan links",
        ),
        (
            errno.EINVAL,
            None,
            Op("create", "pt0", kind="macvlan", parent="lab0", mode="passthru"),
            ParentBusy,
            "passthru mode needs the parent to itself",
        ),
        (
            errno.EADDRINUSE,
            None,
            Op("set up", "mv1", kind="macvlan", parent="lab0", mac="02:00:00:00:00:01"),
            AddressInUse,
            "its MAC address 02:00:00:00:00:01 is already used on parent lab0",
        ),
        (
            errno.ERANGE,
            "Attribute failed policy validation",
            Op("set alias", "mv0"),
            LinkError,
            "cannot set the alias of link mv0: ERANGE: Attribute failed policy validation",
        ),
        (
            errno.EPERM,
            None,
            Op("delete", "mv0"),
            LinkError,
            "cannot delete link mv0: EPERM: Operation not permitted; pymacvlan needs CAP_NET_ADMIN",
        ),
        (
            errno.ENOBUFS,
            None,
            Op("add address", "shim0", what="192.0.2.2/24"),
            LinkError,
            "cannot add address 192.0.2.2/24 to link shim0: ENOBUFS: No buffer space available",
        ),
    ],
)
def test_kernel_errors_are_translated_once_with_the_object_and_action(
    code: int, kernel_message: str | None, op: Op, cls: type[LinkError], text: str
) -> None:
    error = translate(_netlink_error(code, kernel_message), op)
    assert type(error) is cls
    assert error.errno == code
    assert error.kernel_message == kernel_message
    assert re.search(text, str(error)), str(error)


# -- macvlan on the host kernel -------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.parametrize("mode", ["bridge", "private", "vepa"])
async def test_macvlan_is_created_as_asked_and_read_back(
    lab: Lab, links: LinkLayer, mode: MacvlanMode
) -> None:
    parent = await read(links, "lab0")
    assert parent.kind == "veth"
    assert parent.ethernet

    made = await links.create_macvlan(
        "mv0", "lab0", mode, mtu=1400, mac="02:00:5E:10:00:01", alias="pymacvlan:net1"
    )

    assert made.name == "mv0"
    assert made.kind == "macvlan"
    assert made.macvlan_mode == mode
    assert (made.parent_index, made.parent_name) == (parent.index, "lab0")
    assert (made.mtu, made.mac, made.alias) == (1400, "02:00:5e:10:00:01", "pymacvlan:net1")
    assert not made.up
    assert made.ipvlan_mode is None
    assert made.vlan_id is None
    assert await links.get_link("mv0") == made
    kernel = ip_link_json(lab.host, "mv0")
    assert kernel["linkinfo"]["info_kind"] == "macvlan"
    assert kernel["linkinfo"]["info_data"]["mode"] == mode
    assert (kernel["mtu"], kernel["address"], kernel["ifalias"]) == (
        1400,
        "02:00:5e:10:00:01",
        "pymacvlan:net1",
    )
    assert kernel["link"] == "lab0"


@pytest.mark.kernel
async def test_macvlan_defaults_to_parent_mtu_and_a_random_mac(lab: Lab, links: LinkLayer) -> None:
    sh("ip", "-n", lab.host, "link", "set", "lab0", "mtu", "1450")
    made = await links.create_macvlan("mv0", "lab0")
    assert made.macvlan_mode == "bridge"
    assert made.mtu == 1450
    assert made.alias is None
    assert made.mac not in (None, (await read(links, "lab0")).mac)


@pytest.mark.kernel
async def test_passthru_takes_the_parent_and_its_mac(lab: Lab, links: LinkLayer) -> None:
    parent = await read(links, "lab0")
    made = await links.create_macvlan("pt0", "lab0", "passthru")
    assert made.macvlan_mode == "passthru"
    assert made.mac == parent.mac
    assert ip_link_json(lab.host, "pt0")["linkinfo"]["info_data"]["mode"] == "passthru"


@pytest.mark.kernel
async def test_passthru_is_exclusive_both_ways(lab: Lab, links: LinkLayer) -> None:
    """The kernel's bare EINVAL, worded. Which networks may share a parent is driver.sharing's
    rule (tests/unit/driver/test_driver_sharing.py); the link layer does as it is told."""
    await links.create_macvlan("pt0", "lab0", "passthru")
    with pytest.raises(ParentBusy, match="most likely has a passthru macvlan link") as info:
        await links.create_macvlan("mv0", "lab0", "bridge")
    assert info.value.errno == errno.EINVAL
    with pytest.raises(ParentBusy, match="parent lab0 already has macvlan links"):
        await links.create_macvlan("pt1", "lab0", "passthru")
    await links.delete_link("pt0")

    await links.create_macvlan("mv0", "lab0", "bridge")
    await links.create_macvlan("mv1", "lab0", "private")
    with pytest.raises(
        ParentBusy,
        match=r"cannot create passthru macvlan link pt0: parent lab0 already has macvlan links "
        r"\(perhaps inside containers\); passthru mode needs the parent to itself",
    ):
        await links.create_macvlan("pt0", "lab0", "passthru")
    assert link_names(lab.host) == {"lo", "lab0", "mv0", "mv1"}


@pytest.mark.kernel
async def test_passthru_inside_a_container_is_still_reported(lab: Lab, links: LinkLayer) -> None:
    """Once the passthru link is in a container, only the kernel knows: its EINVAL is worded."""
    await links.create_macvlan("pt0", "lab0", "passthru")
    move_to_container(lab, "pt0")
    assert await links.list_children((await read(links, "lab0")).index) == []

    with pytest.raises(ParentBusy, match="most likely has a passthru macvlan link") as info:
        await links.create_macvlan("mv0", "lab0", "bridge")
    assert info.value.errno == errno.EINVAL
    assert "mv0" not in link_names(lab.host)


@pytest.mark.kernel
async def test_mtu_above_the_parent_is_refused_before_the_kernel(
    lab: Lab, links: LinkLayer
) -> None:
    with pytest.raises(
        InvalidOption,
        match=r"MTU 9000 for macvlan link mv0 is larger than the MTU of its parent lab0 \(1500\)",
    ) as info:
        await links.create_macvlan("mv0", "lab0", mtu=9000)
    assert info.value.caller_fault
    with pytest.raises(InvalidOption, match="MTU 60 is out of range"):
        await links.create_macvlan("mv0", "lab0", mtu=60)
    assert "mv0" not in link_names(lab.host)


@pytest.mark.kernel
async def test_set_mtu_follows_the_parent_rules(lab: Lab, links: LinkLayer) -> None:
    await links.create_macvlan("mv0", "lab0")
    await links.set_mtu("mv0", 1400)
    assert ip_link_json(lab.host, "mv0")["mtu"] == 1400
    with pytest.raises(InvalidOption, match=r"larger than the MTU of its parent lab0 \(1500\)"):
        await links.set_mtu("mv0", 1600)

    # Kernel behaviour the driver must expect: lowering the parent lowers its macvlan links...
    sh("ip", "-n", lab.host, "link", "set", "lab0", "mtu", "1300")
    assert (await read(links, "mv0")).mtu == 1300
    # ...and raising it again does not raise them back.
    sh("ip", "-n", lab.host, "link", "set", "lab0", "mtu", "1500")
    assert (await read(links, "mv0")).mtu == 1300


@pytest.mark.kernel
async def test_missing_parent_is_named(lab: Lab, links: LinkLayer) -> None:
    with pytest.raises(
        ParentNotFound, match="parent interface nope0 does not exist on this host"
    ) as info:
        await links.create_macvlan("mv0", "nope0")
    assert info.value.caller_fault


@pytest.mark.kernel
async def test_long_names_are_refused_before_the_kernel(lab: Lab, links: LinkLayer) -> None:
    with pytest.raises(
        InvalidOption, match="interface name pmv0123456789abc is longer than 15 characters"
    ):
        await links.create_macvlan("pmv0123456789abc", "lab0")
    with pytest.raises(
        InvalidOption, match=r"interface name enp0s31f6u1u2u3\.10 is longer than 15 characters"
    ):
        await links.create_macvlan("mv0", "enp0s31f6u1u2u3.10")
    assert link_names(lab.host) == {"lo", "lab0"}


@pytest.mark.kernel
async def test_loopback_is_not_a_parent(lab: Lab, links: LinkLayer) -> None:
    with pytest.raises(InvalidOption, match="parent interface lo is the loopback device"):
        await links.create_macvlan("mv0", "lo")


@pytest.mark.kernel
async def test_duplicate_name_is_named(lab: Lab, links: LinkLayer) -> None:
    await links.create_macvlan("mv0", "lab0")
    with pytest.raises(LinkExists, match="a link named mv0 already exists") as info:
        await links.create_macvlan("mv0", "lab0", "private")
    assert info.value.errno == errno.EEXIST
    assert ip_link_json(lab.host, "mv0")["linkinfo"]["info_data"]["mode"] == "bridge"


@pytest.mark.kernel
async def test_duplicate_mac_is_refused_when_brought_up(lab: Lab, links: LinkLayer) -> None:
    """The kernel accepts a duplicate MAC at creation and refuses it at IFF_UP (EADDRINUSE)."""
    await links.create_macvlan("mv0", "lab0", mac="02:00:5e:10:00:01")
    await links.create_macvlan("mv1", "lab0", mac="02:00:5e:10:00:01")
    await links.set_up("mv0")
    with pytest.raises(
        AddressInUse,
        match="cannot bring up macvlan link mv1 on parent lab0: its MAC address "
        "02:00:5e:10:00:01 is already used on parent lab0",
    ):
        await links.set_up("mv1")

    parent_mac = (await read(links, "lab0")).mac
    assert parent_mac is not None
    await links.create_macvlan("mv2", "lab0", mac=parent_mac)
    with pytest.raises(AddressInUse, match="or by the parent itself"):
        await links.set_up("mv2")
    assert (await read(links, "mv0")).up
    assert not (await read(links, "mv1")).up


async def _create_one(links: LinkLayer, kind: str) -> LinkInfo:
    if kind == "vlan":
        return await links.create_vlan("lab0.10", "lab0", 10)
    if kind == "ipvlan":
        return await links.create_ipvlan("iv0", "lab0")
    return await links.create_dummy("dm-0")


@pytest.mark.parametrize("kind", ["vlan", "ipvlan", "dummy"])
@pytest.mark.kernel
async def test_kinds_missing_from_the_kernel_are_named(
    lab: Lab, links: LinkLayer, kind: str
) -> None:
    require(not kernel_supports(kind), f"this kernel has {kind}: see tests/guest")
    expected = {
        "vlan": "802.1q VLAN support (module 8021q)",
        "ipvlan": "ipvlan support (module ipvlan)",
        "dummy": "dummy interface support (module dummy)",
    }[kind]
    with pytest.raises(KindNotSupported, match=re.escape(f"this kernel has no {expected}")):
        await _create_one(links, kind)
    assert link_names(lab.host) == {"lo", "lab0"}


@pytest.mark.kernel
async def test_delete_is_idempotent(lab: Lab, links: LinkLayer) -> None:
    await links.create_macvlan("mv0", "lab0")
    assert await links.delete_link("mv0") is True
    assert await links.delete_link("mv0") is False
    assert await links.get_link("mv0") is None
    assert link_names(lab.host) == {"lo", "lab0"}


@pytest.mark.kernel
async def test_alias_is_set_and_cleared(lab: Lab, links: LinkLayer) -> None:
    await links.create_macvlan("mv0", "lab0")
    await links.set_alias("mv0", "pymacvlan:0123456789ab")
    assert (await read(links, "mv0")).alias == "pymacvlan:0123456789ab"
    assert ip_link_json(lab.host, "mv0")["ifalias"] == "pymacvlan:0123456789ab"
    await links.set_alias("mv0", None)
    assert (await read(links, "mv0")).alias is None
    with pytest.raises(InvalidOption, match="longer than 255 bytes"):
        await links.set_alias("mv0", "x" * 256)


@pytest.mark.kernel
async def test_list_children_reports_kinds_and_modes(lab: Lab, links: LinkLayer) -> None:
    await links.create_macvlan("mv0", "lab0", "bridge")
    await links.create_macvlan("mv1", "lab0", "vepa")
    moved = await links.create_macvlan("mv2", "lab0", "bridge")
    move_to_container(lab, moved.name)
    children = await links.list_children((await read(links, "lab0")).index)

    assert sorted((c.name, c.kind, c.macvlan_mode) for c in children) == [
        ("mv0", "macvlan", "bridge"),
        ("mv1", "macvlan", "vepa"),
    ]
    assert {c.parent_name for c in children} == {"lab0"}


@pytest.mark.kernel
async def test_concurrent_creates_share_one_socket(lab: Lab, links: LinkLayer) -> None:
    made = await asyncio.gather(*(links.create_macvlan(f"mv{i}", "lab0") for i in range(8)))
    assert sorted(m.name for m in made) == [f"mv{i}" for i in range(8)]
    assert link_names(lab.host) == {"lo", "lab0", *(f"mv{i}" for i in range(8))}


@pytest.mark.kernel
async def test_addresses_and_routes_of_a_shim(lab: Lab, links: LinkLayer) -> None:
    await links.create_macvlan("shim0", "lab0", alias="pymacvlan:shim")
    assert await links.add_address("shim0", "192.0.2.250/24") is True
    assert await links.add_address("shim0", "192.0.2.250/24") is False
    assert await links.add_address("shim0", "2001:db8::250/64") is True
    await links.set_up("shim0")
    assert await links.add_route("198.51.100.64/26", "shim0") is True
    assert await links.add_route("198.51.100.64/26", "shim0") is False
    assert await links.add_route("2001:db8:1::/64", "shim0") is True

    addresses = {str(a) for a in await links.list_addresses("shim0")}
    assert {"192.0.2.250/24", "2001:db8::250/64"} <= addresses
    routes = {str(r) for r in await links.list_routes("shim0")}
    assert {"198.51.100.64/26", "2001:db8:1::/64", "192.0.2.0/24"} <= routes
    kernel_routes = sh("ip", "-n", lab.host, "route", "show", "dev", "shim0").stdout
    assert "198.51.100.64/26 proto static scope link" in kernel_routes

    assert await links.del_route("198.51.100.64/26", "shim0") is True
    assert await links.del_route("198.51.100.64/26", "shim0") is False
    assert await links.del_route("2001:db8:1::/64", "shim0") is True
    assert await links.del_address("shim0", "192.0.2.250/24") is True
    assert await links.del_address("shim0", "192.0.2.250/24") is False
    assert "198.51.100.64/26" not in sh("ip", "-n", lab.host, "route").stdout
    assert "192.0.2.250" not in sh("ip", "-n", lab.host, "addr", "show", "dev", "shim0").stdout

    with pytest.raises(InvalidOption, match="is not an address in CIDR form"):
        await links.add_address("shim0", "192.0.2.300/24")
    with pytest.raises(InvalidOption, match="is not a network in CIDR form"):
        await links.add_route("198.51.100.65/26", "shim0")
    with pytest.raises(
        DriverError,
        match=r"cannot add address 192\.0\.2\.9/24 to link gone0: link gone0 does not exist",
    ):
        await links.add_address("gone0", "192.0.2.9/24")


@pytest.mark.kernel
async def test_opening_a_missing_namespace_fails_without_creating_it(lab: Lab) -> None:
    missing = f"pmv-{os.getpid()}-{lab.tag}-missing"
    with pytest.raises(
        LinkError, match=f"cannot open a netlink socket in network namespace {missing}"
    ):
        await LinkLayer.open(netns=missing)
    assert missing not in sh("ip", "netns", "list").stdout


# -- wireless detection and the sysfs namespace ---------------------------------------------------


@pytest.mark.kernel
async def test_wireless_is_unknown_when_sysfs_shows_another_namespace(links: LinkLayer) -> None:
    assert (await read(links, "lab0")).wireless is None


_IN_NAMESPACE = """
import asyncio
from driver.netlink import LinkLayer
async def main():
    async with await LinkLayer.open() as links:
        info = await links.get_link("lab0")
        print(info.kind, info.wireless)
asyncio.run(main())
"""


@pytest.mark.kernel
def test_started_inside_the_namespace_sysfs_matches(lab: Lab) -> None:
    """The daemon's own way: started in the namespace (ip netns exec remounts /sys for it)."""
    result = subprocess.run(
        ["ip", "netns", "exec", lab.host, sys.executable, "-c", _IN_NAMESPACE],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["veth", "False"]


# -- traffic: what a user sees -------------------------------------------------------------------


async def _two_endpoints(lab: Lab, links: LinkLayer, mode: MacvlanMode) -> tuple[str, str]:
    for name in ("ep1", "ep2"):
        await links.create_macvlan(name, "lab0", mode)
    return (
        move_to_container(lab, "ep1", "192.0.2.11/24"),
        move_to_container(lab, "ep2", "192.0.2.12/24"),
    )


def _hairpin(lab: Lab, on: bool) -> None:
    """A reflective relay (802.1Qbg) on the LAN switch port: what VEPA mode relies on."""
    sh(
        "ip",
        "-n",
        lab.lan,
        "link",
        "set",
        "lan0",
        "type",
        "bridge_slave",
        "hairpin",
        "on" if on else "off",
    )


@pytest.mark.kernel
async def test_bridge_mode_endpoints_reach_each_other_and_the_lan(
    lab: Lab, links: LinkLayer
) -> None:
    c1, c2 = await _two_endpoints(lab, links, "bridge")
    assert pings(c1, "192.0.2.12")
    assert pings(c2, "192.0.2.11")
    assert pings(c1, "192.0.2.1")


@pytest.mark.kernel
async def test_private_mode_endpoints_are_isolated_even_with_hairpin(
    lab: Lab, links: LinkLayer
) -> None:
    _hairpin(lab, True)
    c1, c2 = await _two_endpoints(lab, links, "private")
    assert pings(c1, "192.0.2.1")
    assert pings(c2, "192.0.2.1")
    assert not pings(c1, "192.0.2.12")


@pytest.mark.kernel
async def test_vepa_mode_endpoints_meet_only_through_a_hairpin_switch(
    lab: Lab, links: LinkLayer
) -> None:
    c1, _ = await _two_endpoints(lab, links, "vepa")
    assert pings(c1, "192.0.2.1")
    assert not pings(c1, "192.0.2.12")
    _hairpin(lab, True)
    assert pings(c1, "192.0.2.12")
