"""Fixtures of the IPAM unit tests: a settable clock and services on the fake or SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ipam.service import IpamService
from ipam.store import IpamStore, MemoryStore
from plugin.state_files import StateFiles
from tests.unit.ipam.helpers import NODE, Clock, ServiceFactory, make_settings


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make_service(clock: Clock) -> AsyncIterator[ServiceFactory]:
    """`await make_service(store=..., node=..., quarantine=...)`: a loaded service, closed after."""
    opened: list[IpamService] = []

    async def make(
        store: IpamStore | None = None, node: str = NODE, quarantine: float = 300.0
    ) -> IpamService:
        service = IpamService(store or MemoryStore(), make_settings(node, quarantine), clock)
        await service.load()
        opened.append(service)
        return service

    yield make
    for service in opened:
        await service.close()


@pytest.fixture
async def service(make_service: ServiceFactory) -> IpamService:
    return await make_service()


@pytest.fixture
async def sqlite_service(tmp_path: Path, clock: Clock) -> AsyncIterator[IpamService]:
    service = IpamService.open_sqlite(tmp_path, make_settings(), clock, files=StateFiles())
    await service.load()
    yield service
    await service.close()
