"""``/NetworkDriver.*`` handlers."""

from __future__ import annotations

from driver.config import PoolData
from driver.endpoint import EndpointRequest
from driver.service import SCOPE
from plugin.services import Services
from plugin.wire import network as wire
from plugin.wire.base import Empty, EmptyResponse


async def get_capabilities(_: Services, __: Empty) -> wire.CapabilitiesResponse:
    # Local data scope: each host's plugin keeps its own networks. Connectivity is global in
    # the sense Docker means it: containers on different hosts meet on the physical LAN.
    return wire.CapabilitiesResponse(
        scope=SCOPE, connectivity_scope="global", gw_alloc_checker=True
    )


async def gw_alloc_check(s: Services, _: wire.GwAllocCheckRequest) -> wire.GwAllocCheckResponse:
    skip4, skip6 = s.driver.skip_gateway_allocation()
    return wire.GwAllocCheckResponse(skip_ipv4=skip4, skip_ipv6=skip6)


def _pools(data: list[wire.IpamData]) -> list[PoolData]:
    return [PoolData(d.pool, d.gateway, d.aux_addresses) for d in data]


async def create_network(s: Services, req: wire.CreateNetworkRequest) -> EmptyResponse:
    await s.driver.create_network(
        req.network_id, req.options, _pools(req.ipv4_data), _pools(req.ipv6_data)
    )
    # The network's link exists now: the IPAM probes its pools' first candidates ahead of the
    # first container (ipam/probing.py).
    for subnet in s.driver.network_subnets(req.network_id):
        s.ipam.probe_ahead(subnet)
    return EmptyResponse()


async def delete_network(s: Services, req: wire.NetworkIdRequest) -> EmptyResponse:
    await s.driver.delete_network(req.network_id)
    return EmptyResponse()


async def allocate_network(
    _: Services, __: wire.AllocateNetworkRequest
) -> wire.AllocateNetworkResponse:
    # Only swarm managers call this, for global-scope drivers; we are local-scope. Nothing to do.
    return wire.AllocateNetworkResponse()


async def free_network(_: Services, __: wire.NetworkIdRequest) -> EmptyResponse:
    return EmptyResponse()


async def create_endpoint(
    s: Services, req: wire.CreateEndpointRequest
) -> wire.CreateEndpointResponse:
    mac = await s.driver.create_endpoint(
        EndpointRequest(
            network_id=req.network_id,
            endpoint_id=req.endpoint_id,
            address=req.interface.address,
            address_ipv6=req.interface.address_ipv6,
            mac=req.interface.mac_address,
        )
    )
    if not mac:
        return wire.CreateEndpointResponse()
    return wire.CreateEndpointResponse(interface=wire.ResponseInterface(mac_address=mac))


async def delete_endpoint(s: Services, req: wire.EndpointRequest) -> EmptyResponse:
    await s.driver.delete_endpoint(req.network_id, req.endpoint_id)
    return EmptyResponse()


async def endpoint_oper_info(
    s: Services, req: wire.EndpointRequest
) -> wire.EndpointOperInfoResponse:
    return wire.EndpointOperInfoResponse(
        value=s.driver.endpoint_info(req.network_id, req.endpoint_id)
    )


async def join(s: Services, req: wire.JoinRequest) -> wire.JoinResponse:
    result = await s.driver.join(req.network_id, req.endpoint_id)
    return wire.JoinResponse(
        interface_name=wire.InterfaceName(src_name=result.src_name, dst_prefix=result.dst_prefix),
        gateway=result.gateway,
        gateway_ipv6=result.gateway_ipv6,
        static_routes=[
            wire.StaticRoute(
                destination=r.destination,
                route_type=wire.ROUTE_CONNECTED if r.connected else wire.ROUTE_NEXTHOP,
                next_hop=r.next_hop,
            )
            for r in result.routes
        ],
        # No docker_gwbridge for our containers: they reach the world through the LAN's router.
        disable_gateway_service=True,
    )


async def leave(s: Services, req: wire.EndpointRequest) -> EmptyResponse:
    await s.driver.leave(req.network_id, req.endpoint_id)
    return EmptyResponse()


async def external_connectivity(_: Services, __: wire.ExternalConnectivityRequest) -> EmptyResponse:
    # Port publishing needs NAT on a bridge; containers on the LAN are reached at their own address.
    return EmptyResponse()


async def revoke_external_connectivity(_: Services, __: wire.EndpointRequest) -> EmptyResponse:
    return EmptyResponse()


async def discovery(_: Services, __: wire.DiscoveryRequest) -> EmptyResponse:
    # Node discovery is a swarm notion; pymacvlan hosts coordinate through their address plan.
    return EmptyResponse()
