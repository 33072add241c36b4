"""The route table: every protocol method pymacvlan answers, in one list."""

from __future__ import annotations

from typing import Any

from plugin.handlers import activate, ipam, network
from plugin.rpc import Method
from plugin.wire import ipam as ipam_wire
from plugin.wire import network as net_wire
from plugin.wire.base import Empty

METHODS: tuple[Method[Any], ...] = (
    Method("Plugin.Activate", Empty, activate.activate, needs_state=False),
    # IpamDriver
    Method("IpamDriver.GetCapabilities", Empty, ipam.get_capabilities, needs_state=False),
    Method(
        "IpamDriver.GetDefaultAddressSpaces",
        Empty,
        ipam.get_default_address_spaces,
        needs_state=False,
    ),
    Method("IpamDriver.RequestPool", ipam_wire.RequestPoolRequest, ipam.request_pool),
    Method("IpamDriver.ReleasePool", ipam_wire.ReleasePoolRequest, ipam.release_pool),
    Method("IpamDriver.RequestAddress", ipam_wire.RequestAddressRequest, ipam.request_address),
    Method("IpamDriver.ReleaseAddress", ipam_wire.ReleaseAddressRequest, ipam.release_address),
    # NetworkDriver
    Method("NetworkDriver.GetCapabilities", Empty, network.get_capabilities, needs_state=False),
    Method("NetworkDriver.GwAllocCheck", net_wire.GwAllocCheckRequest, network.gw_alloc_check),
    Method("NetworkDriver.CreateNetwork", net_wire.CreateNetworkRequest, network.create_network),
    Method("NetworkDriver.DeleteNetwork", net_wire.NetworkIdRequest, network.delete_network),
    Method(
        "NetworkDriver.AllocateNetwork", net_wire.AllocateNetworkRequest, network.allocate_network
    ),
    Method("NetworkDriver.FreeNetwork", net_wire.NetworkIdRequest, network.free_network),
    Method("NetworkDriver.CreateEndpoint", net_wire.CreateEndpointRequest, network.create_endpoint),
    Method("NetworkDriver.DeleteEndpoint", net_wire.EndpointRequest, network.delete_endpoint),
    Method("NetworkDriver.EndpointOperInfo", net_wire.EndpointRequest, network.endpoint_oper_info),
    Method("NetworkDriver.Join", net_wire.JoinRequest, network.join),
    Method("NetworkDriver.Leave", net_wire.EndpointRequest, network.leave),
    Method(
        "NetworkDriver.ProgramExternalConnectivity",
        net_wire.ExternalConnectivityRequest,
        network.external_connectivity,
    ),
    Method(
        "NetworkDriver.RevokeExternalConnectivity",
        net_wire.EndpointRequest,
        network.revoke_external_connectivity,
    ),
    Method("NetworkDriver.DiscoverNew", net_wire.DiscoveryRequest, network.discovery),
    Method("NetworkDriver.DiscoverDelete", net_wire.DiscoveryRequest, network.discovery),
)
