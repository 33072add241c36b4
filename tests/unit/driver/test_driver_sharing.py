"""Which networks and links may share a parent: the one rule (driver/sharing.py), as a table."""

from __future__ import annotations

import re
from typing import cast

import pytest

from driver.config import NetworkConfig, Parent
from driver.errors import ParentBusy
from driver.linkinfo import IpvlanFlag, IpvlanMode, LinkInfo, MacvlanMode
from driver.sharing import ParentUser, check_sharing, link_user, network_user


def net(
    nid: str,
    kind: str = "macvlan",
    mode: str | None = None,
    flag: str = "bridge",
    parent: str = "eth1",
) -> NetworkConfig:
    if kind == "macvlan":
        return NetworkConfig(
            nid * 12, "macvlan", Parent(parent), macvlan_mode=cast(MacvlanMode, mode or "bridge")
        )
    return NetworkConfig(
        nid * 12,
        "ipvlan",
        Parent(parent),
        ipvlan_mode=cast(IpvlanMode, mode or "l2"),
        ipvlan_flag=cast(IpvlanFlag, flag),
    )


def link(name: str, kind: str, mode: str | None = None, flag: str | None = None) -> LinkInfo:
    """A link as the link layer reports it on parent eth1 (index 2)."""
    return LinkInfo(
        index=10,
        name=name,
        kind=kind,
        parent_index=2,
        parent_name="eth1",
        parent_netnsid=None,
        master_index=None,
        mtu=1500,
        up=True,
        oper_state="up",
        carrier=True,
        mac="02:00:00:00:00:01",
        alias=None,
        ethernet=True,
        loopback=False,
        wireless=False,
        vlan_id=10 if kind == "vlan" else None,
        macvlan_mode=cast(MacvlanMode, mode) if kind == "macvlan" else None,
        ipvlan_mode=cast(IpvlanMode, mode) if kind == "ipvlan" else None,
        ipvlan_flag=cast(IpvlanFlag, flag) if kind == "ipvlan" else None,
    )


def foreign(name: str, kind: str, mode: str | None = None, flag: str | None = None) -> ParentUser:
    user = link_user(link(name, kind, mode, flag), "not made by pymacvlan")
    assert user is not None
    return user


def check(new: NetworkConfig, *others: NetworkConfig | ParentUser) -> None:
    users = [o if isinstance(o, ParentUser) else network_user(o) for o in others]
    check_sharing(new.parent.name, network_user(new), users)


# (new network, what is already on the parent)
ALLOWED = [
    (net("b"), net("a")),
    (net("b", mode="vepa"), net("a", mode="private")),
    (net("b"), foreign("mv0", "macvlan", "bridge")),
    (
        net("b", mode="private"),
        foreign("mv0", "macvlan", None),
    ),  # "source": no mode of ours  # a mode we do not know
    (net("b", "ipvlan", "l3"), net("a", "ipvlan", "l3")),
    (net("b", "ipvlan", "l2", "private"), foreign("iv0", "ipvlan", "l2", "private")),
    (net("b", "ipvlan", "l3s", "vepa"), foreign("iv0", "ipvlan", "l3s", "vepa")),
]

REFUSED = [
    (
        net("b"),
        net("a", mode="passthru"),
        "network bbbbbbbbbbbb (macvlan bridge) cannot use parent eth1: it is taken by network "
        "aaaaaaaaaaaa (macvlan passthru), which allows no other link on it",
    ),
    (
        net("b", mode="passthru"),
        net("a"),
        "network bbbbbbbbbbbb (macvlan passthru) cannot use parent eth1: macvlan_mode passthru "
        "needs the parent for itself, but it already has network aaaaaaaaaaaa (macvlan bridge)",
    ),
    (
        net("b", mode="passthru"),
        net("a", mode="passthru"),
        "macvlan_mode passthru needs the parent for itself",
    ),
    (
        net("b", "ipvlan"),
        net("a"),
        "network bbbbbbbbbbbb (ipvlan l2/bridge) cannot use parent eth1: it already has network "
        "aaaaaaaaaaaa (macvlan bridge), and macvlan and ipvlan cannot share a parent",
    ),
    (
        net("b"),
        foreign("iv0", "ipvlan", "l2", "bridge"),
        "network bbbbbbbbbbbb (macvlan bridge) cannot use parent eth1: it already has link iv0 "
        "(ipvlan l2/bridge, not made by pymacvlan), and macvlan and ipvlan cannot share a parent",
    ),
    (
        net("b", "ipvlan", "l3"),
        net("a", "ipvlan", "l2"),
        "network bbbbbbbbbbbb (ipvlan l3/bridge) cannot use parent eth1: it already has network "
        "aaaaaaaaaaaa (ipvlan l2/bridge); ipvlan users of one parent must have the same "
        "ipvlan_mode and ipvlan_flag",
    ),
    (
        net("b", "ipvlan", "l2", "private"),
        net("a", "ipvlan", "l2", "bridge"),
        "network bbbbbbbbbbbb (ipvlan l2/private) cannot use parent eth1",
    ),
    (
        net("b"),
        foreign("pt0", "macvlan", "passthru"),
        "it is taken by link pt0 (macvlan passthru, not made by pymacvlan), which allows no other",
    ),
    (
        net("b", mode="passthru"),
        foreign("mv0", "macvlan", None),
        "but it already has link mv0 (macvlan in another mode, not made by pymacvlan)",
    ),
    (
        net("b", "ipvlan"),
        foreign("iv0", "ipvlan", "l2", None),
        "it already has link iv0 (ipvlan l2/?, not made by pymacvlan)",
    ),
]


@pytest.mark.parametrize(("new", "existing"), ALLOWED)
def test_allowed(new: NetworkConfig, existing: NetworkConfig | ParentUser) -> None:
    check(new, existing)


@pytest.mark.parametrize(("new", "existing", "message"), REFUSED)
def test_refused_naming_both_sides(
    new: NetworkConfig, existing: NetworkConfig | ParentUser, message: str
) -> None:
    with pytest.raises(ParentBusy, match=re.escape(message)) as info:
        check(new, existing)
    assert not info.value.caller_fault  # the user fixes the host, not the request: HTTP 500


def test_a_foreign_ipvlan_link_with_another_flag_refuses_the_network() -> None:
    """The flag counts as much as the mode: the kernel keeps both per parent (issue 8, item 9)."""
    with pytest.raises(
        ParentBusy,
        match=re.escape(
            "network bbbbbbbbbbbb (ipvlan l2/bridge) cannot use parent eth1: it already has link "
            "iv0 (ipvlan l2/private, not made by pymacvlan); ipvlan users of one parent must have "
            "the same ipvlan_mode and ipvlan_flag (the kernel keeps one per parent and would "
            "switch the others to the new one)"
        ),
    ):
        check(net("b", "ipvlan", "l2", "bridge"), foreign("iv0", "ipvlan", "l2", "private"))


def test_the_first_conflict_is_named_and_vlan_links_do_not_count() -> None:
    vlan = link_user(link("eth1.10", "vlan"))
    assert vlan is None
    with pytest.raises(ParentBusy, match="link iv1 "):
        check(
            net("b", "ipvlan"),
            foreign("iv0", "ipvlan", "l2", "bridge"),
            foreign("iv1", "ipvlan", "l3", "bridge"),
            foreign("iv2", "ipvlan", "l3s", "bridge"),
        )


def test_nothing_on_the_parent_is_no_conflict() -> None:
    check(net("a", mode="passthru"))
