"""ipvlan's IFLA_INFO_DATA as the kernel defines it, registered with pyroute2; and the numbers.

pyroute2 0.9.7's own class (netlink/rtnl/ifinfmsg/plugins/ipvlan.py) stops at IFLA_IPVLAN_MODE, and
its request filter only sends the attributes the kind's class lists: ``ipvlan_flags=`` was dropped
without a word and every ipvlan link came out with the bridge flag. Importing this module replaces
that class in pyroute2's table of link kinds, which both its request filter (which keyword becomes
which attribute) and its decoder consult, so the flag is sent and read back.
"""

from __future__ import annotations

from typing import Final

from pyroute2.netlink import nla
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from driver.linkinfo import IPVLAN_MODES, IpvlanFlag, IpvlanMode

# include/uapi/linux/if_link.h: enum ipvlan_mode, and the IPVLAN_F_* bits (none set is bridge).
MODE_NUMBERS: Final[dict[IpvlanMode, int]] = {mode: n for n, mode in enumerate(IPVLAN_MODES)}
FLAG_NUMBERS: Final[dict[IpvlanFlag, int]] = {"bridge": 0, "private": 1, "vepa": 2}


class IpvlanInfoData(nla):  # type: ignore[misc]  # pyroute2 is untyped
    """IFLA_INFO_DATA of kind "ipvlan", all of it.

    A fresh ``nla`` rather than a subclass of pyroute2's: pyroute2 caches the compiled attribute
    table in a class attribute, which a subclass would inherit once the parent class has been used.
    """

    prefix = "IFLA_"
    nla_map = (
        ("IFLA_IPVLAN_UNSPEC", "none"),
        ("IFLA_IPVLAN_MODE", "uint16"),  # enum ipvlan_mode: 0 l2, 1 l3, 2 l3s
        ("IFLA_IPVLAN_FLAGS", "uint16"),  # IPVLAN_F_PRIVATE 0x01, IPVLAN_F_VEPA 0x02; 0 is bridge
    )


ifinfmsg.ifinfo.register_link_kind(module={"ipvlan": IpvlanInfoData})


def mode_of(number: int | None) -> IpvlanMode | None:
    """IFLA_IPVLAN_MODE → "l2", "l3", "l3s"; None for a mode this code does not know."""
    if number is None or not 0 <= int(number) < len(IPVLAN_MODES):
        return None
    return IPVLAN_MODES[int(number)]


def flag_of(number: int | None) -> IpvlanFlag | None:
    """IFLA_IPVLAN_FLAGS → "bridge", "private", "vepa"; absent (kernels before 4.15): bridge."""
    return next((f for f, n in FLAG_NUMBERS.items() if n == (number or 0)), None)
