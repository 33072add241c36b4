"""The host shim: this host's own interface on a macvlan/ipvlan network.

The kernel does not pass traffic between a macvlan (or ipvlan) parent and its children, so a host
cannot reach its own containers through the parent. People work around it by hand with a
"shim": a macvlan link of the host's own on the same parent, an address, and routes. With
``-o host_address=<aux address>`` the plugin manages that shim:

* one shim link per parent (``pmvh-<hash>``), shared by every network on that parent that asks
  for one: a macvlan link in bridge mode, or an ipvlan link in the networks' mode and flag;
* each such network's host address on it as a host address (/32, /128) — never the subnet's
  prefix, so the shim takes over no traffic for the rest of the LAN, which the host reaches as
  before through its own interfaces;
* a host route (/32, /128) to each of this host's containers on the network, added when the
  container joins and removed when it leaves: exactly this host's containers, whatever range,
  ``--ip`` or cluster block their addresses come from.

The host's own interfaces, addresses and routes are never touched. The shim goes with the last
network using it. It is made again (with its addresses and routes) when the plugin starts and
when the kernel reports it gone (driver/restore.py); on a parent that is missing, it is made when
the parent appears.
"""

from __future__ import annotations

import ipaddress

from driver.config import NetworkConfig
from driver.context import Context
from driver.errors import DriverError, LinkError
from driver.logs import log
from driver.mac import stable_mac
from driver.names import ROLE_SHIM, is_owned, owned_alias, shim_link_name
from driver.records import EndpointRecord, OwnedLink

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def host_address_of(config: NetworkConfig) -> Address | None:
    """The address the host's shim carries for ``config`` (validated by driver.config)."""
    if not config.host_address:
        return None
    for subnet in config.subnets:
        for name, address in subnet.aux_addresses.items():
            if config.host_address in (name, str(address)):
                return address
    return None


def shim_record(config: NetworkConfig) -> OwnedLink:
    """The shim of ``config``'s parent: a sibling of the containers, in their mode (the modes
    that isolate siblings are refused with host_address by driver.config)."""
    parent = config.parent.name
    macvlan = config.kind == "macvlan"
    return OwnedLink(
        name=shim_link_name(parent),
        kind=config.kind,
        alias=owned_alias(ROLE_SHIM, parent),
        base=parent,
        macvlan_mode=config.macvlan_mode if macvlan else None,
        ipvlan_mode=None if macvlan else config.ipvlan_mode,
        ipvlan_flag=None if macvlan else config.ipvlan_flag,
    )


async def create_shim_link(ctx: Context, link: OwnedLink, *, restored: bool = False) -> None:
    """Create the shim link (down, aliased), bring it up; nothing is left behind on failure.

    ``restored``: the shim existed and vanished; the one log line says so."""
    if link.kind == "macvlan":
        await ctx.links.create_macvlan(
            link.name,
            link.base,
            link.macvlan_mode or "bridge",
            mac=stable_mac("shim", link.base),
            alias=link.alias,
        )
    else:
        await ctx.links.create_ipvlan(
            link.name,
            link.base,
            link.ipvlan_mode or "l2",
            link.ipvlan_flag or "bridge",
            alias=link.alias,
        )
    try:
        await ctx.links.set_up(link.name)
    except DriverError:
        await ctx.links.delete_link(link.name)
        raise
    if restored:
        log.warning(
            "restored the host shim, which had vanished",
            link=link.name,
            parent=link.base,
            kind=link.kind,
        )
    else:
        log.info("created host shim", link=link.name, parent=link.base, kind=link.kind)


async def attach(ctx: Context, config: NetworkConfig) -> OwnedLink | None:
    """Give ``config``'s host address to the parent's shim, creating the shim if needed.

    Returns the shim's record when this call created it (the caller stores it with the network
    and, if that fails, calls ``detach``). On a parent that is missing the record is returned
    and nothing is made: the shim, its address and routes come with the parent
    (driver/restore.py)."""
    address = host_address_of(config)
    if address is None:
        return None
    record = shim_record(config)
    existing = ctx.state.owned.get(record.name)
    if await ctx.links.get_link(config.parent.name) is None:
        return record if existing is None else None
    created = None
    if existing is None:
        await create_shim_link(ctx, record)
        created = record
    elif await ctx.links.get_link(record.name) is None:
        await create_shim_link(ctx, existing, restored=True)
    try:
        await ctx.links.add_address(record.name, f"{address}/{address.max_prefixlen}")
    except DriverError:
        if created is not None:
            await ctx.links.delete_link(record.name)
        raise
    return created


async def detach(ctx: Context, config: NetworkConfig) -> None:
    """Take ``config``'s host address off the shim (unless another network on the parent has the
    same one); delete the shim with the last network using it. ``config`` may or may not be in
    the state yet: the other users are the networks besides it."""
    address = host_address_of(config)
    if address is None:
        return
    name = shim_link_name(config.parent.name)
    link = await ctx.links.get_link(name)
    if link is None or not is_owned(link.alias, ROLE_SHIM):
        return
    others = ctx.state.networks_on(name, besides=config.network_id)
    try:
        if not others:
            await ctx.links.delete_link(name)
            log.info("deleted host shim", link=name)
        elif address not in {host_address_of(n) for n in others}:
            await ctx.links.del_address(name, f"{address}/{address.max_prefixlen}")
    except DriverError as exc:
        log.warning("could not clean up the host shim", link=name, error=str(exc))


def _endpoint_routes(ep: EndpointRecord) -> list[str]:
    return [f"{i.ip}/{i.ip.max_prefixlen}" for i in (ep.ipv4, ep.ipv6) if i is not None]


async def route_endpoint(ctx: Context, config: NetworkConfig, ep: EndpointRecord) -> None:
    """This host reaches the container through its shim."""
    if host_address_of(config) is None:
        return
    name = shim_link_name(config.parent.name)
    for route in _endpoint_routes(ep):
        try:
            await ctx.links.add_route(route, name)
        except LinkError as exc:
            # The container works without it; only host <-> container traffic is affected.
            log.warning(
                "could not route to the container via the shim", route=route, error=str(exc)
            )


async def unroute_endpoint(ctx: Context, config: NetworkConfig, ep: EndpointRecord) -> None:
    if host_address_of(config) is None:
        return
    name = shim_link_name(config.parent.name)
    if await ctx.links.get_link(name) is None:
        return
    for route in _endpoint_routes(ep):
        try:
            await ctx.links.del_route(route, name)
        except LinkError as exc:
            log.warning("could not remove a shim route", route=route, error=str(exc))
