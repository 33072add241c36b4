"""Metrics and health through the real daemon: what Prometheus and a health probe read after the
calls Docker makes (GET /pymacvlan/v1/metrics and /health on the plugin socket, and /metrics and
/health on the optional TCP listener)."""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from plugin.app import make_app, make_runner
from plugin.listener import bind_plugin_socket
from plugin.metrics_listener import MetricsListener, MetricsListenError, bind_metrics_socket
from plugin.services import open_services
from plugin.settings import Settings
from plugin.transport import PluginSite
from tests.api.conftest import Daemon, PluginClient, StartDaemon
from tests.api.fake_links import FakeLinks
from tests.harness.metrics_text import Scrape

NET = "n" * 64
EP = "e" * 64
GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}
POOL = {"AddressSpace": "local", "Pool": "192.0.2.0/24"}


async def scrape(client: PluginClient) -> Scrape:
    async with client.session.get("http://plugin/pymacvlan/v1/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return Scrape(await resp.text())


async def health(client: PluginClient) -> tuple[int, dict[str, Any]]:
    async with client.session.get("http://plugin/pymacvlan/v1/health") as resp:
        return resp.status, await resp.json()


async def health_becomes(
    client: PluginClient, status: str, seconds: float = 10.0
) -> dict[str, Any]:
    """The health once its status is `status` (it may take a moment), or the test fails."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        code, body = await health(client)
        if body["status"] == status:
            assert code == (200 if status == "ready" else 503), body
            return body
        assert loop.time() < deadline, f"health stayed {body} instead of {status!r}"
        await asyncio.sleep(0.05)


# ----------------------------------------------------------------------------- requests


async def test_calls_are_counted_by_method_and_outcome(d: Daemon) -> None:
    client = d.client
    pool = await client.ok("IpamDriver.RequestPool", POOL)
    await client.ok("IpamDriver.RequestAddress", {"PoolID": pool["PoolID"]})
    await client.ok("IpamDriver.RequestAddress", {"PoolID": pool["PoolID"]})
    malformed = await client.raw("IpamDriver.RequestAddress", b'{"PoolID": ')
    assert malformed.status == 400
    unknown = await client.call("IpamDriver.RequestAddress", {"PoolID": "local/default/none"})
    assert unknown.status == 500

    metrics = await scrape(client)
    requests = "pymacvlan_requests_total"
    assert metrics.value(requests, method="IpamDriver.RequestPool", outcome="ok") == 1
    assert metrics.value(requests, method="IpamDriver.RequestAddress", outcome="ok") == 2
    assert metrics.value(requests, method="IpamDriver.RequestAddress", outcome="refused") == 1
    assert metrics.value(requests, method="IpamDriver.RequestAddress", outcome="failed") == 1
    assert not metrics.has(requests, method="IpamDriver.RequestPool", outcome="failed")
    seconds = "pymacvlan_request_duration_seconds"
    assert metrics.value(f"{seconds}_count", method="IpamDriver.RequestAddress") == 4
    assert metrics.value(f"{seconds}_bucket", method="IpamDriver.RequestAddress", le="+Inf") == 4
    assert 0 < metrics.value(f"{seconds}_sum", method="IpamDriver.RequestAddress") < 30
    # Only protocol calls are counted (neither the scrape nor anything else).
    methods = {dict(labels).get("method") for _, labels in metrics.samples} - {None}
    assert methods == {"IpamDriver.RequestPool", "IpamDriver.RequestAddress"}


async def test_openmetrics_is_served_to_a_scraper_that_asks_for_it(d: Daemon) -> None:
    headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
    async with d.client.session.get("http://plugin/pymacvlan/v1/metrics", headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await resp.text()).endswith("# EOF\n")


# ------------------------------------------------------------------- what the state holds


async def test_pools_networks_endpoints_and_links_as_a_user_sees_them(
    start_daemon: StartDaemon, factory: Any
) -> None:
    d = await start_daemon(factory, quarantine_seconds=300.0)
    client = d.client
    pool = await client.ok("IpamDriver.RequestPool", POOL)
    pool_id = pool["PoolID"]
    await client.ok(
        "IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": "192.0.2.1", "Options": GATEWAY}
    )
    first = await client.ok("IpamDriver.RequestAddress", {"PoolID": pool_id})
    second = await client.ok("IpamDriver.RequestAddress", {"PoolID": pool_id})
    await client.ok(
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": NET,
            "Options": {"com.docker.network.generic": {"parent": "lab0.10"}},
            "IPv4Data": [{**POOL, "Gateway": "192.0.2.1/24"}],
            "IPv6Data": [],
        },
    )
    await client.ok(
        "NetworkDriver.CreateEndpoint",
        {"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": first["Address"]}},
    )
    # A container that went away: its address rests in quarantine.
    released = second["Address"].split("/")[0]
    await client.ok("IpamDriver.ReleaseAddress", {"PoolID": pool_id, "Address": released})

    metrics = await scrape(client)
    labels = {
        "pool": pool_id,
        "address_space": "local",
        "lan": "default",
        "subnet": "192.0.2.0/24",
    }
    assert metrics.value("pymacvlan_pool_size", **labels) == 254  # .1 to .254
    addresses = "pymacvlan_pool_addresses"
    assert metrics.value(addresses, **labels, state="used") == 2  # the gateway and the container
    assert metrics.value(addresses, **labels, state="quarantined") == 1
    assert metrics.value(addresses, **labels, state="free") == 251
    assert metrics.value(addresses, **labels, state="lan_in_use") == 0
    assert metrics.value("pymacvlan_networks") == 1
    assert metrics.value("pymacvlan_endpoints") == 1
    assert metrics.value("pymacvlan_owned_links", kind="vlan") == 1  # lab0.10, made for NET
    assert metrics.value("pymacvlan_owned_links", kind="macvlan") == 0
    assert metrics.has("pymacvlan_dhcp_leases", state="bound")
    assert metrics.value("pymacvlan_lan_conflicts") == 0
    assert metrics.has("pymacvlan_address_claims_total")
    assert metrics.has("pymacvlan_announcement_frames_total")

    # The pool goes with its network: so do its series.
    await client.ok("NetworkDriver.DeleteEndpoint", {"NetworkID": NET, "EndpointID": EP})
    await client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    await client.ok("IpamDriver.ReleasePool", {"PoolID": pool_id})
    metrics = await scrape(client)
    assert not metrics.has("pymacvlan_pool_size", **labels)
    assert metrics.value("pymacvlan_networks") == 0
    assert metrics.value("pymacvlan_owned_links", kind="vlan") == 0


async def test_build_info_names_the_version(d: Daemon) -> None:
    metrics = await scrape(d.client)
    [build] = [labels for name, labels in metrics.samples if name == "pymacvlan_build_info"]
    assert dict(build)["version"]
    assert dict(build)["python"].startswith("3.")


# ------------------------------------------------------------------------------- health


class GatedLinks(FakeLinks):
    """A link layer whose listing (the driver's load reads it) waits until the gate opens: the
    state stays "loading" as long as the test wants."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def list_links(self) -> list[Any]:
        await self.gate.wait()
        return await super().list_links()


async def test_health_says_loading_without_waiting_then_ready(start_daemon: StartDaemon) -> None:
    links = GatedLinks()
    links.add_nic("lab0")
    d = await start_daemon(functools.partial(open_services, links=links))
    async with asyncio.timeout(5):  # never waits for the state
        code, body = await health(d.client)
        metrics = await scrape(d.client)
    assert (code, body) == (503, {"status": "loading", "reasons": ["the state is being loaded"]})
    assert metrics.value("pymacvlan_health", status="loading") == 1
    assert metrics.value("pymacvlan_health", status="ready") == 0
    # Nothing is said about a state not read yet: no zero pools, no zero endpoints.
    assert "pymacvlan_endpoints" not in metrics.names()

    links.gate.set()
    assert await health_becomes(d.client, "ready") == {"status": "ready", "reasons": []}
    metrics = await scrape(d.client)
    assert metrics.value("pymacvlan_health", status="ready") == 1
    assert metrics.value("pymacvlan_endpoints") == 0


async def test_an_unusable_state_is_degraded_with_the_line_every_call_answers(
    start_daemon: StartDaemon, factory: Any, tmp_path: Path
) -> None:
    state = tmp_path / "not-a-directory"
    state.write_text("a file, not a directory\n")
    d = await start_daemon(factory, state_dir=state)
    body = await health_becomes(d.client, "degraded")
    refused = await d.client.call("IpamDriver.RequestPool", POOL)
    assert refused.status == 500
    assert str(state) in refused.err
    assert body["reasons"] == [f"the state cannot be used: {refused.err}"]
    metrics = await scrape(d.client)
    assert metrics.value("pymacvlan_health", status="degraded") == 1
    assert (
        metrics.value("pymacvlan_requests_total", method="IpamDriver.RequestPool", outcome="failed")
        == 1
    )
    assert "pymacvlan_pool_size" not in metrics.names()
    assert "pymacvlan_networks" not in metrics.names()


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_cluster_mode_without_etcd_is_degraded_and_counts_the_failed_calls(
    start_daemon: StartDaemon, factory: Any
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    d = await start_daemon(factory, etcd_endpoints=endpoint, etcd_timeout=0.5)
    body = await health_becomes(d.client, "degraded")
    [reason] = body["reasons"]
    assert reason.startswith(f"etcd unreachable (endpoints {endpoint}): ")
    assert "connection refused" in reason
    assert reason.endswith("allocating inside this host's blocks only")

    metrics = await scrape(d.client)
    assert metrics.value("pymacvlan_etcd_reachable") == 0
    # The node registration asks etcd for a lease first.
    grant = {"call": "lease/grant"}
    assert metrics.value("pymacvlan_etcd_requests_total", **grant, outcome="unavailable") >= 1
    assert metrics.value("pymacvlan_etcd_requests_total", **grant, outcome="ok") == 0
    calls = sum(
        metrics.value("pymacvlan_etcd_requests_total", **grant, outcome=o)
        for o in ("ok", "unavailable", "refused", "cancelled")
    )
    assert metrics.value("pymacvlan_etcd_request_duration_seconds_count", **grant) == calls
    # No block yet (none could be claimed), but the series' family is there for dashboards.
    assert "# TYPE pymacvlan_cluster_blocks gauge" in metrics.text


# ------------------------------------------------------------------------ the TCP listener


ServeTcp = Callable[..., Awaitable[tuple[PluginClient, str]]]


@pytest.fixture
async def serve_with_tcp(tmp_path: Path, factory: Any) -> AsyncIterator[ServeTcp]:
    """The daemon's app on its unix socket and the metrics listener on a free loopback port, as
    plugin/server.py serves them; (client of the socket, base URL of the TCP listener)."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def start() -> tuple[PluginClient, str]:
        settings = Settings(
            socket=tmp_path / "plugin.sock", state_dir=tmp_path / "state", node_name="node1"
        )
        app = make_app(settings, factory)
        runner = make_runner(app)
        await runner.setup()
        cleanups.append(runner.cleanup)
        sock = bind_plugin_socket(settings.socket)
        await PluginSite(runner, sock).start()
        listener = await MetricsListener.start(app, bind_metrics_socket("127.0.0.1", 0))
        cleanups.append(listener.close)
        session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(settings.socket)))
        cleanups.append(session.close)
        return PluginClient(session), f"http://{listener.address}"

    yield start
    for cleanup in reversed(cleanups):
        await cleanup()


async def test_the_tcp_listener_serves_metrics_and_health_and_nothing_else(
    serve_with_tcp: ServeTcp,
) -> None:
    client, base = await serve_with_tcp()
    await client.ok("IpamDriver.RequestPool", POOL)
    async with aiohttp.ClientSession() as tcp:
        async with tcp.get(f"{base}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            metrics = Scrape(await resp.text())
        ok = {"method": "IpamDriver.RequestPool", "outcome": "ok"}
        assert metrics.value("pymacvlan_requests_total", **ok) == 1
        assert metrics.value("pymacvlan_health", status="ready") == 1
        async with tcp.get(f"{base}/health") as resp:
            assert (resp.status, await resp.json()) == (200, {"status": "ready", "reasons": []})
        # Not the plugin protocol, not the other admin routes.
        for method, path in (
            ("POST", "/Plugin.Activate"),
            ("POST", "/NetworkDriver.GetCapabilities"),
            ("POST", "/IpamDriver.RequestPool"),
            ("GET", "/pymacvlan/v1/status"),
            ("POST", "/pymacvlan/v1/gc"),
            ("GET", "/pymacvlan/v1/metrics"),
        ):
            async with tcp.request(method, f"{base}{path}", json={}) as resp:
                assert resp.status == 404, (method, path)
        async with tcp.post(f"{base}/metrics") as resp:
            assert resp.status == 405
    # Scrapes over TCP were no protocol calls either.
    again = await scrape(client)
    assert again.value("pymacvlan_requests_total", **ok) == 1


async def test_a_metrics_address_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsListenError) as refused:
            bind_metrics_socket("127.0.0.1", port)
    assert str(refused.value) == (
        f"cannot listen for metrics on 127.0.0.1:{port}: Address already in use"
    )
