"""DHCP mode over the socket: RequestAddress answers with the address the LAN's DHCP server
leased (a scripted server behind the IPAM's `Lan`; dnsmasq is the real one in tests/kernel),
and the refusals are one-line `{"Err"}` answers with the right status."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from plugin.services import Services, open_services
from plugin.settings import Settings
from tests.api.conftest import StartDaemon
from tests.api.fake_links import FakeLinks
from tests.unit.ipam.fake_lan import FakeDhcpServer

pytestmark = pytest.mark.asyncio

GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}
ENDPOINT = {"com.docker.network.endpoint.name": "web"}


@pytest.fixture
def server() -> FakeDhcpServer:
    return FakeDhcpServer(time.time)


async def test_request_address_answers_with_the_servers_lease(
    start_daemon: StartDaemon, links: FakeLinks, server: FakeDhcpServer
) -> None:
    @contextlib.asynccontextmanager
    async def services_on_the_fake_lan(settings: Settings) -> AsyncIterator[Services]:
        async with open_services(settings, links=links) as services:
            services.ipam.attach_lan(server)
            yield services

    client = (await start_daemon(services_on_the_fake_lan)).client
    pool = await client.ok(
        "IpamDriver.RequestPool",
        {"AddressSpace": "local", "Pool": "192.0.2.0/24", "Options": {"dhcp": "on"}, "V6": False},
    )
    pool_id = pool["PoolID"]

    no_gateway = await client.call(
        "IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": "", "Options": GATEWAY}
    )
    assert no_gateway.status == 400
    assert no_gateway.err.startswith("dhcp=on needs --gateway")

    gateway = await client.ok(
        "IpamDriver.RequestAddress",
        {"PoolID": pool_id, "Address": "192.0.2.1", "Options": GATEWAY},
    )
    assert gateway["Address"] == "192.0.2.1/24"

    leased = await client.ok(
        "IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": "", "Options": ENDPOINT}
    )
    assert leased["Address"] == "192.0.2.100/24"
    assert [(c.verb, c.hostname) for c in server.calls] == [("acquire", "web")]

    server.nak = "no more leases"
    refused = await client.call(
        "IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": "", "Options": {}}
    )
    assert refused.status == 500
    assert refused.err.startswith("the LAN's DHCP server refused a lease in 192.0.2.0/24")
    assert refused.err.endswith(": no more leases")

    await client.ok("IpamDriver.ReleaseAddress", {"PoolID": pool_id, "Address": "192.0.2.100"})
    assert server.calls[-1].verb == "release"
    assert server.calls[-1].address == "192.0.2.100"
