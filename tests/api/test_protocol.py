"""The plugin protocol's envelope, as dockerd sees it: handshake, methods, status codes, errors."""

from __future__ import annotations

import asyncio

import pytest

from tests.api.conftest import PluginClient

pytestmark = pytest.mark.asyncio


async def test_activate_with_an_empty_body_lists_both_interfaces(client: PluginClient) -> None:
    answer = await client.call("Plugin.Activate")
    assert answer.status == 200
    assert sorted(answer.body["Implements"]) == ["IpamDriver", "NetworkDriver"]


async def test_ipam_handshake_calls_arrive_without_a_body(client: PluginClient) -> None:
    caps = await client.ok("IpamDriver.GetCapabilities")
    assert caps == {"RequiresMACAddress": False, "RequiresRequestReplay": False}
    spaces = await client.ok("IpamDriver.GetDefaultAddressSpaces")
    assert spaces == {"LocalDefaultAddressSpace": "local", "GlobalDefaultAddressSpace": "global"}


async def test_unknown_method_is_404_so_docker_reads_not_implemented(
    client: PluginClient,
) -> None:
    answer = await client.call("IpamDriver.Frobnicate", {})
    assert answer.status == 404
    assert "unknown method 'IpamDriver.Frobnicate'" in answer.err


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "malformed RequestPool request: body: Invalid JSON"),
        (b"[1, 2]", "malformed RequestPool request: body: Input should be an object"),
        (b'{"Pool": 5}', "Pool: Input should be a valid string (got 5)"),
        (b'{"V6": "true"}', 'V6: Input should be a valid boolean (got "true")'),
        (b'{"Options": {"a": 1}}', "Options.a: Input should be a valid string (got 1)"),
        (b'{"Options": ["a"]}', "Options: Input should be an object"),
    ],
)
async def test_malformed_bodies_are_400_with_the_field_named(
    client: PluginClient, body: bytes, expected: str
) -> None:
    answer = await client.raw("IpamDriver.RequestPool", body)
    assert answer.status == 400
    assert expected in answer.err


async def test_missing_required_field_is_400(client: PluginClient) -> None:
    answer = await client.call("IpamDriver.RequestAddress", {"Address": "192.0.2.1"})
    assert answer.status == 400
    assert "PoolID: Field required" in answer.err


async def test_body_over_the_limit_is_400_not_a_hang(client: PluginClient) -> None:
    huge = b'{"Options": {"x": "' + b"a" * (2 << 20) + b'"}}'
    answer = await client.raw("IpamDriver.RequestPool", huge)
    assert answer.status == 400
    assert "too large" in answer.err


async def test_get_is_refused_with_an_err_body(client: PluginClient) -> None:
    answer = await client.raw("Plugin.Activate", b"", http_method="GET")
    assert answer.status == 400
    assert answer.err


async def test_null_maps_from_go_are_accepted(client: PluginClient) -> None:
    body = {"AddressSpace": "local", "Pool": "192.0.2.0/24", "SubPool": "", "Options": None}
    pool = await client.ok("IpamDriver.RequestPool", body)
    assert pool["Pool"] == "192.0.2.0/24"


async def test_errors_never_travel_in_a_200(client: PluginClient) -> None:
    answer = await client.call("IpamDriver.RequestAddress", {"PoolID": "nope", "Address": ""})
    assert answer.status == 500
    assert set(answer.body) == {"Err"}


async def test_calls_wait_for_the_state_load(start_daemon: object) -> None:
    """A call arriving while the state loads is answered after the load, not refused."""
    import contextlib

    from plugin.services import Services, open_services
    from plugin.settings import Settings

    gate = asyncio.Event()

    @contextlib.asynccontextmanager
    async def slow_services(settings: Settings):  # type: ignore[no-untyped-def]
        async with open_services(settings) as services:
            original = services.ipam.load

            async def slow_load() -> None:
                await gate.wait()
                await original()

            services.ipam.load = slow_load  # type: ignore[method-assign]
            services._ready.clear()
            services.start_loading()
            yield services

    d = await start_daemon(slow_services)  # type: ignore[operator]
    assert (await d.client.call("Plugin.Activate")).status == 200  # needs no state
    pending = asyncio.create_task(
        d.client.call("IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "192.0.2.0/24"})
    )
    await asyncio.sleep(0.2)
    assert not pending.done()
    gate.set()
    answer = await asyncio.wait_for(pending, 10)
    assert answer.status == 200
    _ = Services
