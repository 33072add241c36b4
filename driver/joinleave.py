"""Join and Leave: the endpoint's sub-interface, made in the host namespace for Docker to move.

Join creates the macvlan/ipvlan link under the endpoint's deterministic name and answers with the
name, the gateway (only when the subnet has one and the network is not internal) and, for layer-3
ipvlan, connected default routes. Docker moves the link into the container and renames it; the
plugin never enters a container's namespace. Leave removes what is left in the host namespace.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field

from driver import announce, claimwatch, shim
from driver.config import NetworkConfig
from driver.context import Context
from driver.endpoint import cancel_announcement
from driver.errors import DriverError, InvalidRequest, LinkExists
from driver.linkinfo import valid_link_name
from driver.logs import log
from driver.names import ROLE_ENDPOINT, endpoint_alias, is_endpoint_link_of, is_owned
from driver.network import delete_endpoint_link
from driver.parents import check_siblings, ensure_parent_present
from driver.records import EndpointRecord

CONTAINER_IFNAME_PREFIX = "eth"  # Docker names the link eth0, eth1, ... in the container
DEFAULT_V4 = "0.0.0.0/0"
DEFAULT_V6 = "::/0"


@dataclass(frozen=True)
class Route:
    destination: str
    connected: bool  # True: out of the interface with no next hop (libnetwork CONNECTED)
    next_hop: str = ""


@dataclass(frozen=True)
class JoinResult:
    src_name: str
    dst_prefix: str = CONTAINER_IFNAME_PREFIX
    gateway: str = ""
    gateway_ipv6: str = ""
    routes: tuple[Route, ...] = field(default_factory=tuple)


async def join(ctx: Context, network_id: str, endpoint_id: str) -> JoinResult:
    config = ctx.state.network(network_id)
    ep = ctx.state.endpoint(network_id, endpoint_id)
    parent = await ensure_parent_present(ctx, config)
    await _clear_stale_link(ctx, ep)
    await check_siblings(ctx, config, parent)
    alias = endpoint_alias(endpoint_id)
    if config.kind == "macvlan":
        await ctx.links.create_macvlan(
            ep.link_name,
            config.parent.name,
            config.macvlan_mode,
            mtu=config.mtu,
            mac=ep.mac or None,
            alias=alias,
        )
    else:
        await ctx.links.create_ipvlan(
            ep.link_name,
            config.parent.name,
            config.ipvlan_mode,
            config.ipvlan_flag,
            mtu=config.mtu,
            alias=alias,
        )
    result = _answer(config, ep)
    await shim.route_endpoint(ctx, config, ep)
    mac = ep.mac if config.kind == "macvlan" else parent.mac
    if mac and not (config.kind == "ipvlan" and config.ipvlan_mode != "l2"):
        _announce_later(ctx, ep, config.parent.name, mac)
    await claimwatch.joined(ctx, endpoint_id)
    log.info("joined", endpoint_id=endpoint_id, link=ep.link_name, parent=config.parent.name)
    return result


async def _clear_stale_link(ctx: Context, ep: EndpointRecord) -> None:
    """A link of this endpoint's from an earlier Join Docker never took, or one of ours that no
    endpoint owns any more, sits under the name: remove it. Any other link is left alone."""
    if not valid_link_name(ep.link_name):
        raise InvalidRequest(
            f"endpoint {ep.endpoint_id[:12]} was recorded by an older pymacvlan under an ID no "
            "link can be named after; remove the container and create it again"
        )
    stale = await ctx.links.get_link(ep.link_name)
    if stale is None:
        return
    if not is_owned(stale.alias, ROLE_ENDPOINT):
        raise LinkExists(
            f"a link named {ep.link_name} already exists on this host and was not made by "
            "pymacvlan; remove or rename it"
        )
    if not is_endpoint_link_of(stale.alias, ep.endpoint_id):
        owner = next(
            (
                other.endpoint_id
                for other in ctx.state.endpoints.values()
                if other.endpoint_id != ep.endpoint_id
                and is_endpoint_link_of(stale.alias, other.endpoint_id)
            ),
            None,
        )
        if owner is not None:
            raise LinkExists(
                f"a link named {ep.link_name} already exists on this host and belongs to "
                f"endpoint {owner[:12]}; leave that endpoint first"
            )
    await ctx.links.delete_link(ep.link_name)


def _answer(config: NetworkConfig, ep: EndpointRecord) -> JoinResult:
    if config.internal:
        return JoinResult(src_name=ep.link_name)
    if config.kind == "ipvlan" and config.ipvlan_mode in ("l3", "l3s"):
        # The parent routes for its layer-3 children: there is no gateway to name, only the way out.
        routes = []
        if ep.ipv4:
            routes.append(Route(DEFAULT_V4, connected=True))
        if ep.ipv6:
            routes.append(Route(DEFAULT_V6, connected=True))
        return JoinResult(src_name=ep.link_name, routes=tuple(routes))
    return JoinResult(
        src_name=ep.link_name,
        gateway=_gateway_for(config, ep.ipv4),
        gateway_ipv6=_gateway_for(config, ep.ipv6),
    )


def _gateway_for(
    config: NetworkConfig, iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface | None
) -> str:
    if iface is None:
        return ""
    for subnet in config.subnets:
        if iface.ip in subnet.pool and subnet.gateway is not None:
            return str(subnet.gateway)
    return ""


def _announce_later(ctx: Context, ep: EndpointRecord, parent: str, mac: str) -> None:
    if ctx.settings.announce_count <= 0:
        return
    addresses = [i.ip for i in (ep.ipv4, ep.ipv6) if i is not None]
    frames = announce.frames(mac, addresses)
    if not frames:
        return
    cancel_announcement(ctx, ep.endpoint_id)
    task = asyncio.create_task(
        announce.announce(
            parent,
            frames,
            ctx.settings.announce_count,
            ctx.settings.announce_interval,
            ctx.announced,
        ),
        name=f"announce-{ep.endpoint_id[:12]}",
    )
    ctx.announcements[ep.endpoint_id] = task
    task.add_done_callback(lambda t: _announced(ctx, ep.endpoint_id, t))


def _announced(ctx: Context, endpoint_id: str, task: asyncio.Task[None]) -> None:
    if ctx.announcements.get(endpoint_id) is task:
        del ctx.announcements[endpoint_id]


async def leave(ctx: Context, network_id: str, endpoint_id: str) -> None:
    ep = ctx.state.endpoints.get(endpoint_id)
    if ep is None or ep.network_id != network_id:
        return
    cancel_announcement(ctx, endpoint_id)
    await claimwatch.left(ctx, endpoint_id)
    config = ctx.state.networks.get(network_id)
    if config is not None:
        await shim.unroute_endpoint(ctx, config, ep)
    try:
        await delete_endpoint_link(ctx, ep)
    except DriverError as exc:
        log.warning("leave: could not remove the link", link=ep.link_name, error=str(exc))
