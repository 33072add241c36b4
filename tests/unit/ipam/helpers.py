"""Helpers shared by the IPAM unit tests (importable as `tests.unit.ipam.helpers`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from ipam.addresses import Family, format_address, parse_address
from ipam.allocator import Allocator
from ipam.defaults import builtin_default_pools
from ipam.hostranges import StaticPlan
from ipam.options import build_pool_spec, parse_pool_request
from ipam.requests import parse_address_request
from ipam.service import IpamService, IpamSettings

NODE = "hostA"
GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}

# `await make_service(store=..., node=..., quarantine=...)` (the fixture in conftest.py)
ServiceFactory = Callable[..., Awaitable[IpamService]]


def endpoint(name: str) -> dict[str, str]:
    """The options Docker >= 29 sends with an endpoint's RequestAddress."""
    return {"com.docker.network.endpoint.name": name}


class Clock:
    """A clock the test moves by hand (quarantine is about time)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_settings(node: str = NODE, quarantine: float = 300.0) -> IpamSettings:
    return IpamSettings(node, builtin_default_pools(node), quarantine)


class Direct:
    """The allocator driven the way the service drives it (plan, then apply), minus the store."""

    def __init__(self, node: str = NODE, quarantine: float = 300.0) -> None:
        self.allocator = Allocator(StaticPlan(node), quarantine)
        self.now = 1_000_000.0

    def pool(
        self,
        subnet: str,
        sub_pool: str = "",
        options: Mapping[str, str] | None = None,
        space: str = "local",
    ) -> str:
        v6 = ":" in subnet
        request = parse_pool_request(
            address_space=space, pool=subnet, sub_pool=sub_pool, options=options or {}, v6=v6
        )
        assert request.subnet is not None
        spec = build_pool_spec(request, request.subnet)
        self.allocator.apply(self.allocator.plan_request_pool(spec, self.now))
        return spec.pool_id

    def take(
        self, pool_id: str, address: str = "", options: Mapping[str, str] | None = None
    ) -> int:
        self.allocator.prune(self.now)
        request = parse_address_request(address, options or {})
        change, value = self.allocator.plan_request_address(pool_id, request, self.now)
        self.allocator.apply(change)
        return value

    def take_text(
        self, pool_id: str, address: str = "", options: Mapping[str, str] | None = None
    ) -> str:
        value = self.take(pool_id, address, options)
        return format_address(self.allocator.leases[pool_id].table.subnet.family, value)

    def give(self, pool_id: str, address: int | str) -> None:
        self.allocator.prune(self.now)
        lease = self.allocator.leases[pool_id]
        if isinstance(address, str):
            family, value = parse_address(address)
        else:
            family, value = lease.table.subnet.family, address
        self.allocator.apply(self.allocator.plan_release_address(pool_id, family, value, self.now))

    def release_pool(self, pool_id: str) -> None:
        self.allocator.apply(self.allocator.plan_release_pool(pool_id, self.now))


def ip(text: str) -> int:
    return parse_address(text)[1]


def text(value: int, family: Family = Family.V4) -> str:
    return format_address(family, value)
