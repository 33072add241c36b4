"""`GET /pymacvlan/v1/status[?network=ID-or-prefix]`: what the running daemon holds.

Read-only and immediate: it never waits for the state to load and never takes the driver's or
the IPAM's lock (it reads their in-memory state between two of their steps, on the event loop).
A state that is still loading, or could not be loaded, is a 200 whose report says so: the
operator asking why nothing works must get an answer, not a 500.

The event loop also answers Docker, so it does only what must be read there: the networks,
pools and counts, and a quick list of the held addresses. The models of those addresses (a
daemon may hold 100,000) and the JSON are made in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from aiohttp import web

from ipam.cluster.mode import ClusterMode
from plugin.admin.narrow import NoSuchNetwork, match_network, narrow
from plugin.admin.report import StatusReport
from plugin.admin.reporting import (
    ClusterHoldings,
    HeldRow,
    Holdings,
    build_report,
    held_rows,
    report_without_allocations,
    with_allocations,
)
from plugin.errors import MalformedRequest
from plugin.services import SERVICES, SETTINGS, Services
from plugin.settings import Settings


def live_holdings(services: Services, settings: Settings) -> Holdings:
    """What a running daemon's services hold (read on its event loop)."""
    base = Holdings(
        source="daemon",
        state_dir=str(settings.state_dir),
        socket=str(settings.socket),
        node_name=settings.node_name,
        now=time.time(),
    )
    if not services.loaded:
        return replace(base, health="loading", problems=("the daemon is still loading its state",))
    if services.load_error is not None:
        return replace(base, health="unusable", problems=(services.load_error,))
    ipam, driver = services.ipam, services.driver
    cluster = ipam.cluster
    return replace(
        base,
        driver=driver.snapshot(),
        allocator=ipam.allocator,
        dhcp_leases=ipam.dhcp_leases(),
        cluster=ClusterHoldings(
            blocks=cluster.held_blocks(),
            instance=cluster.instance or None,
            etcd=cluster.describe_etcd(),
        )
        if isinstance(cluster, ClusterMode)
        else None,
        claims=driver.recent_claims(),
        claims_seen=driver.claims_seen(),
        notes=ipam.load_notes,
    )


def live_report(services: Services, settings: Settings) -> StatusReport:
    """The whole report of a running daemon, built at once on the calling (event loop) thread."""
    return build_report(live_holdings(services, settings))


async def handle(request: web.Request) -> web.Response:
    held = live_holdings(request.app[SERVICES], request.app[SETTINGS])
    report = report_without_allocations(held)
    rows: list[HeldRow] = held_rows(held.allocator) if held.allocator is not None else []
    wanted = request.query.get("network")
    if wanted is not None and report.health == "ready":
        try:
            report = narrow(report, [match_network(report, wanted)])
        except NoSuchNetwork as exc:
            raise MalformedRequest(str(exc)) from None
    elif wanted is not None:
        report = narrow(report, [])
    body = await asyncio.to_thread(_finish, report, rows)
    return web.Response(body=body, content_type="application/json")


def _finish(report: StatusReport, rows: list[HeldRow]) -> bytes:
    """The report with its allocations (of its pools only, when narrowed), as JSON."""
    if report.narrowed_to is not None:
        subnets = {p.subnet for p in report.pools}
        rows = [row for row in rows if row[0] in subnets]
    report = with_allocations(report, rows)
    if report.narrowed_to is not None:
        report = narrow(report, report.narrowed_to)
    return report.model_dump_json().encode()
