"""The composition root: builds the IPAM and driver services from the settings, loads their state.

Loading happens in the background after the socket is bound: Docker disables a managed plugin whose
socket does not answer within seconds of its start, and Activate needs no state. Every call that
does need state waits for the load to finish (see ``Services.wait_ready``).

Every store gets the one state-file policy (plugin/state_files.py). Before either state file is
opened, the two are compared (plugin/state_check.py): lost state is refused, not started over. A
state that cannot be used never stops the daemon: it logs one line naming the file and what to do,
and every call that needs state answers 500 with that line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from aiohttp import web

from driver.context import DriverSettings
from driver.errors import DriverError
from driver.links import Links
from driver.netlink import LinkLayer
from driver.service import NetworkDriver
from ipam.cluster.mode import ClusterMode
from ipam.dhcp import DhcpSettings
from ipam.errors import IpamError
from ipam.service import IpamService, IpamSettings, parse_default_pools
from plugin.errors import NotReady
from plugin.lan import DriverLan
from plugin.logs import get_logger
from plugin.settings import Settings
from plugin.state_check import check_state, unheld_endpoint_addresses
from plugin.state_files import StateFiles

log = get_logger(__name__)


@dataclass
class Services:
    ipam: IpamService
    driver: NetworkDriver
    # The policy the driver's and the IPAM's files are opened with; the start-up check gives it
    # the state ID both files carry.
    files: StateFiles
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _load_error: str | None = None
    _loader: asyncio.Task[None] | None = None

    def start_loading(self) -> None:
        self._loader = asyncio.create_task(self._load(), name="pymacvlan-load-state")

    async def _load(self) -> None:
        # What calls are told if the load never finishes (cancelled at shutdown).
        problem: str | None = "pymacvlan is shutting down; its state was not loaded"
        try:
            problem = await self._open_state()
            if problem is not None:
                log.error("cannot use the state", error=problem)
        except Exception as exc:  # a bug of ours: its traceback is worth a look
            log.exception("loading the state failed")
            problem = f"loading the state failed: {type(exc).__name__}: {exc}; see the plugin's log"
        finally:
            self._load_error = problem
            self._ready.set()

    async def _open_state(self) -> str | None:
        """Check, open and load both stores; None when done, else the one line saying why not.
        Known problems (unusable files, lost state) are lines, not tracebacks."""
        try:
            ipam_file = await self.ipam.probe()
            verdict = check_state(await self.driver.probe(), ipam_file, lambda: uuid.uuid4().hex)
            if verdict.refusal is not None:
                return verdict.refusal
            for warning in verdict.warnings:
                log.warning("state", problem=warning)
            self.files.state_id = verdict.state_id
            await self.ipam.load()
            await self.driver.load()
        except (IpamError, DriverError) as exc:
            return str(exc)
        for note in self.ipam.load_notes:
            log.warning("ipam state", note=note)
        disagreements = unheld_endpoint_addresses(
            self.driver.endpoint_addresses(), self.ipam.held_addresses(), ipam_file.file
        )
        for problem in disagreements:
            log.warning("state disagreement", problem=problem)
        log.info("state loaded")
        return None

    @property
    def loaded(self) -> bool:
        """Whether loading the state has ended (done, or failed: see `load_error`)."""
        return self._ready.is_set()

    @property
    def load_error(self) -> str | None:
        """Why the state cannot be used, once loading has ended; None when it is usable."""
        return self._load_error if self._ready.is_set() else None

    async def wait_ready(self) -> None:
        await self._ready.wait()
        if self._load_error is not None:
            raise NotReady(self._load_error)

    async def close(self) -> None:
        if self._loader is not None and not self._loader.done():
            self._loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loader
        await self.driver.close()
        await self.ipam.close()


ServicesFactory = Callable[[Settings], AbstractAsyncContextManager[Services]]

SERVICES = web.AppKey("services", Services)
# The daemon's settings, for the admin routes (defined here, beside SERVICES, so that route
# modules need not import plugin.app, which imports them).
SETTINGS = web.AppKey("settings", Settings)


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings, links: Links | None = None, clock: Callable[[], float] = time.time
) -> AsyncIterator[Services]:
    """The services: SQLite state in ``settings.state_dir``; netlink in this namespace unless
    another link layer is given, the IPAM's time from `clock` (tests: allocations made hours
    ago)."""
    # Nothing is created here: the files and their directory are checked, then made, by the
    # background load (plugin/state_files.py), whose problems the calls report.
    files = StateFiles()
    ipam = IpamService.open_sqlite(
        settings.state_dir,
        IpamSettings(
            node_name=settings.node_name,
            default_pools=parse_default_pools(settings.default_pools, node_name=settings.node_name),
            quarantine_seconds=settings.quarantine_seconds,
            requires_mac_address=settings.mac_from_docker,
        ),
        clock,
        cluster=_cluster_mode(settings),
        files=files,
        dhcp=DhcpSettings(retry_floor=settings.dhcp_retry_seconds),
    )
    if links is None:
        links = await LinkLayer.open()
    driver = NetworkDriver.open(
        links,
        settings.state_dir,
        files,
        DriverSettings(
            node_name=settings.node_name,
            announce_count=settings.announce_count,
            announce_interval=settings.announce_interval,
            # A link layer of the tests' own (no kernel links) has no LAN to watch.
            watch_claims=isinstance(links, LinkLayer),
        ),
    )
    # The IPAM asks the LAN through the driver's links (probes, DHCP); the driver gives a DHCP
    # endpoint the MAC its lease was taken with. Neither package knows the other.
    ipam.attach_lan(DriverLan(driver), events=_log_lan_event)
    driver.use_lease_macs(ipam.dhcp_mac)
    services = Services(ipam=ipam, driver=driver, files=files)
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
    # cluster.sqlite3 keeps this host's blocks and instance ID; it carries no state ID: starting
    # the two other files over on purpose keeps the blocks.
    return ClusterMode(
        config,
        settings.node_name,
        settings.state_dir,
        files=StateFiles(),
        events=_log_cluster_event,
    )


def _log_lan_event(level: str, event: str, fields: Mapping[str, object]) -> None:
    """What the IPAM finds on the LAN (addresses in use, DHCP leases renewed, lost)."""
    emit = {"error": log.error, "warning": log.warning, "debug": log.debug}.get(level, log.info)
    emit(event, **fields)


def _log_cluster_event(level: str, event: str, fields: Mapping[str, object]) -> None:
    """Cluster mode's background events (blocks claimed, given back, etcd unreachable)."""
    emit = {"error": log.error, "warning": log.warning}.get(level, log.info)
    emit(event, **fields)
