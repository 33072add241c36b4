"""The driver's in-memory state: networks, endpoints and owned links, mirrored from the store.

Only the lifecycle modules change it, under the driver's lock and after the store has committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from driver.config import NetworkConfig
from driver.errors import NotFound
from driver.names import shim_link_name
from driver.records import DriverState, EndpointRecord, OwnedLink


@dataclass
class State:
    networks: dict[str, NetworkConfig] = field(default_factory=dict)
    endpoints: dict[str, EndpointRecord] = field(default_factory=dict)
    owned: dict[str, OwnedLink] = field(default_factory=dict)

    @classmethod
    def from_store(cls, stored: DriverState) -> State:
        return cls(
            networks={n.network_id: n for n in stored.networks},
            endpoints={e.endpoint_id: e for e in stored.endpoints},
            owned={link.name: link for link in stored.owned_links},
        )

    def network(self, network_id: str) -> NetworkConfig:
        try:
            return self.networks[network_id]
        except KeyError:
            raise NotFound(
                f"network {network_id[:12]} is unknown to pymacvlan on this host; if its state "
                "directory was reset, remove the network (docker network rm) and create it again"
            ) from None

    def endpoint(self, network_id: str, endpoint_id: str) -> EndpointRecord:
        ep = self.endpoints.get(endpoint_id)
        if ep is None or ep.network_id != network_id:
            raise NotFound(
                f"endpoint {endpoint_id[:12]} of network {network_id[:12]} is unknown to "
                "pymacvlan on this host"
            )
        return ep

    def endpoints_of(self, network_id: str) -> list[EndpointRecord]:
        return [e for e in self.endpoints.values() if e.network_id == network_id]

    def networks_on(self, link: str, *, besides: str = "") -> list[NetworkConfig]:
        """Networks whose parent or host shim is ``link``, other than ``besides``."""
        return [
            n for n in self.networks.values() if n.network_id != besides and link in links_of(n)
        ]


def links_of(config: NetworkConfig) -> tuple[str, ...]:
    """The shared links a network depends on: its parent and, with a host address, the parent's
    host shim."""
    if config.host_address:
        return (config.parent.name, shim_link_name(config.parent.name))
    return (config.parent.name,)
