"""What the driver needs from a link layer: driver.netlink.LinkLayer in the daemon, a fake in
tests of the protocol handlers. Only links, addresses and routes; no policy."""

from __future__ import annotations

import ipaddress
from typing import Protocol

from driver.linkinfo import IpvlanFlag, IpvlanMode, LinkInfo, MacvlanMode


class Links(Protocol):
    async def get_link(self, name: str) -> LinkInfo | None: ...

    async def list_links(self) -> list[LinkInfo]: ...

    async def list_children(self, parent_index: int) -> list[LinkInfo]: ...

    async def create_macvlan(
        self,
        name: str,
        parent: str,
        mode: MacvlanMode = "bridge",
        *,
        mtu: int | None = None,
        mac: str | None = None,
        alias: str | None = None,
    ) -> LinkInfo: ...

    async def create_ipvlan(
        self,
        name: str,
        parent: str,
        mode: IpvlanMode = "l2",
        flag: IpvlanFlag = "bridge",
        *,
        mtu: int | None = None,
        alias: str | None = None,
    ) -> LinkInfo: ...

    async def create_vlan(
        self,
        name: str,
        parent: str,
        vlan_id: int,
        *,
        mtu: int | None = None,
        alias: str | None = None,
    ) -> LinkInfo: ...

    async def create_dummy(self, name: str, *, alias: str | None = None) -> LinkInfo: ...

    async def delete_link(self, name: str) -> bool: ...

    async def set_up(self, name: str) -> None: ...

    async def add_address(self, name: str, cidr: str) -> bool: ...

    async def del_address(self, name: str, cidr: str) -> bool: ...

    async def list_addresses(
        self, name: str
    ) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]: ...

    async def add_route(self, dst: str, dev: str) -> bool: ...

    async def del_route(self, dst: str, dev: str) -> bool: ...

    def close(self) -> None: ...
