"""One claim watcher (driver/lan/claims.py) per network link that carries joined endpoints.

A link (the parent, or the VLAN link) is watched from the first Join of an endpoint on it until no
network is on it any more; the watcher asks which MAC should hold an address from a table
rebuilt here whenever the joined endpoints change. A macvlan endpoint's address belongs to its own
MAC, an ipvlan endpoint's to the link's (ipvlan links carry the parent's MAC). Networks on a dummy
parent have no LAN to watch. After a restart every loaded endpoint counts as joined: Docker does
not join a running container again. ``DriverSettings.watch_claims`` off: nothing is watched.
"""

from __future__ import annotations

import functools
import ipaddress

from driver.context import Context
from driver.lan.claims import ClaimWatcher

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


async def joined(ctx: Context, endpoint_id: str) -> None:
    ctx.joined.add(endpoint_id)
    await sync(ctx)


async def left(ctx: Context, *endpoint_ids: str) -> None:
    ctx.joined.difference_update(endpoint_ids)
    await sync(ctx)


async def loaded(ctx: Context) -> None:
    ctx.joined = set(ctx.state.endpoints)
    await sync(ctx)


async def sync(ctx: Context) -> None:
    """Watch exactly the links that carry joined endpoints, with their current owners."""
    ctx.joined.intersection_update(ctx.state.endpoints)
    if not ctx.settings.watch_claims:
        return
    ctx.claim_owners = owners_by_link(ctx)
    # A watcher outlives the Leave of its link's last container (with nobody to own an address,
    # it reports nothing) and stops with the link's last network: closing a packet socket waits
    # for an RCU grace period (about 10 ms), which every `docker run --rm` would otherwise pay.
    carried = {c.parent.name for c in ctx.state.networks.values() if not c.parent.dummy}
    for link in [name for name in ctx.watchers if name not in carried]:
        await ctx.watchers.pop(link).stop()
    for link in ctx.claim_owners:
        if link not in ctx.watchers:
            watcher = ClaimWatcher(
                link,
                functools.partial(_owner, ctx, link),
                # The namespace the link layer works in: the daemon's own; a test's elsewhere.
                netns=getattr(ctx.links, "netns", None),
                record=ctx.claims,
            )
            watcher.start()
            ctx.watchers[link] = watcher


async def stop_all(ctx: Context) -> None:
    while ctx.watchers:
        _, watcher = ctx.watchers.popitem()
        await watcher.stop()


def owners_by_link(ctx: Context) -> dict[str, dict[IPAddress, str]]:
    """link -> address -> the MAC that should hold it ("" for the link's own) of every joined
    endpoint."""
    table: dict[str, dict[IPAddress, str]] = {}
    for endpoint_id in ctx.joined:
        ep = ctx.state.endpoints.get(endpoint_id)
        config = ctx.state.networks.get(ep.network_id) if ep is not None else None
        if ep is None or config is None or config.parent.dummy:
            continue
        mac = ep.mac if config.kind == "macvlan" else ""
        owners = table.setdefault(config.parent.name, {})
        for iface in (ep.ipv4, ep.ipv6):
            if iface is not None:
                owners[iface.ip] = mac
    return table


def _owner(ctx: Context, link: str, address: IPAddress) -> str | None:
    return ctx.claim_owners.get(link, {}).get(address)
