"""CreateNetwork and DeleteNetwork.

Create is all or nothing: links made for the network are removed again if anything after them
fails, and the network is stored (with the links it owns) before success is answered, because
Docker never sends CreateNetwork again. Delete is idempotent and always goes through: a link that
cannot be removed is logged, not allowed to keep a deleted network alive.
"""

from __future__ import annotations

from driver import claimwatch, shim
from driver.config import NetworkConfig
from driver.context import Context
from driver.errors import Conflict, DriverError
from driver.linkinfo import valid_link_name
from driver.logs import log
from driver.names import ROLE_ENDPOINT, is_endpoint_link_of, is_owned
from driver.parents import delete_owned_if_ours, prepare_parent
from driver.records import EndpointRecord, OwnedLink
from driver.state import links_of


async def create_network(ctx: Context, config: NetworkConfig) -> None:
    existing = ctx.state.networks.get(config.network_id)
    if existing is not None:
        if existing == config:
            return  # a repeated request: it already happened
        raise Conflict(
            f"network {config.network_id[:12]} already exists in pymacvlan with other options"
        )
    _, created = await prepare_parent(ctx, config)
    new_links: tuple[OwnedLink, ...] = (created,) if created is not None else ()
    try:
        new_shim = await shim.attach(ctx, config)
        if new_shim is not None:
            new_links += (new_shim,)
        await ctx.commit(ctx.store.put_network, config, new_links)
    except DriverError:
        # Undo in reverse: the shim (or just this network's address on a shared one), the parent.
        await shim.detach(ctx, config)
        if created is not None:
            await ctx.links.delete_link(created.name)
        raise
    ctx.state.networks[config.network_id] = config
    for link in new_links:
        ctx.state.owned[link.name] = link
    log.info(
        "network created",
        network_id=config.network_id,
        parent=config.parent.name,
        mode=config.mode,
        owned_parent=config.parent.name in ctx.state.owned,
        host_shim=bool(config.host_address),
    )


async def delete_network(ctx: Context, network_id: str) -> None:
    config = ctx.state.networks.get(network_id)
    if config is None:
        log.info("delete of an unknown network: nothing to do", network_id=network_id)
        return
    for ep in ctx.state.endpoints_of(network_id):
        await delete_endpoint_link(ctx, ep)
        await shim.unroute_endpoint(ctx, config, ep)
    await shim.detach(ctx, config)
    dropped = tuple(
        name
        for name in links_of(config)
        if name in ctx.state.owned and not ctx.state.networks_on(name, besides=network_id)
    )
    for name in dropped:
        await delete_owned_if_ours(ctx, name)
    await ctx.commit(ctx.store.delete_network, network_id, dropped)
    for ep in ctx.state.endpoints_of(network_id):
        del ctx.state.endpoints[ep.endpoint_id]
    for name in dropped:
        ctx.state.owned.pop(name, None)
    del ctx.state.networks[network_id]
    await claimwatch.sync(ctx)
    log.info("network deleted", network_id=network_id, deleted_links=list(dropped))


async def delete_endpoint_link(ctx: Context, ep: EndpointRecord) -> None:
    """Remove an endpoint's sub-interface if it is (back) in the host namespace and its own.

    Its own: the link's alias names this endpoint (driver.names.is_endpoint_link_of). A link of
    another endpoint under the same name, or one that is not ours, is left alone.
    """
    if not valid_link_name(ep.link_name):
        # Recorded by an older version that took any endpoint ID: no link has this name, so
        # there is nothing to delete, and the endpoint must still be forgotten. (A link the kernel
        # made under the part before a NUL is swept at the next start: no record owns it.)
        log.warning("endpoint link name is not valid: no such link", endpoint_id=ep.endpoint_id)
        return
    link = await ctx.links.get_link(ep.link_name)
    if link is None:
        return
    if not is_endpoint_link_of(link.alias, ep.endpoint_id):
        log.warning(
            "not deleting a link that is not this endpoint's",
            link=ep.link_name,
            endpoint_id=ep.endpoint_id,
            alias=link.alias,
        )
        return
    await _delete_endpoint_link(ctx, ep.link_name)


async def delete_orphan_endpoint_links(ctx: Context) -> None:
    """At start-up: delete the endpoint links no endpoint record owns (a crash between creating a
    link and recording it, or between forgetting an endpoint and deleting its link)."""
    owners: dict[str, list[str]] = {}
    for ep in ctx.state.endpoints.values():
        owners.setdefault(ep.link_name, []).append(ep.endpoint_id)
    for link in await ctx.links.list_links():
        if not is_owned(link.alias, ROLE_ENDPOINT):
            continue
        if any(is_endpoint_link_of(link.alias, e) for e in owners.get(link.name, ())):
            continue
        log.info("deleting an endpoint link no endpoint owns", link=link.name, alias=link.alias)
        await _delete_endpoint_link(ctx, link.name)


async def forget_impossible_links(ctx: Context) -> None:
    """At start-up: forget owned links whose names no link can have.

    An older version took any network ID, and a NUL byte in one passed its checks (the kernel
    named the dummy parent after the part before the NUL). Such a record can be neither found
    nor made again; kept, it would fail every start and every delete of its network.
    """
    for name in [n for n in ctx.state.owned if not valid_link_name(n)]:
        log.warning("forgetting an owned link whose name is not valid", link=name)
        await ctx.commit(ctx.store.delete_owned_link, name)
        del ctx.state.owned[name]


async def _delete_endpoint_link(ctx: Context, name: str) -> None:
    try:
        await ctx.links.delete_link(name)
    except DriverError as exc:
        log.warning("could not delete endpoint link", link=name, error=str(exc))
