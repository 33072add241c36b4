"""Shared by the DHCP mode unit tests: a service on a scripted DHCP server and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Literal

from ipam.dhcp import DhcpSettings
from ipam.lan import Lan
from ipam.service import IpamService
from ipam.store import MemoryStore
from tests.unit.ipam.fake_lan import FakeDhcpServer
from tests.unit.ipam.helpers import GATEWAY, Clock, endpoint, make_settings

SUBNET = "192.0.2.0/24"
# The renewal loop looks at the (fake) clock this often; the floor of retries stays the RFC's.
SETTINGS = DhcpSettings(retry_floor=60.0, exchange_timeout=0.5, recheck=0.005)

__all__ = ["GATEWAY", "endpoint"]


class Events:
    """The service's event sink: what the daemon would log."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, object]]] = []

    def __call__(self, level: str, event: str, fields: Mapping[str, object]) -> None:
        self.lines.append((level, event, dict(fields)))

    def named(self, event: str) -> list[tuple[str, dict[str, object]]]:
        return [(level, fields) for level, name, fields in self.lines if name == event]


class DhcpLab:
    """A scripted DHCP server, one store, the services opened on it (closed by `close`)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.server = FakeDhcpServer(clock)
        self.store = MemoryStore()
        self.events = Events()
        self._opened: list[IpamService] = []

    async def open(self, lan: Lan | Literal["server"] | None = "server") -> IpamService:
        """A loaded service on the lab's store (a restart of the daemon: open another)."""
        lan = self.server if lan == "server" else lan
        service = IpamService(self.store, make_settings(), self.clock, lan=lan, dhcp=SETTINGS)
        if lan is not None:
            service.attach_lan(lan, self.events)
        await service.load()
        self._opened.append(service)
        return service

    async def close(self) -> None:
        for service in self._opened:
            await service.close()


async def dhcp_network(service: IpamService, subnet: str = SUBNET, gateway: str = "") -> str:
    """`docker network create -d pymacvlan --ipam-driver pymacvlan --ipam-opt dhcp=on
    --subnet S --gateway G`: the pool, then the gateway."""
    grant = await service.request_pool(
        address_space="local", pool=subnet, sub_pool="", options={"dhcp": "on"}, v6=False
    )
    gateway = gateway or subnet.rsplit(".", 1)[0] + ".1"
    await service.request_address(pool_id=grant.pool_id, address=gateway, options=GATEWAY)
    return grant.pool_id


async def until(check: Callable[[], bool], seconds: float = 3.0) -> None:
    """Wait until `check()` holds (the renewal loop runs in the background)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        if loop.time() > deadline:
            raise AssertionError("the condition did not become true in time")
        await asyncio.sleep(0.002)


async def settle() -> None:
    """Give the background loop time to act (for checks that nothing happened)."""
    await asyncio.sleep(0.05)
