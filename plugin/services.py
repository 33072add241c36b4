"""The composition root: builds the IPAM and driver services from the settings, loads their state.

Loading happens in the background after the socket is bound: Docker disables a managed plugin whose
socket does not answer within seconds of its start, and Activate needs no state. Every call that
does need state waits for the load to finish (see ``Services.wait_ready``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from aiohttp import web

from driver.context import DriverSettings
from driver.links import Links
from driver.netlink import LinkLayer
from driver.service import NetworkDriver
from ipam.cluster.mode import ClusterMode
from ipam.service import IpamService, IpamSettings, parse_default_pools
from plugin.errors import NotReady
from plugin.logs import get_logger
from plugin.settings import Settings

log = get_logger(__name__)


@dataclass
class Services:
    ipam: IpamService
    driver: NetworkDriver
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _load_error: str | None = None
    _loader: asyncio.Task[None] | None = None

    def start_loading(self) -> None:
        self._loader = asyncio.create_task(self._load(), name="pymacvlan-load-state")

    async def _load(self) -> None:
        try:
            await self.ipam.load()
            await self.driver.load()
        except Exception as exc:
            log.exception("loading the state failed")
            self._load_error = f"{type(exc).__name__}: {exc}"
        else:
            for note in self.ipam.load_notes:
                log.warning("ipam state", note=note)
            log.info("state loaded")
        finally:
            self._ready.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()
        if self._load_error is not None:
            raise NotReady(
                f"pymacvlan could not load its state ({self._load_error}); "
                "see the plugin's log, fix the state directory and restart the plugin"
            )

    async def close(self) -> None:
        if self._loader is not None and not self._loader.done():
            self._loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loader
        await self.driver.close()
        await self.ipam.close()


ServicesFactory = Callable[[Settings], AbstractAsyncContextManager[Services]]

SERVICES = web.AppKey("services", Services)


@contextlib.asynccontextmanager
async def open_services(settings: Settings, links: Links | None = None) -> AsyncIterator[Services]:
    """The services: SQLite state in ``settings.state_dir``; netlink in this namespace unless
    another link layer is given (tests)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ipam = IpamService.open_sqlite(
        settings.state_dir,
        IpamSettings(
            node_name=settings.node_name,
            default_pools=parse_default_pools(settings.default_pools, node_name=settings.node_name),
            quarantine_seconds=settings.quarantine_seconds,
        ),
        cluster=_cluster_mode(settings),
    )
    if links is None:
        links = await LinkLayer.open()
    driver = NetworkDriver.open(
        links,
        settings.state_dir,
        DriverSettings(
            node_name=settings.node_name,
            announce_count=settings.announce_count,
            announce_interval=settings.announce_interval,
        ),
    )
    services = Services(ipam=ipam, driver=driver)
    services.start_loading()
    try:
        yield services
    finally:
        await services.close()


# ---------------------------------------------------------------- cluster mode


def _cluster_mode(settings: Settings) -> ClusterMode | None:
    """Cluster mode when etcd endpoints are configured (docs/cluster.md); None otherwise."""
    config = settings.cluster
    if config is None:
        return None
    log.info("cluster mode", etcd=config.describe(), prefix=config.prefix, node=settings.node_name)
    return ClusterMode(config, settings.node_name, settings.state_dir, events=_log_cluster_event)


def _log_cluster_event(level: str, event: str, fields: Mapping[str, object]) -> None:
    """Cluster mode's background events (blocks claimed, given back, etcd unreachable)."""
    emit = {"error": log.error, "warning": log.warning}.get(level, log.info)
    emit(event, **fields)
