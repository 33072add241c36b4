"""Owned links and host shims made again when they are missing: one pass, one rule.

The same pass runs when the plugin starts (a reboot dropped the VLAN links and shims) and whenever
the kernel reports a change that concerns them while it runs (driver/linkwatch.py: someone deleted
one, its NIC was replugged, a parent that was missing appeared). For every network:

* an owned VLAN or dummy link it needs is there, made again with its recorded parameters if it
  vanished; a VLAN link whose base is missing waits for the base (``RestoreReport.waiting``);
* its host shim is there, with the network's host address and a route to each of the network's
  containers on this host; a shim whose parent is missing waits for it.

Only links recorded as ours are made, and a link found under the name of one of ours is used only
if its alias says it is ours: one that someone replaced is left alone and forgotten (never
deleted). Owned links no network needs any more (a crash between deleting a network and forgetting
its link) are deleted. Each restored link is one log line; the caller logs what waits.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from driver.context import Context
from driver.errors import DriverError
from driver.logs import log
from driver.names import ROLE_SHIM, is_owned
from driver.parents import check_siblings, create_owned, delete_owned_if_ours
from driver.shim import create_shim_link, host_address_of, route_endpoint, shim_record


@dataclass
class RestoreReport:
    """What a pass found: the links it made again, those that wait for a missing link (name →
    the link they need), those it held back when asked, and the indices of our links that are
    there (a rename keeps the index, not the name)."""

    restored: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    held: list[str] = field(default_factory=list)
    indices: set[int] = field(default_factory=set)


async def restore_links(
    ctx: Context, *, thorough: bool, hold: Collection[str] = ()
) -> RestoreReport:
    """Make the owned links and shims the networks need; call it under the driver's lock.

    ``thorough`` (start-up): a shim that is there gets its addresses and routes again too (they
    may be half made by a crash); otherwise only a shim made in this pass gets them (one that
    stayed kept its own). ``hold``: links not to make again now, even if missing (the caller's
    answer to a link that someone keeps deleting).
    """
    report = RestoreReport()
    await _owned_links(ctx, report, hold)
    await _shims(ctx, report, thorough, hold)
    return report


async def _owned_links(ctx: Context, report: RestoreReport, hold: Collection[str]) -> None:
    for link in list(ctx.state.owned.values()):
        users = ctx.state.networks_on(link.name)
        current = await ctx.links.get_link(link.name)
        if not users:
            # Left over by a crash between deleting a network and forgetting its link.
            if current is not None:
                await delete_owned_if_ours(ctx, link.name)
            await ctx.commit(ctx.store.delete_owned_link, link.name)
            del ctx.state.owned[link.name]
        elif link.kind in ("macvlan", "ipvlan"):
            continue  # host shims: below, with their addresses and routes
        elif current is not None and not is_owned(current.alias):
            log.warning(
                "a link we made was replaced by someone else's; using it, never deleting it",
                link=link.name,
                alias=current.alias,
            )
            await ctx.commit(ctx.store.delete_owned_link, link.name)
            del ctx.state.owned[link.name]
        elif current is not None:
            report.indices.add(current.index)
        elif link.name in hold:
            report.held.append(link.name)
        elif link.kind == "vlan" and await ctx.links.get_link(link.base) is None:
            report.waiting[link.name] = link.base
        else:
            try:
                made = await create_owned(ctx, link, restored=True)
            except DriverError as exc:
                log.error("could not restore a link of ours", link=link.name, error=str(exc))
                report.failed[link.name] = str(exc)
            else:
                report.restored.append(link.name)
                report.indices.add(made.index)


async def _shims(
    ctx: Context, report: RestoreReport, thorough: bool, hold: Collection[str]
) -> None:
    made: set[str] = set()  # shims made in this pass: each network on them adds its address
    for config in list(ctx.state.networks.values()):
        address = host_address_of(config)
        if address is None:
            continue
        record = ctx.state.owned.get(shim_record(config).name, shim_record(config))
        name = record.name
        if name in report.failed or name in report.waiting or name in report.held:
            continue  # a network sharing the shim with one already handled
        try:
            current = await ctx.links.get_link(name)
            if current is None:
                if name in hold:
                    report.held.append(name)
                    continue
                parent = await ctx.links.get_link(config.parent.name)
                if parent is None:
                    report.waiting[name] = config.parent.name
                    continue
                await check_siblings(ctx, config, parent)
                await create_shim_link(ctx, record, restored=True)
                made.add(name)
                report.restored.append(name)
            elif not is_owned(current.alias, ROLE_SHIM):
                log.warning("a link named like our shim is not ours; leaving it", link=name)
                continue
            else:
                report.indices.add(current.index)
            if not (thorough or name in made):
                continue
            await ctx.links.add_address(name, f"{address}/{address.max_prefixlen}")
        except DriverError as exc:
            log.error("could not restore the host shim", link=name, error=str(exc))
            report.failed[name] = str(exc)
            continue
        for ep in ctx.state.endpoints_of(config.network_id):
            await route_endpoint(ctx, config, ep)


def log_waiting(report: RestoreReport, already: Collection[str] = ()) -> None:
    """One line per link that waits for a missing one (except those already said)."""
    for name, needs in report.waiting.items():
        if name not in already:
            log.warning(
                "a link of ours waits for a missing link: it is made again when that is back",
                link=name,
                needs=needs,
            )
