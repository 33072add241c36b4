"""Which networks may share a parent, decided before the kernel answers EBUSY."""

from __future__ import annotations

from typing import cast

import pytest

from driver.config import NetworkConfig, Parent
from driver.errors import ParentBusy
from driver.linkinfo import IpvlanFlag, IpvlanMode, MacvlanMode
from driver.sharing import ForeignLink, check_parent_sharing


def net(
    nid: str,
    kind: str = "macvlan",
    mode: str = "bridge",
    flag: str = "bridge",
    parent: str = "eth1",
) -> NetworkConfig:
    if kind == "macvlan":
        return NetworkConfig(
            nid * 12, "macvlan", Parent(parent), macvlan_mode=cast(MacvlanMode, mode)
        )
    return NetworkConfig(
        nid * 12,
        "ipvlan",
        Parent(parent),
        ipvlan_mode=cast(IpvlanMode, mode),
        ipvlan_flag=cast(IpvlanFlag, flag),
    )


@pytest.mark.parametrize(
    ("existing", "new"),
    [
        (net("a"), net("b")),
        (net("a", mode="private"), net("b", mode="vepa")),
        (net("a", "ipvlan", "l3"), net("b", "ipvlan", "l3")),
        (net("a", mode="passthru"), net("b", parent="eth2")),
    ],
)
def test_allowed(existing: NetworkConfig, new: NetworkConfig) -> None:
    check_parent_sharing(new, [existing])


@pytest.mark.parametrize(
    ("existing", "new", "message"),
    [
        (net("a", mode="passthru"), net("b"), "taken by network aaaaaaaaaaaa"),
        (net("a"), net("b", mode="passthru"), "passthru needs parent eth1 for itself"),
        (net("a"), net("b", "ipvlan"), "macvlan and ipvlan cannot share a parent"),
        (net("a", "ipvlan", "l2"), net("b", "ipvlan", "l3"), "same ipvlan_mode and ipvlan_flag"),
        (
            net("a", "ipvlan", "l2", "bridge"),
            net("b", "ipvlan", "l2", "private"),
            "ipvlan l2/private",
        ),
    ],
)
def test_refused_naming_both_sides(
    existing: NetworkConfig, new: NetworkConfig, message: str
) -> None:
    with pytest.raises(ParentBusy, match=message):
        check_parent_sharing(new, [existing])


def test_the_same_network_again_is_no_conflict() -> None:
    check_parent_sharing(net("a", mode="passthru"), [net("a", mode="passthru")])


def test_foreign_links_on_the_parent() -> None:
    with pytest.raises(ParentBusy, match="ipvlan link iv0 \\(not made by pymacvlan\\)"):
        check_parent_sharing(net("a"), [], [ForeignLink("iv0", "ipvlan", "l2")])
    with pytest.raises(ParentBusy, match="passthru"):
        check_parent_sharing(net("a"), [], [ForeignLink("mv0", "macvlan", "passthru")])
    check_parent_sharing(net("a"), [], [ForeignLink("mv0", "macvlan", "bridge")])
