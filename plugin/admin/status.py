"""`GET /pymacvlan/v1/status[?network=ID-or-prefix]`: what the running daemon holds.

Read-only and immediate: it never waits for the state to load and never takes the driver's or
the IPAM's lock (it reads their in-memory state between two of their steps, on the event loop).
A state that is still loading, or could not be loaded, is a 200 whose report says so: the
operator asking why nothing works must get an answer, not a 500.

The event loop also answers Docker, so it does only what must be read there: the networks,
pools and counts, and a quick list of the held addresses. The models of those addresses (a
daemon may hold 100,000), the judgement of which are stale and the JSON are made in a worker
thread. `live_report` is that, for this route and for doctor's (plugin/admin/doctor.py).
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
    HeldAddresses,
    Holdings,
    finish_report,
    held_addresses,
    report_without_allocations,
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
        # The clock that stamps the allocations (`allocated_at`) measures their age.
        now=ipam.now(),
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


async def live_report(
    services: Services, settings: Settings, network: str | None = None
) -> StatusReport:
    """The report of a running daemon, narrowed to `network` (an id or the start of one; raises
    `NoSuchNetwork`) when given: read on the event loop, built in a worker thread."""
    held = live_holdings(services, settings)
    report = report_without_allocations(held)
    addresses = held_addresses(held)
    if network is not None:
        # A state not loaded holds no network: nothing to match, an empty report to narrow.
        found = [match_network(report, network)] if report.health == "ready" else []
        report = narrow(report, found)
    return await asyncio.to_thread(_finish, report, addresses)


async def handle(request: web.Request) -> web.Response:
    try:
        report = await live_report(
            request.app[SERVICES], request.app[SETTINGS], request.query.get("network")
        )
    except NoSuchNetwork as exc:
        raise MalformedRequest(str(exc)) from None
    body = await asyncio.to_thread(_json, report)
    return web.Response(body=body, content_type="application/json")


def _finish(report: StatusReport, addresses: HeldAddresses) -> StatusReport:
    """The report with its allocations and stale allocations (of its pools only, when
    narrowed)."""
    if report.narrowed_to is not None:
        subnets = {p.subnet for p in report.pools}
        addresses = replace(addresses, rows=[row for row in addresses.rows if row[0] in subnets])
    report = finish_report(report, addresses)
    if report.narrowed_to is not None:
        report = narrow(report, report.narrowed_to)
    return report


def _json(report: StatusReport) -> bytes:
    return report.model_dump_json().encode()
