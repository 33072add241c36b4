"""The daemon's app served on a real unix socket in this process, and a client that speaks to it
the way dockerd does (POST, JSON body, Docker's plugin Accept header)."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from plugin.app import make_app, make_runner
from plugin.listener import PluginSocket, bind_plugin_socket
from plugin.services import ServicesFactory, open_services
from plugin.settings import Settings
from plugin.transport import PluginSite
from tests.api.fake_links import FakeLinks

DOCKER_ACCEPT = "application/vnd.docker.plugins.v1.2+json"


@dataclass
class Answer:
    status: int
    body: dict[str, Any]

    @property
    def err(self) -> str:
        return str(self.body.get("Err", ""))


class PluginClient:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def raw(self, method: str, body: bytes, http_method: str = "POST") -> Answer:
        async with self.session.request(
            http_method, f"http://plugin/{method}", data=body, headers={"Accept": DOCKER_ACCEPT}
        ) as resp:
            text = await resp.text()
            return Answer(resp.status, json.loads(text) if text else {})

    async def call(self, method: str, body: dict[str, Any] | None = None) -> Answer:
        return await self.raw(method, b"" if body is None else json.dumps(body).encode())

    async def ok(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = await self.call(method, body)
        assert answer.status == 200, (method, body, answer)
        assert "Err" not in answer.body
        assert "Error" not in answer.body
        return answer.body


@dataclass
class Daemon:
    settings: Settings
    client: PluginClient


StartDaemon = Callable[..., Awaitable[Daemon]]


@pytest.fixture
async def start_daemon(tmp_path: Path) -> AsyncIterator[StartDaemon]:
    """Start (and on teardown stop) the app on ``tmp_path/plugin.sock``, served as the daemon
    serves it (plugin.listener, plugin.transport); call again to restart."""
    runners: list[tuple[web.AppRunner, PluginSocket]] = []
    sessions: list[aiohttp.ClientSession] = []

    async def stop() -> None:
        for runner, sock in runners:
            await runner.cleanup()
            sock.unlink_if_ours()
            sock.close()
        runners.clear()

    async def start(factory: ServicesFactory = open_services, **overrides: Any) -> Daemon:
        await stop()
        values: dict[str, Any] = {
            "socket": tmp_path / "plugin.sock",
            "state_dir": tmp_path / "state",
            "node_name": "node1",
            "quarantine_seconds": 0.0,
        }
        values.update(overrides)
        settings = Settings(**values)
        runner = make_runner(make_app(settings, factory))
        await runner.setup()
        sock = bind_plugin_socket(settings.socket)
        await PluginSite(runner, sock).start()
        runners.append((runner, sock))
        session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(settings.socket)))
        sessions.append(session)
        return Daemon(settings, PluginClient(session))

    yield start
    for session in sessions:
        await session.close()
    await stop()


@pytest.fixture
async def daemon(start_daemon: StartDaemon) -> Daemon:
    return await start_daemon()


@pytest.fixture
def client(daemon: Daemon) -> PluginClient:
    return daemon.client


# ----------------------------------------------------------- the driver on a fake link layer


@pytest.fixture
def links() -> FakeLinks:
    """An in-memory link layer with one NIC, ``lab0``: for tests of the protocol and of the
    driver's decisions (tests/kernel drives real links)."""
    fake = FakeLinks()
    fake.add_nic("lab0")
    return fake


@pytest.fixture
def factory(links: FakeLinks) -> ServicesFactory:
    """The daemon's services on `links` (pass it to `start_daemon` to restart on the same host)."""
    return functools.partial(open_services, links=links)


@pytest.fixture
async def d(start_daemon: StartDaemon, factory: ServicesFactory) -> Daemon:
    """The daemon on the fake link layer."""
    return await start_daemon(factory)


class Clock:
    """The IPAM's clock, moved by the test: allocations made an hour ago, without waiting."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()
