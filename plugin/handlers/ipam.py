"""``/IpamDriver.*`` handlers."""

from __future__ import annotations

from plugin.services import Services
from plugin.wire import ipam as wire
from plugin.wire.base import Empty, EmptyResponse


async def get_capabilities(s: Services, __: Empty) -> wire.CapabilitiesResponse:
    # The service says what it needs (ipam.service.Capabilities): no MAC, and no replay after
    # Docker restarts, because its state is durable. Needs no state: answered before the load.
    caps = s.ipam.capabilities
    return wire.CapabilitiesResponse(
        requires_mac_address=caps.requires_mac_address,
        requires_request_replay=caps.requires_request_replay,
    )


async def get_default_address_spaces(s: Services, __: Empty) -> wire.AddressSpacesResponse:
    spaces = s.ipam.address_spaces
    return wire.AddressSpacesResponse(
        local_default_address_space=spaces.local,
        global_default_address_space=spaces.global_,
    )


async def request_pool(s: Services, req: wire.RequestPoolRequest) -> wire.RequestPoolResponse:
    grant = await s.ipam.request_pool(
        address_space=req.address_space,
        pool=req.pool,
        sub_pool=req.sub_pool,
        options=req.options,
        v6=req.v6,
    )
    return wire.RequestPoolResponse(pool_id=grant.pool_id, pool=grant.pool, data=grant.data)


async def release_pool(s: Services, req: wire.ReleasePoolRequest) -> EmptyResponse:
    await s.ipam.release_pool(req.pool_id)
    return EmptyResponse()


async def request_address(
    s: Services, req: wire.RequestAddressRequest
) -> wire.RequestAddressResponse:
    grant = await s.ipam.request_address(
        pool_id=req.pool_id, address=req.address, options=req.options
    )
    return wire.RequestAddressResponse(address=grant.address, data=grant.data)


async def release_address(s: Services, req: wire.ReleaseAddressRequest) -> EmptyResponse:
    await s.ipam.release_address(pool_id=req.pool_id, address=req.address)
    return EmptyResponse()
