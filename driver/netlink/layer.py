"""The link layer's verbs: read, create, change and delete links, addresses and routes.

Each verb checks first what the kernel would refuse with an errno that does not say why (names,
MTU, VLAN id, MAC address, that the parent exists and is Ethernet), sends one request, and
translates a refusal once (``translate``). Policy is the driver's: which links are ours, which
links may share a parent (``driver.sharing``), when one may be deleted. These verbs report kind,
parent, modes and alias so that the driver can decide, and act only on the link they are named.
The kernel keeps the last word, and its EBUSY or bare EINVAL comes back worded.
"""

from __future__ import annotations

import errno
import ipaddress
from dataclasses import replace
from types import TracebackType
from typing import Any, Final

from pyroute2.netlink.exceptions import NetlinkError

from driver.errors import (
    DriverError,
    InvalidOption,
    LinkError,
    LinkExists,
    LinkNotFound,
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
from driver.netlink import ipvlan
from driver.netlink.channel import Channel
from driver.netlink.decode import to_info
from driver.netlink.events import LinkEvents
from driver.netlink.translate import Op, translate

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_RT_SCOPE_LINK: Final = 253  # an on-link route: the destination is reached directly on the link
_RT_SCOPE_NOWHERE: Final = 255  # in a delete request: match a route of any scope
_RT_TABLE_MAIN: Final = 254


class LinkLayer:
    """Small verbs over one shared netlink socket. Build it with ``await LinkLayer.open()``.

    Safe to share between concurrent tasks of one event loop: pyroute2 matches answers to requests
    by sequence number. A check-then-create is not atomic against another writer; the driver
    serialises what must be.
    """

    def __init__(self, channel: Channel, netns: str | None) -> None:
        self._nl = channel
        self.netns = netns

    @classmethod
    async def open(cls, netns: str | None = None) -> LinkLayer:
        """Open the netlink socket; must run inside the event loop that will use it.

        It works in the network namespace it was opened in: the daemon's own (``netns`` None).
        ``netns`` (a name under /run/netns, or a path) is for tests; this process never changes
        namespace (a thread that called setns() would take every later call with it).
        """
        try:
            channel = await Channel.open(netns)
        except OSError as exc:
            where = f"network namespace {netns}" if netns else "this network namespace"
            raise LinkError(f"cannot open a netlink socket in {where}: {exc}") from exc
        return cls(channel, netns)

    def close(self) -> None:
        self._nl.close()

    async def subscribe(self) -> LinkEvents:
        """The link changes of this layer's namespace, on a socket of their own
        (``driver.netlink.events``)."""
        return await LinkEvents.open(self.netns)

    def queued_messages(self) -> dict[int, int]:
        """Messages the netlink library holds, by sequence number: for diagnostics and tests."""
        return self._nl.queued()

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
        msg = await self._get_message(Op("read", name), ifname=name)
        if msg is None:
            return None
        names: dict[int, str] = {}
        parent = msg.get_attr("IFLA_LINK")
        if parent and msg.get_attr("IFLA_LINK_NETNSID") is None:
            parent_msg = await self._get_message(Op("read", f"#{parent}"), index=parent)
            if parent_msg is not None:
                names[int(parent)] = str(parent_msg.get_attr("IFLA_IFNAME"))
        return to_info(msg, names)

    async def list_links(self) -> list[LinkInfo]:
        """Every link in this namespace (one dump)."""
        try:
            msgs = await self._nl.dump("link")
        except NetlinkError as err:
            raise translate(err, Op("read", "(all links)")) from err
        names = {int(m["index"]): str(m.get_attr("IFLA_IFNAME")) for m in msgs}
        return [to_info(m, names) for m in msgs]

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
        op = Op("create", name, kind="macvlan", parent=parent, mode=mode, mac=mac)
        lower = await self._usable_parent(op, mtu, alias)
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
        """Create an ipvlan link on ``parent``, down. It shares the parent's MAC address.

        The kernel keeps one ipvlan mode and flag per parent: a link in another mode is accepted
        and switches its siblings (seen on 6.1). ``driver.sharing`` decides whether that may
        happen; this verb does as it is told.
        """
        if mode not in IPVLAN_MODES:
            raise InvalidOption(
                f"unknown ipvlan mode {mode!r}: use one of {', '.join(IPVLAN_MODES)}"
            )
        if flag not in IPVLAN_FLAGS:
            raise InvalidOption(
                f"unknown ipvlan flag {flag!r}: use one of {', '.join(IPVLAN_FLAGS)}"
            )
        op = Op("create", name, kind="ipvlan", parent=parent, mode=mode)
        lower = await self._usable_parent(op, mtu, alias)
        request: dict[str, Any] = {
            "link": lower.index,
            "ipvlan_mode": ipvlan.MODE_NUMBERS[mode],
            "ipvlan_flags": ipvlan.FLAG_NUMBERS[flag],  # sent thanks to driver.netlink.ipvlan
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
        op = Op("create", name, kind="vlan", parent=parent, vlan_id=vlan_id)
        lower = await self._usable_parent(op, mtu, alias)
        # The kernel's EEXIST would not say which link already has the VLAN.
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
        return await self._create(Op("create", name, kind="dummy"), {}, None, alias)

    async def delete_link(self, name: str) -> bool:
        """Delete a link; False if it was already gone (so delete paths can repeat safely).

        Deleting a parent deletes every link stacked on it, in this namespace or any other.
        """
        check_link_name(name)
        try:
            await self._nl.change("link", "del", ifname=name)
        except NetlinkError as err:
            if err.code == errno.ENODEV:
                return False
            raise translate(err, Op("delete", name)) from err
        return True

    # -- changing links --------------------------------------------------------------------------

    async def set_up(self, name: str) -> None:
        check_link_name(name)
        try:
            await self._nl.change("link", "set", ifname=name, state="up")
        except NetlinkError as err:
            op = Op("set up", name)
            if err.code == errno.EADDRINUSE:  # say which MAC and which parent
                link = await self.get_link(name)
                if link is not None:
                    op = replace(op, kind=link.kind, parent=link.parent_name, mac=link.mac)
            raise translate(err, op) from err

    async def set_alias(self, name: str, alias: str | None) -> None:
        """Set (or with None, remove) the link's alias: the plugin's ownership marker."""
        check_link_name(name)
        if alias is not None:
            check_alias(alias)
        try:
            # The kernel removes the alias when given an empty one.
            await self._nl.change("link", "set", ifname=name, ifalias=alias or "")
        except NetlinkError as err:
            raise translate(err, Op("set alias", name)) from err

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
            await self._nl.change("link", "set", index=link.index, mtu=mtu)
        except NetlinkError as err:
            raise translate(err, Op("set mtu", name, kind=link.kind)) from err

    # -- addresses and routes (the host's shim link) ---------------------------------------------

    async def add_address(self, name: str, cidr: str) -> bool:
        """Add ``cidr`` (``192.0.2.10/24``) to a link; False if it already had it."""
        iface = _parse_interface(cidr)
        op = Op("add address", name, what=str(iface))
        index = await self._index(name, op)
        try:
            await self._nl.change(
                "addr", "add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen
            )
        except NetlinkError as err:
            if err.code == errno.EEXIST:
                return False
            raise translate(err, op) from err
        return True

    async def del_address(self, name: str, cidr: str) -> bool:
        """Remove ``cidr`` from a link; False if it did not have it."""
        iface = _parse_interface(cidr)
        op = Op("delete address", name, what=str(iface))
        index = await self._index(name, op)
        try:
            await self._nl.change(
                "addr", "del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen
            )
        except NetlinkError as err:
            if err.code == errno.EADDRNOTAVAIL:
                return False
            raise translate(err, op) from err
        return True

    async def list_addresses(self, name: str) -> list[IPInterface]:
        """The link's addresses, IPv4 and IPv6 (link-local ones included)."""
        index = await self._index(name, Op("read", name))
        try:
            msgs = await self._nl.dump("addr", index=index)
        except NetlinkError as err:
            raise translate(err, Op("read", name)) from err
        return [
            ipaddress.ip_interface(f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}")
            for m in msgs
            if int(m["index"]) == index
        ]

    async def add_route(self, dst: str, dev: str) -> bool:
        """Add an on-link route to ``dst`` (``198.51.100.64/26``) via ``dev``; False if present."""
        network = _parse_network(dst)
        op = Op("add route", dev, what=str(network))
        index = await self._index(dev, op)
        request: dict[str, Any] = {"dst": str(network), "oif": index, "table": _RT_TABLE_MAIN}
        if network.version == 4:
            request["scope"] = (
                _RT_SCOPE_LINK  # as `ip route add X dev Y` does for a route w/o gateway
            )
        try:
            await self._nl.change("route", "add", **request)
        except NetlinkError as err:
            if err.code == errno.EEXIST:
                return False
            raise translate(err, op) from err
        return True

    async def del_route(self, dst: str, dev: str) -> bool:
        """Delete the route to ``dst`` via ``dev``; False if there was none."""
        network = _parse_network(dst)
        op = Op("delete route", dev, what=str(network))
        index = await self._index(dev, op)
        request: dict[str, Any] = {"dst": str(network), "oif": index, "table": _RT_TABLE_MAIN}
        if network.version == 4:
            # IPv4 matches the scope of a delete request exactly, and pyroute2 sends "universe"
            # unless told: "nowhere" is the kernel's wildcard, as `ip route del` sends.
            request["scope"] = _RT_SCOPE_NOWHERE
        try:
            await self._nl.change("route", "del", **request)
        except NetlinkError as err:
            if err.code == errno.ESRCH:
                return False
            raise translate(err, op) from err
        return True

    async def list_routes(self, dev: str) -> list[IPNetwork]:
        """Destinations of the main table's routes via ``dev``, IPv4 and IPv6."""
        index = await self._index(dev, Op("read", dev))
        try:
            msgs = await self._nl.dump("route", table=_RT_TABLE_MAIN)
        except NetlinkError as err:
            raise translate(err, Op("read", dev)) from err
        routes: list[IPNetwork] = []
        for m in msgs:
            table = m.get_attr("RTA_TABLE") or m["table"]
            if m.get_attr("RTA_OIF") != index or table != _RT_TABLE_MAIN:
                continue
            dst = m.get_attr("RTA_DST") or ("0.0.0.0" if m["family"] == 2 else "::")
            routes.append(ipaddress.ip_network(f"{dst}/{m['dst_len']}"))
        return routes

    # -- helpers ---------------------------------------------------------------------------------

    async def _get_message(self, op: Op, **key: Any) -> Any:
        try:
            return await self._nl.get_link(**key)
        except NetlinkError as err:
            if err.code == errno.ENODEV:
                return None
            raise translate(err, op) from err

    async def _index(self, name: str, op: Op) -> int:
        check_link_name(name)
        msg = await self._get_message(op, ifname=name)
        if msg is None:
            raise LinkNotFound(f"cannot {op.doing}: link {name} does not exist")
        return int(msg["index"])

    async def _usable_parent(self, op: Op, mtu: int | None, alias: str | None) -> LinkInfo:
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
        self, op: Op, request: dict[str, Any], mtu: int | None, alias: str | None
    ) -> LinkInfo:
        assert op.kind is not None
        if mtu is not None:
            request["mtu"] = mtu
        try:
            await self._nl.change("link", "add", ifname=op.name, kind=op.kind, **request)
        except NetlinkError as err:
            raise translate(err, op) from err
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
