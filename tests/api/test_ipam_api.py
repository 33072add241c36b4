"""IPAM over the socket, as dockerd drives it for `network create --ipam-driver pymacvlan`."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest

from tests.api.conftest import PluginClient, StartDaemon

pytestmark = pytest.mark.asyncio

GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}


async def request_pool(client: PluginClient, **fields: Any) -> dict[str, Any]:
    body = {"AddressSpace": "local", "Pool": "", "SubPool": "", "Options": {}, "V6": False}
    body.update(fields)
    return await client.ok("IpamDriver.RequestPool", body)


async def address(client: PluginClient, pool_id: str, addr: str = "", **opts: str) -> str:
    body = {"PoolID": pool_id, "Address": addr, "Options": opts}
    answer = await client.ok("IpamDriver.RequestAddress", body)
    return str(answer["Address"])


async def test_network_create_sequence_with_subnet_range_gateway_and_aux(
    client: PluginClient,
) -> None:
    pool = await request_pool(client, Pool="192.0.2.0/24", SubPool="192.0.2.128/28")
    assert pool["Pool"] == "192.0.2.0/24"
    gw = await address(client, pool["PoolID"], "192.0.2.1", **GATEWAY)
    assert gw == "192.0.2.1/24"
    # An aux address outside the ip-range: Docker fails `network create` unless it is accepted.
    assert await address(client, pool["PoolID"], "192.0.2.2") == "192.0.2.2/24"
    first = await address(client, pool["PoolID"])
    assert ipaddress.ip_interface(first) in ipaddress.ip_network("192.0.2.128/28")
    assert first.endswith("/24")


async def test_exhaustion_says_which_pool_range_and_host(client: PluginClient) -> None:
    pool = await request_pool(
        client, Pool="192.0.2.0/24", Options={"range.node1": "192.0.2.10-192.0.2.11"}
    )
    await address(client, pool["PoolID"])
    await address(client, pool["PoolID"])
    answer = await client.call(
        "IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": ""}
    )
    assert answer.status == 500
    assert "no available addresses on this pool" in answer.err
    assert "192.0.2.0/24" in answer.err
    assert "node1" in answer.err


async def test_address_in_use_and_out_of_range(client: PluginClient) -> None:
    pool = await request_pool(client, Pool="192.0.2.0/24")
    await address(client, pool["PoolID"], "192.0.2.50")
    again = await client.call(
        "IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "192.0.2.50"}
    )
    assert again.status == 500
    assert "Address already in use" in again.err
    assert "192.0.2.50" in again.err
    outside = await client.call(
        "IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "198.51.100.1"}
    )
    assert outside.status == 400
    assert "out of range" in outside.err
    assert "198.51.100.1" in outside.err


async def test_plan_that_does_not_name_this_host_is_refused(client: PluginClient) -> None:
    answer = await client.call(
        "IpamDriver.RequestPool",
        {
            "AddressSpace": "local",
            "Pool": "192.0.2.0/24",
            "Options": {"range.hostA": "192.0.2.0/26", "range.hostB": "192.0.2.64/26"},
        },
    )
    assert answer.status == 400
    assert '"node1"' in answer.err
    assert "hostA" in answer.err


async def test_bad_values_are_400_with_a_precise_message(client: PluginClient) -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"Pool": "192.0.2.0/33"}, "192.0.2.0/33"),
        ({"Pool": "", "SubPool": "192.0.2.0/25"}, "needs a subnet (--subnet)"),
        ({"Pool": "192.0.2.0/24", "Options": {"colour": "blue"}}, "colour"),
        ({"Pool": "192.0.2.0/24", "AddressSpace": "mars"}, "mars"),
    ]
    for fields, needle in cases:
        body: dict[str, object] = {"AddressSpace": "local"}
        body.update(fields)
        answer = await client.call("IpamDriver.RequestPool", body)
        assert answer.status == 400, (fields, answer)
        assert needle in answer.err, (fields, answer.err)


async def test_releases_are_idempotent(client: PluginClient) -> None:
    pool = await request_pool(client, Pool="192.0.2.0/24")
    addr = await address(client, pool["PoolID"], "192.0.2.9")
    release = {"PoolID": pool["PoolID"], "Address": addr.split("/")[0]}
    await client.ok("IpamDriver.ReleaseAddress", release)
    await client.ok("IpamDriver.ReleaseAddress", release)
    await client.ok("IpamDriver.ReleasePool", {"PoolID": pool["PoolID"]})
    await client.ok("IpamDriver.ReleasePool", {"PoolID": pool["PoolID"]})
    await client.ok("IpamDriver.ReleasePool", {"PoolID": "local/default/203.0.113.0/24"})


async def test_default_pools_are_handed_out_in_turn_while_held(start_daemon: StartDaemon) -> None:
    # Docker holds pools that overlap the host's routes and asks again: each ask gets the next.
    d = await start_daemon(default_pools="198.18.0.0/23:24")
    first = await request_pool(d.client)
    second = await request_pool(d.client)
    assert {first["Pool"], second["Pool"]} == {"198.18.0.0/24", "198.18.1.0/24"}
    answer = await d.client.call("IpamDriver.RequestPool", {"AddressSpace": "local"})
    assert answer.status == 500
    assert "198.18.0.0/23" in answer.err
    await d.client.ok("IpamDriver.ReleasePool", {"PoolID": first["PoolID"]})
    third = await request_pool(d.client)
    assert third["Pool"] == first["Pool"]


async def test_ipv6_pool_and_addresses(client: PluginClient) -> None:
    pool = await request_pool(client, Pool="2001:db8:1::/64", V6=True)
    got = await address(client, pool["PoolID"])
    assert ipaddress.ip_interface(got).network == ipaddress.ip_network("2001:db8:1::/64")
    assert got.endswith("/64")


async def test_hundreds_of_concurrent_requests_never_share_an_address(
    client: PluginClient,
) -> None:
    pool = await request_pool(client, Pool="198.18.0.0/22")
    results = await asyncio.gather(*(address(client, pool["PoolID"]) for _ in range(300)))
    assert len(set(results)) == 300


async def test_state_survives_a_restart(start_daemon: StartDaemon) -> None:
    d = await start_daemon()
    pool = await request_pool(d.client, Pool="192.0.2.0/24", Options={"exclude": "192.0.2.1"})
    taken = await address(d.client, pool["PoolID"])
    d = await start_daemon()  # same state directory, fresh process state
    again = await request_pool(d.client, Pool="192.0.2.0/24", Options={"exclude": "192.0.2.1"})
    assert again["PoolID"] == pool["PoolID"]
    clash = await d.client.call(
        "IpamDriver.RequestAddress",
        {"PoolID": pool["PoolID"], "Address": taken.split("/")[0]},
    )
    assert "Address already in use" in clash.err
    fresh = await address(d.client, pool["PoolID"])
    assert fresh != taken
