"""What the driver needs from a link layer: driver.netlink.LinkLayer in the daemon, a fake in
tests of the protocol handlers. Only links, addresses and routes; no policy.

A link layer that can also report the kernel's link changes (``LinkChangeSource``: the real one)
lets the driver notice owned links that vanish while it runs (driver/linkwatch.py); one that cannot
(the handlers' fake) is simply not watched.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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


@dataclass(frozen=True)
class LinkChanges:
    """Which links the kernel reported as added, changed or deleted since the last batch.

    Hints, not state: a reader looks the links up again. ``overrun``: notifications were lost
    (the kernel's socket buffer overflowed, or more links changed than one batch holds), so any
    link may have changed and the reader must look at all of them.
    """

    names: frozenset[str] = frozenset()
    indices: frozenset[int] = frozenset()
    overrun: bool = False


class LinkChangeStream(Protocol):
    async def next(self) -> LinkChanges:
        """Wait for the next batch of changes (at least one change, or an overrun)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class LinkChangeSource(Protocol):
    async def subscribe(self) -> LinkChangeStream:
        """Start receiving the link changes of the layer's network namespace."""
        ...
