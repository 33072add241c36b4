"""``/NetworkDriver.*`` request and response models (moby ``drivers/remote/api/api.go``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from plugin.wire.base import MAX_ADDRESS_LENGTH, MAX_ID_LENGTH, WireRequest, WireResponse

# libnetwork's types.RouteType: a route via a next hop, or a route straight out of the interface.
ROUTE_NEXTHOP = 0
ROUTE_CONNECTED = 1


class CapabilitiesResponse(WireResponse):
    scope: str = Field(alias="Scope")
    connectivity_scope: str = Field(alias="ConnectivityScope")
    gw_alloc_checker: bool = Field(alias="GwAllocChecker")


class IpamData(WireRequest):
    """One pool of a network as Docker's IPAM handed it out (``driverapi.IPAMData``)."""

    address_space: str = Field(default="", alias="AddressSpace")
    pool: str = Field(alias="Pool", max_length=MAX_ADDRESS_LENGTH)
    gateway: str = Field(default="", alias="Gateway", max_length=MAX_ADDRESS_LENGTH)
    aux_addresses: dict[str, Annotated[str, StringConstraints(max_length=MAX_ADDRESS_LENGTH)]] = (
        Field(default_factory=dict, alias="AuxAddresses")
    )


class GwAllocCheckRequest(WireRequest):
    options: dict[str, Any] = Field(default_factory=dict, alias="Options")


class GwAllocCheckResponse(WireResponse):
    skip_ipv4: bool = Field(alias="SkipIPv4")
    skip_ipv6: bool = Field(alias="SkipIPv6")


class CreateNetworkRequest(WireRequest):
    network_id: str = Field(alias="NetworkID", min_length=1, max_length=MAX_ID_LENGTH)
    options: dict[str, Any] = Field(default_factory=dict, alias="Options")
    ipv4_data: list[IpamData] = Field(default_factory=list, alias="IPv4Data")
    ipv6_data: list[IpamData] = Field(default_factory=list, alias="IPv6Data")


class NetworkIdRequest(WireRequest):
    """DeleteNetwork and FreeNetwork: just the network."""

    network_id: str = Field(alias="NetworkID", min_length=1, max_length=MAX_ID_LENGTH)


class AllocateNetworkRequest(WireRequest):
    network_id: str = Field(alias="NetworkID", min_length=1, max_length=MAX_ID_LENGTH)
    options: dict[str, str] = Field(default_factory=dict, alias="Options")
    ipv4_data: list[IpamData] = Field(default_factory=list, alias="IPv4Data")
    ipv6_data: list[IpamData] = Field(default_factory=list, alias="IPv6Data")


class AllocateNetworkResponse(WireResponse):
    options: dict[str, str] = Field(default_factory=dict, alias="Options")


class EndpointInterface(WireRequest):
    address: str = Field(default="", alias="Address", max_length=MAX_ADDRESS_LENGTH)
    address_ipv6: str = Field(default="", alias="AddressIPv6", max_length=MAX_ADDRESS_LENGTH)
    mac_address: str = Field(default="", alias="MacAddress", max_length=MAX_ADDRESS_LENGTH)


class CreateEndpointRequest(WireRequest):
    network_id: str = Field(alias="NetworkID", min_length=1, max_length=MAX_ID_LENGTH)
    endpoint_id: str = Field(alias="EndpointID", min_length=1, max_length=MAX_ID_LENGTH)
    interface: EndpointInterface = Field(default_factory=EndpointInterface, alias="Interface")
    options: dict[str, Any] = Field(default_factory=dict, alias="Options")


class ResponseInterface(WireResponse):
    """Only what the driver adds: Docker refuses an answer that changes what it supplied."""

    mac_address: str = Field(default="", alias="MacAddress")


class CreateEndpointResponse(WireResponse):
    interface: ResponseInterface | None = Field(default=None, alias="Interface")


class EndpointRequest(WireRequest):
    """DeleteEndpoint, EndpointOperInfo, Leave, RevokeExternalConnectivity."""

    network_id: str = Field(alias="NetworkID", min_length=1, max_length=MAX_ID_LENGTH)
    endpoint_id: str = Field(alias="EndpointID", min_length=1, max_length=MAX_ID_LENGTH)


class EndpointOperInfoResponse(WireResponse):
    value: dict[str, Any] = Field(default_factory=dict, alias="Value")


class JoinRequest(WireRequest):
    network_id: str = Field(alias="NetworkID", min_length=1, max_length=MAX_ID_LENGTH)
    endpoint_id: str = Field(alias="EndpointID", min_length=1, max_length=MAX_ID_LENGTH)
    sandbox_key: str = Field(default="", alias="SandboxKey")
    options: dict[str, Any] = Field(default_factory=dict, alias="Options")


class InterfaceName(WireResponse):
    src_name: str = Field(alias="SrcName")
    dst_prefix: str = Field(alias="DstPrefix")


class StaticRoute(WireResponse):
    destination: str = Field(alias="Destination")
    route_type: int = Field(alias="RouteType")
    next_hop: str = Field(default="", alias="NextHop")


class JoinResponse(WireResponse):
    interface_name: InterfaceName = Field(alias="InterfaceName")
    gateway: str = Field(default="", alias="Gateway")
    gateway_ipv6: str = Field(default="", alias="GatewayIPv6")
    static_routes: list[StaticRoute] = Field(default_factory=list, alias="StaticRoutes")
    disable_gateway_service: bool = Field(default=False, alias="DisableGatewayService")


class ExternalConnectivityRequest(WireRequest):
    network_id: str = Field(alias="NetworkID", min_length=1, max_length=MAX_ID_LENGTH)
    endpoint_id: str = Field(alias="EndpointID", min_length=1, max_length=MAX_ID_LENGTH)
    options: dict[str, Any] = Field(default_factory=dict, alias="Options")


class DiscoveryRequest(WireRequest):
    discovery_type: int = Field(default=0, alias="DiscoveryType")
    discovery_data: Any = Field(default=None, alias="DiscoveryData")
