"""CreateEndpoint, DeleteEndpoint and EndpointOperInfo.

CreateEndpoint only records the endpoint (Join makes the link, as Docker's own drivers do). A
macvlan endpoint without a MAC from Docker gets a stable one (driver.mac); Docker's own values are
never echoed back, because Docker refuses an answer that changes what it supplied.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from driver import claimwatch, shim
from driver.config import NetworkConfig, parse_ip
from driver.context import Context
from driver.errors import Conflict, InvalidOption
from driver.ids import check_id
from driver.linkinfo import check_link_name, normalize_mac
from driver.logs import log
from driver.mac import stable_mac
from driver.names import endpoint_link_name
from driver.network import delete_endpoint_link
from driver.records import EndpointRecord


@dataclass(frozen=True)
class EndpointRequest:
    network_id: str
    endpoint_id: str
    address: str = ""  # "192.0.2.5/24", as Docker sends it
    address_ipv6: str = ""
    mac: str = ""


async def create_endpoint(ctx: Context, req: EndpointRequest) -> str:
    """Record the endpoint; returns the MAC to tell Docker ("" when Docker chose, or ipvlan)."""
    check_id("EndpointID", req.endpoint_id)
    config = ctx.state.network(req.network_id)
    ipv4, ipv6 = _interfaces(req)
    docker_mac = normalize_mac(req.mac) if req.mac else ""
    if config.kind == "ipvlan" and docker_mac:
        # An ipvlan link has its parent's MAC; like Docker's ipvlan driver, we cannot honour one.
        log.warning("ignoring the MAC address of an ipvlan endpoint", mac=docker_mac)
        docker_mac = ""
    mac, generated = docker_mac, False
    if config.kind == "macvlan" and not mac:
        leased = _leased_mac(ctx, config, ipv4)
        seed = str(ipv4.ip) if ipv4 else str(ipv6.ip) if ipv6 else req.endpoint_id
        mac, generated = leased or stable_mac(req.network_id, seed), True
    existing = ctx.state.endpoints.get(req.endpoint_id)
    record = EndpointRecord(
        endpoint_id=req.endpoint_id,
        network_id=req.network_id,
        link_name=existing.link_name if existing is not None else _link_name(ctx, req.endpoint_id),
        mac=mac,
        mac_generated=generated,
        ipv4=ipv4,
        ipv6=ipv6,
    )
    if existing is not None:
        if existing == record:
            return record.mac if record.mac_generated else ""
        raise Conflict(
            f"endpoint {req.endpoint_id[:12]} already exists in pymacvlan with other addresses"
        )
    await ctx.commit(ctx.store.put_endpoint, record)
    ctx.state.endpoints[record.endpoint_id] = record
    return record.mac if generated else ""


def _leased_mac(
    ctx: Context, config: NetworkConfig, ipv4: ipaddress.IPv4Interface | None
) -> str | None:
    """The MAC the LAN's DHCP server leased this address to, when it came from one."""
    if ipv4 is None:
        return None
    for subnet in config.ipv4:
        if ipv4.ip in subnet.pool:
            return ctx.lease_mac(str(subnet.pool), str(ipv4.ip))
    return None


def _link_name(ctx: Context, endpoint_id: str) -> str:
    """A name of its own: another endpoint may have the same first 12 characters."""
    taken = {e.link_name for e in ctx.state.endpoints.values()}
    name = endpoint_link_name(endpoint_id, taken)
    check_link_name(name)
    return name


def _interfaces(
    req: EndpointRequest,
) -> tuple[ipaddress.IPv4Interface | None, ipaddress.IPv6Interface | None]:
    v4 = ipaddress.IPv4Interface(_interface(req.address, 4, "Address")) if req.address else None
    v6 = (
        ipaddress.IPv6Interface(_interface(req.address_ipv6, 6, "AddressIPv6"))
        if req.address_ipv6
        else None
    )
    return v4, v6


def _interface(text: str, family: int, field: str) -> tuple[str, int]:
    """Docker's ``192.0.2.5/24``: the address and its subnet's prefix length (without one, the
    address alone: /32, /128)."""
    where = f"endpoint address ({field}) is not valid"
    address, prefix = parse_ip(text, where, "address")
    if address.version != family:
        raise InvalidOption(f"{where}: {address} is not an IPv{family} address")
    return str(address), address.max_prefixlen if prefix is None else prefix


async def delete_endpoint(ctx: Context, network_id: str, endpoint_id: str) -> None:
    record = ctx.state.endpoints.get(endpoint_id)
    if record is None or record.network_id != network_id:
        return  # already gone: a repeated request
    cancel_announcement(ctx, endpoint_id)
    config = ctx.state.networks.get(network_id)
    if config is not None:
        await shim.unroute_endpoint(ctx, config, record)
    await delete_endpoint_link(ctx, record)
    await ctx.commit(ctx.store.delete_endpoint, endpoint_id)
    del ctx.state.endpoints[endpoint_id]
    await claimwatch.left(ctx, endpoint_id)


def endpoint_info(ctx: Context, network_id: str, endpoint_id: str) -> dict[str, Any]:
    """What `docker network inspect` can show about the endpoint."""
    record = ctx.state.endpoint(network_id, endpoint_id)
    config = ctx.state.network(network_id)
    info: dict[str, Any] = {"parent": config.parent.name, "mode": config.mode}
    if record.mac:
        info["mac_address"] = record.mac
    return info


def cancel_announcement(ctx: Context, endpoint_id: str) -> None:
    task = ctx.announcements.pop(endpoint_id, None)
    if task is not None:
        task.cancel()
