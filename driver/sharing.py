"""Which networks and links may share a parent: one rule, checked before the kernel is asked.

The kernel answers a forbidden combination with a bare EBUSY or EINVAL that tells the user nothing,
or for ipvlan not at all: a link in another mode is accepted and switches the links already on the
parent to it. So the rule is checked first, by ``check_sharing``, in both places that need it:
when a network is created (against the other networks on the parent and the links already on it,
``driver.parents.prepare_parent``) and when a container joins (against the links on the parent at
that moment, which may have come since, ``driver.parents.check_siblings``). The refusal names both
sides. The rule:

* any number of macvlan users in bridge, private or vepa mode may share a parent (as in Docker);
* passthru gives one macvlan link the whole parent: it shares with nothing;
* macvlan and ipvlan cannot hang off one parent (the kernel claims the parent for one of them);
* ipvlan users may share a parent only with the same mode and flag: the kernel keeps one per
  parent, and a second one would silently switch the first.

Pure: no netlink, no state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from driver.config import Kind, NetworkConfig
from driver.errors import ParentBusy
from driver.linkinfo import IpvlanFlag, IpvlanMode, LinkInfo, MacvlanMode


@dataclass(frozen=True, slots=True)
class ParentUser:
    """One user of a parent: a network of ours, or a macvlan/ipvlan link found on it.

    A mode the kernel reported and this code does not know (macvlan "source") is None: it equals
    no mode we ask for.
    """

    who: str  # "network 0123456789ab", "link iv0"
    kind: Kind
    macvlan_mode: MacvlanMode | None = None
    ipvlan_mode: IpvlanMode | None = None
    ipvlan_flag: IpvlanFlag | None = None
    note: str = ""  # "not made by pymacvlan"

    @property
    def mode(self) -> str:
        """``macvlan bridge``, ``ipvlan l2/private``, as ``NetworkConfig.mode`` words it."""
        if self.kind == "macvlan":
            return f"macvlan {self.macvlan_mode or 'in another mode'}"
        return f"ipvlan {self.ipvlan_mode or '?'}/{self.ipvlan_flag or '?'}"

    def __str__(self) -> str:
        return f"{self.who} ({self.mode}{', ' + self.note if self.note else ''})"


def network_user(config: NetworkConfig) -> ParentUser:
    if config.kind == "macvlan":
        return ParentUser(f"network {config.network_id[:12]}", "macvlan", config.macvlan_mode)
    return ParentUser(
        f"network {config.network_id[:12]}",
        "ipvlan",
        ipvlan_mode=config.ipvlan_mode,
        ipvlan_flag=config.ipvlan_flag,
    )


def link_user(link: LinkInfo, note: str = "") -> ParentUser | None:
    """The link as a user of its parent; None for kinds the rule does not concern (VLAN links)."""
    if link.kind == "macvlan":
        return ParentUser(f"link {link.name}", "macvlan", link.macvlan_mode, note=note)
    if link.kind == "ipvlan":
        return ParentUser(
            f"link {link.name}",
            "ipvlan",
            ipvlan_mode=link.ipvlan_mode,
            ipvlan_flag=link.ipvlan_flag,
            note=note,
        )
    return None


def check_sharing(parent: str, new: ParentUser, others: Iterable[ParentUser]) -> None:
    """Raise ``ParentBusy`` naming ``new`` and the first of ``others`` it cannot share with."""
    for other in others:
        _check_pair(parent, new, other)


def _check_pair(parent: str, new: ParentUser, other: ParentUser) -> None:
    refused = f"{new} cannot use parent {parent}"
    if new.kind != other.kind:
        raise ParentBusy(
            f"{refused}: it already has {other}, and macvlan and ipvlan cannot share a parent "
            "(the kernel gives it to one of them); use another parent or VLAN"
        )
    if new.kind == "macvlan":
        if new.macvlan_mode == "passthru":
            raise ParentBusy(
                f"{refused}: macvlan_mode passthru needs the parent for itself, but it already "
                f"has {other}"
            )
        if other.macvlan_mode == "passthru":
            raise ParentBusy(f"{refused}: it is taken by {other}, which allows no other link on it")
        return
    if (new.ipvlan_mode, new.ipvlan_flag) != (other.ipvlan_mode, other.ipvlan_flag):
        raise ParentBusy(
            f"{refused}: it already has {other}; ipvlan users of one parent must have the same "
            "ipvlan_mode and ipvlan_flag (the kernel keeps one per parent and would switch the "
            "others to the new one)"
        )
