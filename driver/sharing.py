"""Which networks may share a parent link, decided before the kernel is asked.

The kernel answers a forbidden combination with a bare EBUSY or EINVAL that tells the user nothing,
so every rule is checked up front and the refusal names both sides of the conflict:

* any number of macvlan networks in bridge/private/vepa mode may share a parent (as in Docker);
* passthru gives one macvlan the whole parent: it shares with nothing;
* macvlan and ipvlan cannot hang off one parent (the kernel claims the parent for one of them);
* ipvlan networks may share a parent only with the same mode and flag: the kernel keeps one mode
  per parent, and a second network with another mode would silently switch the first one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from driver.config import NetworkConfig
from driver.errors import ParentBusy as ParentConflict


@dataclass(frozen=True)
class ForeignLink:
    """A macvlan/ipvlan link on the parent that is not one of ours (made by hand or by Docker)."""

    name: str
    kind: str
    mode: str = ""


def check_parent_sharing(
    new: NetworkConfig,
    existing: Iterable[NetworkConfig],
    foreign: Iterable[ForeignLink] = (),
) -> None:
    parent = new.parent.name
    for other in existing:
        if other.network_id == new.network_id or other.parent.name != parent:
            continue
        _check_pair(new, f"network {_short(other.network_id)} ({other.mode})", other)
    for link in foreign:
        _check_foreign(new, link)


def _check_pair(new: NetworkConfig, who: str, other: NetworkConfig) -> None:
    parent = new.parent.name
    if new.kind != other.kind:
        raise ParentConflict(
            f"parent {parent} is already used by {who}: macvlan and ipvlan cannot share a "
            f"parent (the kernel gives it to one of them); use another parent or VLAN"
        )
    if new.kind == "macvlan":
        if new.macvlan_mode == "passthru":
            raise ParentConflict(
                f"macvlan_mode passthru needs parent {parent} for itself, but {who} uses it"
            )
        if other.macvlan_mode == "passthru":
            raise ParentConflict(
                f"parent {parent} is taken by {who}, which allows no other network on it"
            )
        return
    if (new.ipvlan_mode, new.ipvlan_flag) != (other.ipvlan_mode, other.ipvlan_flag):
        raise ParentConflict(
            f"parent {parent} is used by {who}; ipvlan networks on one parent must have the "
            f"same ipvlan_mode and ipvlan_flag (the kernel keeps one per parent), "
            f"but this one asks for {new.mode}"
        )


def _check_foreign(new: NetworkConfig, link: ForeignLink) -> None:
    parent = new.parent.name
    who = f"{link.kind} link {link.name} (not made by pymacvlan)"
    if link.kind != new.kind:
        raise ParentConflict(
            f"parent {parent} already has {who}: macvlan and ipvlan cannot share a parent; "
            f"remove it or use another parent"
        )
    if new.kind == "macvlan" and (new.macvlan_mode == "passthru" or link.mode == "passthru"):
        raise ParentConflict(
            f"parent {parent} already has {who}; macvlan_mode passthru allows only one "
            f"macvlan link on a parent"
        )
    if new.kind == "ipvlan" and link.mode and link.mode != new.ipvlan_mode:
        raise ParentConflict(
            f"parent {parent} already has {who} in mode {link.mode}; the kernel keeps one "
            f"ipvlan mode per parent, so this network cannot use {new.ipvlan_mode}"
        )


def _short(network_id: str) -> str:
    return network_id[:12]
