"""The link layer: every netlink call pymacvlan makes, behind small verbs.

The only module of the project that imports pyroute2.

Rules this module keeps:

* One ``pyroute2.AsyncIPRoute(ext_ack=True)`` per ``LinkLayer``, created inside the running event
  loop (``LinkLayer.open``). It works in the network namespace its socket was opened in: the
  daemon's own. Nothing here ever calls setns(); a thread that changed namespace would take every
  later call of the process with it.
* Check first what the kernel would refuse with an errno that does not say why: names, MTU, VLAN
  id, MAC address, that the parent exists and is Ethernet, and the kernel's macvlan / ipvlan /
  passthru rules against the parent's children we can see. The kernel keeps the last word, because
  children moved into containers are invisible from here.
* Every ``NetlinkError`` is translated once, in ``_translate``: errno + action → a
  ``driver.errors`` class and a message naming the action, the link and its parent.
* Policy is the driver's: which links are ours, when one may be deleted. This module reports kind,
  parent and alias so that the driver can decide, and acts only on the link it is named.
* pyroute2 is untyped: ``Any`` stays inside this module; callers get ``LinkInfo`` and ``ipaddress``
  values.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

from pyroute2 import AsyncIPRoute
from pyroute2.netlink import nla
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from driver.errors import (
    AddressInUse,
    DriverError,
    InvalidOption,
    KindNotSupported,
    LinkError,
    LinkExists,
    LinkNotFound,
    ParentBusy,
    ParentNotFound,
)
from driver.linkinfo import (
    IPVLAN_FLAGS,
    IPVLAN_MODES,
    MACVLAN_MODES,
    STACKED_KINDS,
    IpvlanFlag,
    IpvlanMode,
    LinkInfo,
    MacvlanMode,
    check_alias,
    check_link_name,
    check_mtu,
    check_vlan_id,
    normalize_mac,
)

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class _IpvlanInfoData(nla):  # type: ignore[misc]  # pyroute2 is untyped
    """IFLA_INFO_DATA of kind "ipvlan", all of it (include/uapi/linux/if_link.h).

    pyroute2 0.9.7's own class (netlink/rtnl/ifinfmsg/plugins/ipvlan.py) stops at IFLA_IPVLAN_MODE,
    and its request filter only sends the attributes the kind's class lists: ``ipvlan_flags=`` was
    dropped without a word and every ipvlan link came out with the bridge flag. This class is a
    fresh ``nla`` rather than a subclass of pyroute2's because pyroute2 caches the compiled
    attribute table in a class attribute, which a subclass would inherit once the parent class has
    been used.
    """

    prefix = "IFLA_"
    nla_map = (
        ("IFLA_IPVLAN_UNSPEC", "none"),
        ("IFLA_IPVLAN_MODE", "uint16"),  # enum ipvlan_mode: 0 l2, 1 l3, 2 l3s
        ("IFLA_IPVLAN_FLAGS", "uint16"),  # IPVLAN_F_PRIVATE 0x01, IPVLAN_F_VEPA 0x02; 0 is bridge
    )


# pyroute2's own hook for link kinds: its request filter (which keyword becomes which attribute) and
# its decoder both look the kind up in this one table, so ipvlan_flags= is now sent and read back.
ifinfmsg.ifinfo.register_link_kind(module={"ipvlan": _IpvlanInfoData})

_IPVLAN_MODE_NUMBERS: Final[dict[IpvlanMode, int]] = {"l2": 0, "l3": 1, "l3s": 2}
_IPVLAN_FLAG_NUMBERS: Final[dict[IpvlanFlag, int]] = {"bridge": 0, "private": 1, "vepa": 2}

_IFF_UP: Final = 0x1
_IFF_LOOPBACK: Final = 0x8
_ARPHRD_ETHER: Final = 1
_RT_SCOPE_LINK: Final = 253  # an on-link route: the destination is reached directly on the link
_RT_SCOPE_NOWHERE: Final = 255  # in a delete request: match a route of any scope
_RT_TABLE_MAIN: Final = 254

_SYSFS_NET: Final = Path("/sys/class/net")

# What the user must load when the kernel does not know a kind (it answers EOPNOTSUPP "Unknown
# device type" after its own request_module() failed).
_KIND_SUPPORT: Final[dict[str, str]] = {
    "macvlan": "macvlan support (module macvlan)",
    "ipvlan": "ipvlan support (module ipvlan)",
    "vlan": "802.1q VLAN support (module 8021q)",
    "dummy": "dummy interface support (module dummy)",
}
_KIND_MODULE: Final[dict[str, str]] = {
    "macvlan": "macvlan",
    "ipvlan": "ipvlan",
    "vlan": "8021q",
    "dummy": "dummy",
}

Verb = Literal[
    "read",
    "create",
    "delete",
    "set up",
    "set alias",
    "set mtu",
    "add address",
    "delete address",
    "add route",
    "delete route",
]
_PHRASES: Final[dict[Verb, str]] = {
    "read": "read",
    "create": "create",
    "delete": "delete",
    "set up": "bring up",
    "set alias": "set the alias of",
    "set mtu": "set the MTU of",
    "add address": "add address {what} to",
    "delete address": "delete address {what} from",
    "add route": "add the route to {what} via",
    "delete route": "delete the route to {what} via",
}


@dataclass(frozen=True, slots=True)
class _Op:
    """What was being done when the kernel said no: the context ``_translate`` words errors with."""

    verb: Verb
    name: str
    kind: str | None = None
    parent: str | None = None
    mode: str | None = None
    flag: str | None = None  # ipvlan only
    vlan_id: int | None = None
    mac: str | None = None
    what: str | None = None  # the address or route of an address/route verb

    @property
    def subject(self) -> str:
        link = f"{self.kind} link {self.name}" if self.kind else f"link {self.name}"
        if self.kind == "vlan" and self.vlan_id is not None:
            link = f"VLAN {self.vlan_id} link {self.name}"
        return f"{link} on parent {self.parent}" if self.parent else link

    @property
    def doing(self) -> str:
        return _PHRASES[self.verb].format(what=self.what) + " " + self.subject


def _errno_name(code: int) -> str:
    if code == errno.EOPNOTSUPP:  # Linux's ENOTSUP is the same number; the kernel says EOPNOTSUPP
        return "EOPNOTSUPP"
    return errno.errorcode.get(code, f"errno {code}")


def _kernel_message(err: NetlinkError) -> str | None:
    """The kernel's extended-ack text, or None (pyroute2 fills in strerror() when it has none)."""
    message = err.args[1] if len(err.args) > 1 else None
    if not message or message == os.strerror(err.code):
        return None
    return str(message)


def _translate(err: NetlinkError, op: _Op) -> LinkError:
    """The one place where a kernel errno becomes an error the user can act on."""
    code = int(err.code)
    kmsg = _kernel_message(err)
    detail = f"{_errno_name(code)}: {kmsg or os.strerror(code)}"
    facts: dict[str, Any] = {"errno": code, "kernel_message": kmsg}
    creating = op.verb == "create"

    if code in (errno.EPERM, errno.EACCES):
        return LinkError(
            f"cannot {op.doing}: {detail}; pymacvlan needs CAP_NET_ADMIN in this network namespace",
            **facts,
        )
    if code == errno.ENODEV:
        if creating and op.parent:
            return ParentNotFound(
                f"parent interface {op.parent} does not exist on this host", **facts
            )
        return LinkNotFound(f"cannot {op.doing}: link {op.name} does not exist", **facts)
    if code == errno.EEXIST and creating:
        if op.kind == "vlan" and kmsg and "vlan" in kmsg.lower():
            return LinkExists(
                f"cannot create VLAN link {op.name}: parent {op.parent} already has a link for "
                f"VLAN {op.vlan_id} ({kmsg})",
                **facts,
            )
        return LinkExists(f"a link named {op.name} already exists", **facts)
    if (
        code == errno.EOPNOTSUPP
        and creating
        and op.kind in _KIND_SUPPORT
        and (kmsg is None or "unknown device type" in kmsg.lower())
    ):
        return KindNotSupported(
            f"cannot create {op.kind} link {op.name}: this kernel has no {_KIND_SUPPORT[op.kind]}; "
            f"load it (modprobe {_KIND_MODULE[op.kind]}) or use a kernel that has it",
            **facts,
        )
    if code == errno.EBUSY and creating and op.kind in ("macvlan", "ipvlan"):
        other = "ipvlan" if op.kind == "macvlan" else "macvlan"
        return ParentBusy(
            f"cannot create {op.subject}: parent {op.parent} is already in use by {other} links "
            "(perhaps inside containers), a bridge or a bond; the kernel allows only one of them "
            "on a parent",
            **facts,
        )
    if code == errno.EINVAL and creating and op.kind == "macvlan" and kmsg is None:
        # The sizes and the parent's type were checked before asking; what is left for a bare
        # EINVAL is the passthru rule against children we could not see (inside containers).
        if op.mode == "passthru":
            return ParentBusy(
                f"cannot create passthru macvlan link {op.name}: parent {op.parent} already has "
                "macvlan links (perhaps inside containers); passthru mode needs the parent to "
                f"itself ({detail})",
                **facts,
            )
        return ParentBusy(
            f"cannot create {op.subject}: the kernel refused it ({detail}); the parent most likely "
            "has a passthru macvlan link (perhaps inside a container), which allows no other link "
            "on it",
            **facts,
        )
    if code == errno.EADDRINUSE and op.verb == "set up":
        where = f"on parent {op.parent}" if op.parent else "on its parent"
        return AddressInUse(
            f"cannot bring up {op.subject}: its MAC address {op.mac} is already used {where}, by "
            "another macvlan link (perhaps inside a container) or by the parent itself; give it "
            "another MAC address",
            **facts,
        )
    return LinkError(f"cannot {op.doing}: {detail}", **facts)


def _sysfs_wireless(name: str, index: int, mac: str | None) -> bool | None:
    """Whether ``name`` is a Wi-Fi interface, from sysfs; None when sysfs shows another link.

    /sys/class/net lists the links of the namespace that mounted /sys, not necessarily ours (a
    test's namespace, a daemon started with ``ip netns exec`` but without its /sys): trust an entry
    only when its ifindex and MAC address are those of the link netlink reported.
    """
    entry = _SYSFS_NET / name
    try:
        if int((entry / "ifindex").read_text()) != index:
            return None
        if mac is not None and (entry / "address").read_text().strip() != mac:
            return None
        # cfg80211 adds "phy80211" (and old wireless extensions "wireless") to a Wi-Fi netdev.
        return (entry / "phy80211").exists() or (entry / "wireless").exists()
    except (OSError, ValueError):
        return None


def _to_info(msg: Any, names: Mapping[int, str]) -> LinkInfo:
    """A pyroute2 RTM_NEWLINK message → LinkInfo; ``names`` maps index → name for the parent."""
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
        raw_mode = data_attr("IFLA_IPVLAN_MODE")
        if raw_mode is not None and 0 <= int(raw_mode) < len(IPVLAN_MODES):
            ipvlan_mode = IPVLAN_MODES[int(raw_mode)]
        raw_flags = data_attr("IFLA_IPVLAN_FLAGS")
        ipvlan_flag = next(
            (f for f, n in _IPVLAN_FLAG_NUMBERS.items() if n == (raw_flags or 0)), None
        )

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


def _check_siblings(op: _Op, siblings: list[LinkInfo]) -> None:
    """The kernel's rules on what may share a parent, against the siblings visible from here.

    The kernel gives a device one receive hook: macvlan or ipvlan (or a bridge, a bond), never two.
    A passthru macvlan takes the whole parent. The kernel answers EBUSY or a bare EINVAL to either;
    checked here, the user learns which links are in the way. ipvlan keeps its mode and flag per
    parent, not per link: a new link in another mode is accepted and silently switches its
    siblings (seen on 6.1), so that is refused too.
    """
    by_kind: dict[str | None, list[str]] = {}
    for link in siblings:
        by_kind.setdefault(link.kind, []).append(link.name)
    other = "ipvlan" if op.kind == "macvlan" else "macvlan"
    if op.kind in ("macvlan", "ipvlan") and other in by_kind:
        raise ParentBusy(
            f"parent {op.parent} already has {other} links ({', '.join(sorted(by_kind[other]))}); "
            "the kernel does not allow macvlan and ipvlan on one parent"
        )
    if op.kind == "ipvlan":
        wanted = f"{op.mode} {op.flag}"
        others = sorted(
            f"{s.name} ({s.ipvlan_mode} {s.ipvlan_flag})"
            for s in siblings
            if s.kind == "ipvlan" and f"{s.ipvlan_mode} {s.ipvlan_flag}" != wanted
        )
        if others:
            raise ParentBusy(
                f"parent {op.parent} already has ipvlan links in another mode: "
                f"{', '.join(others)}; the kernel keeps one ipvlan mode and flag per parent and "
                f"would silently switch them to {wanted}"
            )
    if op.kind != "macvlan":
        return
    passthru = sorted(s.name for s in siblings if s.macvlan_mode == "passthru")
    if passthru:
        raise ParentBusy(
            f"parent {op.parent} has the passthru macvlan link {passthru[0]}, which allows no "
            "other link on it"
        )
    if op.mode == "passthru" and "macvlan" in by_kind:
        raise ParentBusy(
            f"parent {op.parent} already has macvlan links "
            f"({', '.join(sorted(by_kind['macvlan']))}); passthru mode needs the parent to itself"
        )


def _parse_interface(cidr: str) -> IPInterface:
    try:
        return ipaddress.ip_interface(cidr)
    except ValueError:
        raise InvalidOption(f"{cidr!r} is not an address in CIDR form (192.0.2.10/24)") from None


def _parse_network(cidr: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(cidr)
    except ValueError as exc:
        raise InvalidOption(f"{cidr!r} is not a network in CIDR form: {exc}") from None


class LinkLayer:
    """Small verbs over one shared netlink socket. Build it with ``await LinkLayer.open()``.

    Safe to share between concurrent tasks of one event loop: pyroute2 matches answers to requests
    by sequence number. A check-then-create is not atomic against another writer; the driver
    serialises what must be.
    """

    def __init__(self, ipr: Any, netns: str | None) -> None:
        self._ipr = ipr
        self.netns = netns

    @classmethod
    async def open(cls, netns: str | None = None) -> LinkLayer:
        """Open the netlink socket; must run inside the event loop that will use it.

        ``netns`` (a name under /run/netns, or a path) is for tests. pyroute2 opens the socket in a
        short-lived forked child that enters the namespace, creates the socket and hands its
        descriptor back (SCM_RIGHTS); a netlink socket keeps the namespace it was created in, so
        this process never changes namespace. The daemon passes nothing and works in its own.
        """
        # flags=0: pyroute2's default (O_CREAT) would quietly create a namespace that is missing.
        ipr = AsyncIPRoute(ext_ack=True, netns=netns, flags=0)
        try:
            await ipr.setup_endpoint()  # the socket opens lazily: fail here, not on first use
        except OSError as exc:
            ipr.close()
            where = f"network namespace {netns}" if netns else "this network namespace"
            raise LinkError(f"cannot open a netlink socket in {where}: {exc}") from exc
        return cls(ipr, netns)

    def close(self) -> None:
        self._ipr.close()

    async def __aenter__(self) -> LinkLayer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------------

    async def get_link(self, name: str) -> LinkInfo | None:
        """The link called ``name`` in this namespace, or None."""
        check_link_name(name)
        msg = await self._get_message(_Op("read", name), ifname=name)
        if msg is None:
            return None
        names: dict[int, str] = {}
        parent = msg.get_attr("IFLA_LINK")
        if parent and msg.get_attr("IFLA_LINK_NETNSID") is None:
            parent_msg = await self._get_message(_Op("read", f"#{parent}"), index=parent)
            if parent_msg is not None:
                names[int(parent)] = str(parent_msg.get_attr("IFLA_IFNAME"))
        return _to_info(msg, names)

    async def list_links(self) -> list[LinkInfo]:
        """Every link in this namespace (one dump)."""
        try:
            msgs = [msg async for msg in await self._ipr.link("dump")]
        except NetlinkError as err:
            raise _translate(err, _Op("read", "(all links)")) from err
        names = {int(m["index"]): str(m.get_attr("IFLA_IFNAME")) for m in msgs}
        return [_to_info(m, names) for m in msgs]

    async def list_children(self, parent_index: int) -> list[LinkInfo]:
        """The macvlan, ipvlan and VLAN links (and their tap variants) stacked on a parent.

        Only those in this namespace: a child moved into a container is not listed, although the
        kernel still counts it.
        """
        return [
            link
            for link in await self.list_links()
            if link.parent_index == parent_index
            and link.parent_netnsid is None
            and link.kind in STACKED_KINDS
        ]

    # -- creating and deleting links -------------------------------------------------------------

    async def create_macvlan(
        self,
        name: str,
        parent: str,
        mode: MacvlanMode = "bridge",
        *,
        mtu: int | None = None,
        mac: str | None = None,
        alias: str | None = None,
    ) -> LinkInfo:
        """Create a macvlan link on ``parent``, down; returns it as the kernel reports it.

        Without ``mtu`` it gets the parent's; without ``mac`` the kernel picks a random one. A MAC
        address already used on the parent is accepted here and refused by ``set_up``: that is
        when the kernel checks it.
        """
        if mode not in MACVLAN_MODES:
            raise InvalidOption(
                f"unknown macvlan mode {mode!r}: use one of {', '.join(MACVLAN_MODES)}"
            )
        mac = normalize_mac(mac) if mac is not None else None
        op = _Op("create", name, kind="macvlan", parent=parent, mode=mode, mac=mac)
        lower = await self._usable_parent(op, mtu, alias)
        _check_siblings(op, await self.list_children(lower.index))
        request: dict[str, Any] = {"link": lower.index, "macvlan_mode": mode}
        if mac is not None:
            request["address"] = mac
        return await self._create(op, request, mtu, alias)

    async def create_ipvlan(
        self,
        name: str,
        parent: str,
        mode: IpvlanMode = "l2",
        flag: IpvlanFlag = "bridge",
        *,
        mtu: int | None = None,
        alias: str | None = None,
    ) -> LinkInfo:
        """Create an ipvlan link on ``parent``, down. It shares the parent's MAC address."""
        if mode not in IPVLAN_MODES:
            raise InvalidOption(
                f"unknown ipvlan mode {mode!r}: use one of {', '.join(IPVLAN_MODES)}"
            )
        if flag not in IPVLAN_FLAGS:
            raise InvalidOption(
                f"unknown ipvlan flag {flag!r}: use one of {', '.join(IPVLAN_FLAGS)}"
            )
        op = _Op("create", name, kind="ipvlan", parent=parent, mode=mode, flag=flag)
        lower = await self._usable_parent(op, mtu, alias)
        _check_siblings(op, await self.list_children(lower.index))
        request: dict[str, Any] = {
            "link": lower.index,
            "ipvlan_mode": _IPVLAN_MODE_NUMBERS[mode],
            "ipvlan_flags": _IPVLAN_FLAG_NUMBERS[flag],  # sent thanks to _IpvlanInfoData above
        }
        return await self._create(op, request, mtu, alias)

    async def create_vlan(
        self,
        name: str,
        parent: str,
        vlan_id: int,
        *,
        mtu: int | None = None,
        alias: str | None = None,
    ) -> LinkInfo:
        """Create an 802.1q link for ``vlan_id`` on ``parent``, down."""
        check_vlan_id(vlan_id)
        op = _Op("create", name, kind="vlan", parent=parent, vlan_id=vlan_id)
        lower = await self._usable_parent(op, mtu, alias)
        for sibling in await self.list_children(lower.index):
            if sibling.kind == "vlan" and sibling.vlan_id == vlan_id:
                raise LinkExists(
                    f"cannot create VLAN link {name}: parent {parent} already has VLAN {vlan_id} "
                    f"as link {sibling.name}"
                )
        return await self._create(op, {"link": lower.index, "vlan_id": vlan_id}, mtu, alias)

    async def create_dummy(self, name: str, *, alias: str | None = None) -> LinkInfo:
        """Create a dummy link, down: the parent of a network that names none."""
        check_link_name(name)
        if alias is not None:
            check_alias(alias)
        return await self._create(_Op("create", name, kind="dummy"), {}, None, alias)

    async def delete_link(self, name: str) -> bool:
        """Delete a link; False if it was already gone (so delete paths can repeat safely).

        Deleting a parent deletes every link stacked on it, in this namespace or any other.
        """
        check_link_name(name)
        try:
            await self._ipr.link("del", ifname=name)
        except NetlinkError as err:
            if err.code == errno.ENODEV:
                return False
            raise _translate(err, _Op("delete", name)) from err
        return True

    # -- changing links --------------------------------------------------------------------------

    async def set_up(self, name: str) -> None:
        check_link_name(name)
        try:
            await self._ipr.link("set", ifname=name, state="up")
        except NetlinkError as err:
            op = _Op("set up", name)
            if err.code == errno.EADDRINUSE:  # say which MAC and which parent
                link = await self.get_link(name)
                if link is not None:
                    op = replace(op, kind=link.kind, parent=link.parent_name, mac=link.mac)
            raise _translate(err, op) from err

    async def set_alias(self, name: str, alias: str | None) -> None:
        """Set (or with None, remove) the link's alias: the plugin's ownership marker."""
        check_link_name(name)
        if alias is not None:
            check_alias(alias)
        try:
            # The kernel removes the alias when given an empty one.
            await self._ipr.link("set", ifname=name, ifalias=alias or "")
        except NetlinkError as err:
            raise _translate(err, _Op("set alias", name)) from err

    async def set_mtu(self, name: str, mtu: int) -> None:
        check_link_name(name)
        check_mtu(mtu)
        link = await self.get_link(name)
        if link is None:
            raise LinkNotFound(f"cannot set the MTU of link {name}: link {name} does not exist")
        if link.kind in STACKED_KINDS and link.parent_name is not None:
            parent = await self.get_link(link.parent_name)
            if parent is not None and mtu > parent.mtu:
                raise InvalidOption(
                    f"MTU {mtu} for {link.kind} link {name} is larger than the MTU of its parent "
                    f"{parent.name} ({parent.mtu}); a {link.kind} link's MTU may not exceed its "
                    "parent's"
                )
        try:
            await self._ipr.link("set", index=link.index, mtu=mtu)
        except NetlinkError as err:
            raise _translate(err, _Op("set mtu", name, kind=link.kind)) from err

    # -- addresses and routes (the host's shim link) ---------------------------------------------

    async def add_address(self, name: str, cidr: str) -> bool:
        """Add ``cidr`` (``192.0.2.10/24``) to a link; False if it already had it."""
        iface = _parse_interface(cidr)
        op = _Op("add address", name, what=str(iface))
        index = await self._index(name, op)
        try:
            await self._ipr.addr(
                "add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen
            )
        except NetlinkError as err:
            if err.code == errno.EEXIST:
                return False
            raise _translate(err, op) from err
        return True

    async def del_address(self, name: str, cidr: str) -> bool:
        """Remove ``cidr`` from a link; False if it did not have it."""
        iface = _parse_interface(cidr)
        op = _Op("delete address", name, what=str(iface))
        index = await self._index(name, op)
        try:
            await self._ipr.addr(
                "del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen
            )
        except NetlinkError as err:
            if err.code == errno.EADDRNOTAVAIL:
                return False
            raise _translate(err, op) from err
        return True

    async def list_addresses(self, name: str) -> list[IPInterface]:
        """The link's addresses, IPv4 and IPv6 (link-local ones included)."""
        index = await self._index(name, _Op("read", name))
        try:
            msgs = [msg async for msg in await self._ipr.addr("dump", index=index)]
        except NetlinkError as err:
            raise _translate(err, _Op("read", name)) from err
        return [
            ipaddress.ip_interface(f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}")
            for m in msgs
            if int(m["index"]) == index
        ]

    async def add_route(self, dst: str, dev: str) -> bool:
        """Add an on-link route to ``dst`` (``198.51.100.64/26``) via ``dev``; False if present."""
        network = _parse_network(dst)
        op = _Op("add route", dev, what=str(network))
        index = await self._index(dev, op)
        request: dict[str, Any] = {"dst": str(network), "oif": index, "table": _RT_TABLE_MAIN}
        if network.version == 4:
            request["scope"] = (
                _RT_SCOPE_LINK  # as `ip route add X dev Y` does for a route w/o gateway
            )
        try:
            await self._ipr.route("add", **request)
        except NetlinkError as err:
            if err.code == errno.EEXIST:
                return False
            raise _translate(err, op) from err
        return True

    async def del_route(self, dst: str, dev: str) -> bool:
        """Delete the route to ``dst`` via ``dev``; False if there was none."""
        network = _parse_network(dst)
        op = _Op("delete route", dev, what=str(network))
        index = await self._index(dev, op)
        request: dict[str, Any] = {"dst": str(network), "oif": index, "table": _RT_TABLE_MAIN}
        if network.version == 4:
            # IPv4 matches the scope of a delete request exactly, and pyroute2 sends "universe"
            # unless told: "nowhere" is the kernel's wildcard, as `ip route del` sends.
            request["scope"] = _RT_SCOPE_NOWHERE
        try:
            await self._ipr.route("del", **request)
        except NetlinkError as err:
            if err.code == errno.ESRCH:
                return False
            raise _translate(err, op) from err
        return True

    async def list_routes(self, dev: str) -> list[IPNetwork]:
        """Destinations of the main table's routes via ``dev``, IPv4 and IPv6."""
        index = await self._index(dev, _Op("read", dev))
        try:
            msgs = [msg async for msg in await self._ipr.route("dump", table=_RT_TABLE_MAIN)]
        except NetlinkError as err:
            raise _translate(err, _Op("read", dev)) from err
        routes: list[IPNetwork] = []
        for m in msgs:
            table = m.get_attr("RTA_TABLE") or m["table"]
            if m.get_attr("RTA_OIF") != index or table != _RT_TABLE_MAIN:
                continue
            dst = m.get_attr("RTA_DST") or ("0.0.0.0" if m["family"] == 2 else "::")
            routes.append(ipaddress.ip_network(f"{dst}/{m['dst_len']}"))
        return routes

    # -- helpers ---------------------------------------------------------------------------------

    async def _get_message(self, op: _Op, **key: Any) -> Any:
        try:
            msgs = await self._ipr.link("get", **key)
        except NetlinkError as err:
            if err.code == errno.ENODEV:
                return None
            raise _translate(err, op) from err
        return msgs[0] if msgs else None

    async def _index(self, name: str, op: _Op) -> int:
        check_link_name(name)
        msg = await self._get_message(op, ifname=name)
        if msg is None:
            raise LinkNotFound(f"cannot {op.doing}: link {name} does not exist")
        return int(msg["index"])

    async def _usable_parent(self, op: _Op, mtu: int | None, alias: str | None) -> LinkInfo:
        """Check everything about a stacked link that does not need the kernel's opinion."""
        assert op.parent is not None
        check_link_name(op.name)
        if mtu is not None:
            check_mtu(mtu)
        if alias is not None:
            check_alias(alias)
        lower = await self.get_link(op.parent)
        if lower is None:
            raise ParentNotFound(f"parent interface {op.parent} does not exist on this host")
        if lower.loopback or not lower.ethernet:
            what = "the loopback device" if lower.loopback else "not an Ethernet device"
            raise InvalidOption(
                f"parent interface {op.parent} is {what}; {op.kind} links need an Ethernet parent"
            )
        if mtu is not None and mtu > lower.mtu:
            raise InvalidOption(
                f"MTU {mtu} for {op.kind} link {op.name} is larger than the MTU of its parent "
                f"{op.parent} ({lower.mtu}); raise the parent's MTU first or ask for at most "
                f"{lower.mtu}"
            )
        return lower

    async def _create(
        self, op: _Op, request: dict[str, Any], mtu: int | None, alias: str | None
    ) -> LinkInfo:
        assert op.kind is not None
        if mtu is not None:
            request["mtu"] = mtu
        try:
            await self._ipr.link("add", ifname=op.name, kind=op.kind, **request)
        except NetlinkError as err:
            raise _translate(err, op) from err
        if alias:
            # The kernel ignores IFLA_IFALIAS in a create request, so the marker is a second step.
            try:
                await self.set_alias(op.name, alias)
            except DriverError:
                # Without its marker the link would pass for somebody else's and never be cleaned
                # up: remove it (we just created it) and report the failure.
                await self.delete_link(op.name)
                raise
        link = await self.get_link(op.name)
        if link is None:
            raise LinkNotFound(f"{op.subject} disappeared right after it was created")
        return link
