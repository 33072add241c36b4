"""An in-memory link layer with the kernel's rules that matter to the driver's policy.

For handler tests that are about the protocol and the driver's decisions, not about netlink;
tests/kernel drives the real link layer.

Names go through what the real layer does with them: its own check (``check_link_name``, which
refuses what the kernel's dev_valid_name() refuses), then the kernel's reading of IFLA_IFNAME,
which stops at the first NUL byte (``nla_strscpy``): ``lab0\x00x`` is looked up as ``lab0``.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import replace

from driver.errors import KindNotSupported, LinkExists, ParentNotFound
from driver.linkinfo import IpvlanFlag, IpvlanMode, LinkInfo, MacvlanMode, check_link_name

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class FakeLinks:
    def __init__(self, kinds: tuple[str, ...] = ("macvlan", "ipvlan", "vlan", "dummy")) -> None:
        self.kinds = kinds
        self.links: dict[str, LinkInfo] = {}
        self.addresses: dict[str, list[IPInterface]] = {}
        self.routes: set[tuple[str, str]] = set()
        self._index = itertools.count(2)
        self.closed = False

    # -- test set-up ----------------------------------------------------------------------------

    def add_nic(
        self,
        name: str,
        *,
        up: bool = True,
        mtu: int = 1500,
        wireless: bool = False,
        alias: str | None = None,
        kind: str | None = None,
    ) -> LinkInfo:
        link = LinkInfo(
            index=next(self._index),
            name=name,
            kind=kind,
            parent_index=None,
            parent_name=None,
            parent_netnsid=None,
            master_index=None,
            mtu=mtu,
            up=up,
            oper_state="up" if up else "down",
            carrier=up,
            mac=_mac(len(self.links)),
            alias=alias,
            ethernet=True,
            loopback=False,
            wireless=wireless,
        )
        self.links[name] = link
        return link

    def take_into_container(self, name: str) -> None:
        """What Docker does after Join: the link leaves the host namespace."""
        del self.links[name]

    # -- the Links protocol ---------------------------------------------------------------------

    async def get_link(self, name: str) -> LinkInfo | None:
        return self.links.get(_kernel_name(name))

    async def list_links(self) -> list[LinkInfo]:
        return list(self.links.values())

    async def list_children(self, parent_index: int) -> list[LinkInfo]:
        return [link for link in self.links.values() if link.parent_index == parent_index]

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
        return self._stacked(name, parent, "macvlan", mtu, alias, mac=mac, macvlan_mode=mode)

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
        return self._stacked(name, parent, "ipvlan", mtu, alias, ipvlan_mode=mode, ipvlan_flag=flag)

    async def create_vlan(
        self,
        name: str,
        parent: str,
        vlan_id: int,
        *,
        mtu: int | None = None,
        alias: str | None = None,
    ) -> LinkInfo:
        return self._stacked(name, parent, "vlan", mtu, alias, vlan_id=vlan_id)

    async def create_dummy(self, name: str, *, alias: str | None = None) -> LinkInfo:
        name = _kernel_name(name)
        self._check_kind("dummy", name)
        if name in self.links:
            raise LinkExists(f"a link named {name} already exists")
        link = replace(self.add_nic(name, up=False, alias=alias), kind="dummy")
        self.links[name] = link
        return link

    async def delete_link(self, name: str) -> bool:
        name = _kernel_name(name)
        if name not in self.links:
            return False
        index = self.links.pop(name).index
        self.addresses.pop(name, None)
        self.routes = {(dst, dev) for dst, dev in self.routes if dev != name}
        for child in [c for c in self.links.values() if c.parent_index == index]:
            await self.delete_link(child.name)  # as the kernel does
        return True

    async def set_up(self, name: str) -> None:
        name = _kernel_name(name)
        self.links[name] = replace(self.links[name], up=True, oper_state="up", carrier=True)

    async def add_address(self, name: str, cidr: str) -> bool:
        iface = ipaddress.ip_interface(cidr)
        have = self.addresses.setdefault(name, [])
        if iface in have:
            return False
        have.append(iface)
        return True

    async def del_address(self, name: str, cidr: str) -> bool:
        iface = ipaddress.ip_interface(cidr)
        have = self.addresses.get(name, [])
        if iface not in have:
            return False
        have.remove(iface)
        return True

    async def list_addresses(self, name: str) -> list[IPInterface]:
        return list(self.addresses.get(name, []))

    async def add_route(self, dst: str, dev: str) -> bool:
        if (dst, dev) in self.routes:
            return False
        self.routes.add((dst, dev))
        return True

    async def del_route(self, dst: str, dev: str) -> bool:
        if (dst, dev) not in self.routes:
            return False
        self.routes.discard((dst, dev))
        return True

    def close(self) -> None:
        self.closed = True

    # -- helpers --------------------------------------------------------------------------------

    def _check_kind(self, kind: str, name: str) -> None:
        if kind not in self.kinds:
            raise KindNotSupported(f"cannot create {kind} link {name}: this kernel has no {kind}")

    def _stacked(
        self,
        name: str,
        parent: str,
        kind: str,
        mtu: int | None,
        alias: str | None,
        mac: str | None = None,
        **extra: object,
    ) -> LinkInfo:
        name, parent = _kernel_name(name), _kernel_name(parent)
        self._check_kind(kind, name)
        lower = self.links.get(parent)
        if lower is None:
            raise ParentNotFound(f"parent interface {parent} does not exist on this host")
        if name in self.links:
            raise LinkExists(f"a link named {name} already exists")
        link = LinkInfo(
            index=next(self._index),
            name=name,
            kind=kind,
            parent_index=lower.index,
            parent_name=parent,
            parent_netnsid=None,
            master_index=None,
            mtu=mtu or lower.mtu,
            up=False,
            oper_state="down",
            carrier=False,
            mac=mac or (lower.mac if kind in ("ipvlan", "vlan") else _mac(len(self.links) + 50)),
            alias=alias,
            ethernet=True,
            loopback=False,
            wireless=False,
            **extra,  # type: ignore[arg-type]
        )
        self.links[name] = link
        return link


def _kernel_name(name: str) -> str:
    """The name as the real link layer passes it on and the kernel reads it."""
    check_link_name(name)
    return name.split("\0", 1)[0]


def _mac(n: int) -> str:
    return f"52:54:00:00:{n // 256:02x}:{n % 256:02x}"
