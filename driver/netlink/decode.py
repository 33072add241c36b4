"""pyroute2's RTM_NEWLINK messages → ``LinkInfo``: the one place that reads a link's attributes.

pyroute2 is untyped: ``Any`` stays in this module; the rest of the driver sees ``LinkInfo``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

from driver.linkinfo import MACVLAN_MODES, IpvlanFlag, IpvlanMode, LinkInfo, MacvlanMode
from driver.netlink.ipvlan import flag_of, mode_of

_IFF_UP: Final = 0x1  # include/uapi/linux/if.h
_IFF_LOOPBACK: Final = 0x8
_ARPHRD_ETHER: Final = 1  # include/uapi/linux/if_arp.h

_SYSFS_NET: Final = "/sys/class/net"


def _sysfs_wireless(name: str, index: int, mac: str | None) -> bool | None:
    """Whether ``name`` is a Wi-Fi interface, from sysfs; None when sysfs shows another link.

    /sys/class/net lists the links of the namespace that mounted /sys, not necessarily ours (a
    test's namespace, a daemon started with ``ip netns exec`` but without its /sys): trust an entry
    only when its ifindex and MAC address are those of the link netlink reported.
    """
    # Plain strings, not pathlib: pathlib interns every part of a path, and every container
    # brings a link name of its own, read here once.
    entry = os.path.join(_SYSFS_NET, name)
    try:
        if int(_read(os.path.join(entry, "ifindex"))) != index:
            return None
        if mac is not None and _read(os.path.join(entry, "address")).strip() != mac:
            return None
        # cfg80211 adds "phy80211" (and old wireless extensions "wireless") to a Wi-Fi netdev.
        return any(os.path.exists(os.path.join(entry, n)) for n in ("phy80211", "wireless"))
    except (OSError, ValueError):
        return None


def _read(path: str) -> str:
    with open(path, encoding="ascii", errors="replace") as file:
        return file.read()


def to_info(msg: Any, names: Mapping[int, str]) -> LinkInfo:
    """A pyroute2 RTM_NEWLINK message → LinkInfo; ``names`` maps index → name for the parent.

    A parent in another namespace (IFLA_LINK_NETNSID set: a link moved into a container) has an
    index that means nothing here, so it gets no name.
    """
    index = int(msg["index"])
    name = str(msg.get_attr("IFLA_IFNAME"))
    linkinfo = msg.get_attr("IFLA_LINKINFO")
    kind = linkinfo.get_attr("IFLA_INFO_KIND") if linkinfo is not None else None
    data = linkinfo.get_attr("IFLA_INFO_DATA") if linkinfo is not None else None
    if not hasattr(data, "get_attr"):  # kinds pyroute2 has no class for decode to a hex string
        data = None

    def data_attr(attr: str) -> Any:
        return data.get_attr(attr) if data is not None else None

    parent_index = msg.get_attr("IFLA_LINK")
    parent_netnsid = msg.get_attr("IFLA_LINK_NETNSID")
    parent_name = None
    if parent_index and parent_netnsid is None:
        parent_name = names.get(int(parent_index))
    master = msg.get_attr("IFLA_MASTER")
    mac = msg.get_attr("IFLA_ADDRESS")
    flags = int(msg["flags"])
    link_type = int(msg["ifi_type"])

    macvlan_mode: MacvlanMode | None = None
    vlan_id: int | None = None
    ipvlan_mode: IpvlanMode | None = None
    ipvlan_flag: IpvlanFlag | None = None
    if kind == "macvlan":
        raw_mode = data_attr("IFLA_MACVLAN_MODE")  # pyroute2 decodes it to "bridge", "vepa", ...
        macvlan_mode = next((m for m in MACVLAN_MODES if m == raw_mode), None)  # None: "source"
    elif kind == "vlan":
        raw_id = data_attr("IFLA_VLAN_ID")
        vlan_id = int(raw_id) if raw_id is not None else None
    elif kind == "ipvlan":
        ipvlan_mode = mode_of(data_attr("IFLA_IPVLAN_MODE"))
        ipvlan_flag = flag_of(data_attr("IFLA_IPVLAN_FLAGS"))

    return LinkInfo(
        index=index,
        name=name,
        kind=str(kind) if kind is not None else None,
        parent_index=int(parent_index) if parent_index else None,
        parent_name=parent_name,
        parent_netnsid=int(parent_netnsid) if parent_netnsid is not None else None,
        master_index=int(master) if master else None,
        mtu=int(msg.get_attr("IFLA_MTU")),
        up=bool(flags & _IFF_UP),
        oper_state=str(msg.get_attr("IFLA_OPERSTATE") or "unknown").lower(),
        carrier=bool(msg.get_attr("IFLA_CARRIER")),
        mac=str(mac) if mac is not None else None,
        alias=msg.get_attr("IFLA_IFALIAS") or None,
        ethernet=link_type == _ARPHRD_ETHER,
        loopback=bool(flags & _IFF_LOOPBACK),
        wireless=_sysfs_wireless(name, index, str(mac) if mac is not None else None),
        vlan_id=vlan_id,
        macvlan_mode=macvlan_mode,
        ipvlan_mode=ipvlan_mode,
        ipvlan_flag=ipvlan_flag,
    )
