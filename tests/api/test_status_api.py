"""`pymacvlan status` through the real daemon: the admin route after real protocol calls, the
command line against the daemon's socket (with and without a Docker engine to ask for names),
and the state directory read offline, with the daemon stopped and while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from plugin import status_cli
from plugin.app import make_app, make_runner
from plugin.cli import build_parser
from plugin.listener import bind_plugin_socket
from plugin.services import ServicesFactory, open_services
from plugin.settings import Settings
from plugin.state_lock import state_dir_locked
from plugin.transport import PluginSite
from tests.api.conftest import Clock, Daemon, PluginClient, StartDaemon
from tests.api.fake_links import FakeLinks

pytestmark = pytest.mark.asyncio

NET = "a1" * 32
NET2 = "b2" * 32
EP = "c3" * 32
EP2 = "d4" * 32
STATUS = "/pymacvlan/v1/status"
GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}
NAME = {"com.docker.network.endpoint.name": "web"}


# ------------------------------------------------------------------------ protocol calls


async def make_network(
    client: PluginClient, network_id: str, subnet: str, gateway: str, **ipam_opts: str
) -> str:
    """What dockerd does for `docker network create -d pymacvlan --ipam-driver pymacvlan`."""
    pool = await client.ok(
        "IpamDriver.RequestPool",
        {"AddressSpace": "local", "Pool": subnet, "SubPool": "", "Options": ipam_opts},
    )
    prefix = subnet.split("/")[1]
    await client.ok(
        "IpamDriver.RequestAddress",
        {"PoolID": pool["PoolID"], "Address": gateway, "Options": GATEWAY},
    )
    await client.ok(
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": network_id,
            "Options": {"com.docker.network.generic": {"parent": "lab0"}},
            "IPv4Data": [
                {"AddressSpace": "local", "Pool": subnet, "Gateway": f"{gateway}/{prefix}"}
            ],
            "IPv6Data": [],
        },
    )
    return str(pool["PoolID"])


async def run_container(
    client: PluginClient, pool_id: str, network_id: str, endpoint_id: str, name: str = "web"
) -> str:
    """What dockerd does for `docker run --network NET --name NAME` (Docker >= 29 names it)."""
    answer = await client.ok(
        "IpamDriver.RequestAddress",
        {"PoolID": pool_id, "Address": "", "Options": {"com.docker.network.endpoint.name": name}},
    )
    address = str(answer["Address"])
    await client.ok(
        "NetworkDriver.CreateEndpoint",
        {"NetworkID": network_id, "EndpointID": endpoint_id, "Interface": {"Address": address}},
    )
    await client.ok(
        "NetworkDriver.Join",
        {"NetworkID": network_id, "EndpointID": endpoint_id, "SandboxKey": "/x"},
    )
    return address


async def stop_container(
    client: PluginClient, pool_id: str, network_id: str, endpoint_id: str, address: str
) -> None:
    ids = {"NetworkID": network_id, "EndpointID": endpoint_id}
    await client.ok("NetworkDriver.Leave", ids)
    await client.ok("NetworkDriver.DeleteEndpoint", ids)
    await client.ok(
        "IpamDriver.ReleaseAddress", {"PoolID": pool_id, "Address": address.split("/")[0]}
    )


async def remove_network(client: PluginClient, pool_id: str, network_id: str, gw: str) -> None:
    await client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": network_id})
    await client.ok("IpamDriver.ReleaseAddress", {"PoolID": pool_id, "Address": gw})
    await client.ok("IpamDriver.ReleasePool", {"PoolID": pool_id})


async def status(client: PluginClient, query: str = "") -> tuple[int, dict[str, Any]]:
    async with client.session.get(f"http://plugin{STATUS}{query}") as resp:
        return resp.status, await resp.json(content_type=None)


# ------------------------------------------------------------------------------- the route


async def test_status_shows_what_the_protocol_calls_made_and_forgets_what_they_undid(
    d: Daemon,
) -> None:
    pool_id = await make_network(
        d.client, NET, "192.0.2.0/24", "192.0.2.1", **{"range.node1": "192.0.2.10-192.0.2.19"}
    )
    address = await run_container(d.client, pool_id, NET, EP)

    code, report = await status(d.client)
    assert code == 200
    assert (report["source"], report["health"], report["node_name"]) == ("daemon", "ready", "node1")
    [network] = report["networks"]
    assert network["id"] == NET
    assert (network["kind"], network["mode"], network["parent"], network["link"]) == (
        "macvlan",
        "bridge",
        "lab0",
        "lab0",
    )
    assert network["subnets"] == [
        {"subnet": "192.0.2.0/24", "gateway": "192.0.2.1", "aux_addresses": {}}
    ]
    [endpoint] = report["endpoints"]
    assert (endpoint["id"], endpoint["network_id"], endpoint["ipv4"]) == (EP, NET, address)
    assert endpoint["container"] == "web"  # the endpoint name Docker >= 29 sends
    assert endpoint["mac"].startswith("02:")
    [pool] = report["pools"]
    assert (pool["pool_id"], pool["subnet"], pool["lan"]) == (pool_id, "192.0.2.0/24", "default")
    assert pool["host_ranges"] == ["192.0.2.10-192.0.2.19"]
    assert 'of node "node1"' in pool["host_range"]
    assert pool["options"] == {"range.node1": "192.0.2.10-192.0.2.19"}
    assert pool["counts"] == {"size": 10, "used": 2, "free": 9, "quarantined": 0, "lan_in_use": 0}
    held = {(a["address"], a["kind"], a["endpoint"]) for a in report["allocations"]}
    assert held == {("192.0.2.1", "gateway", None), (address.split("/")[0], "dynamic", "web")}
    assert report["claims"] == []
    assert report["cluster"] is None

    await stop_container(d.client, pool_id, NET, EP, address)
    _, report = await status(d.client)
    assert report["endpoints"] == []
    assert [a["kind"] for a in report["allocations"]] == ["gateway"]
    assert report["pools"][0]["counts"]["used"] == 1

    await remove_network(d.client, pool_id, NET, "192.0.2.1")
    _, report = await status(d.client)
    assert (report["networks"], report["pools"], report["allocations"]) == ([], [], [])


async def test_status_narrows_to_one_network_by_id_or_prefix(d: Daemon) -> None:
    pool1 = await make_network(d.client, NET, "192.0.2.0/24", "192.0.2.1")
    pool2 = await make_network(d.client, NET2, "198.51.100.0/24", "198.51.100.1")
    await run_container(d.client, pool1, NET, EP)
    await run_container(d.client, pool2, NET2, EP2, name="db")

    code, report = await status(d.client, f"?network={NET2[:6]}")
    assert code == 200
    assert [n["id"] for n in report["networks"]] == [NET2]
    assert [e["id"] for e in report["endpoints"]] == [EP2]
    assert [p["pool_id"] for p in report["pools"]] == [pool2]
    assert {a["pool_id"] for a in report["allocations"]} == {pool2}
    assert report["narrowed_to"] == [NET2]

    code, answer = await status(d.client, "?network=lan-" + "x" * 500)
    assert code == 400
    assert "holds no network 'lan-xxx" in answer["Err"]
    assert len(answer["Err"]) < 300  # the caller's text is shortened, never echoed whole


async def test_an_unusable_state_is_a_200_that_says_why(
    start_daemon: StartDaemon, tmp_path: Path, factory: ServicesFactory
) -> None:
    not_a_directory = tmp_path / "state-file"
    not_a_directory.write_text("not a directory")
    daemon = await start_daemon(factory, state_dir=not_a_directory)
    # Calls that need the state wait for the load; once one has failed, it has ended.
    answer = await daemon.client.call("IpamDriver.RequestPool", {"AddressSpace": "local"})
    assert answer.status == 500

    code, report = await status(daemon.client)
    assert code == 200
    assert report["health"] == "unusable"
    [problem] = report["problems"]
    assert str(not_a_directory) in problem
    assert report["networks"] == []


# ------------------------------------------------------------------------ the command line


@contextlib.asynccontextmanager
async def fake_docker(
    socket: Path, networks: dict[str, str], containers: dict[str, str]
) -> AsyncIterator[None]:
    """A Docker engine API that knows network names (`networks`: id -> name) and which
    container each endpoint is (`containers`: endpoint id -> name), on `socket`."""

    async def listing(request: web.Request) -> web.Response:
        return web.json_response([{"Id": i, "Name": n} for i, n in networks.items()])

    async def inspect(request: web.Request) -> web.Response:
        network_id = request.match_info["id"]
        if network_id not in networks:
            return web.json_response({"message": "network not found"}, status=404)
        attached = {
            f"container-{ep}": {"Name": name, "EndpointID": ep} for ep, name in containers.items()
        }
        return web.json_response({"Id": network_id, "Containers": attached})

    async def plugin(request: web.Request) -> web.Response:
        return web.json_response({"message": "plugin not found"}, status=404)

    app = web.Application()
    app.router.add_get("/networks", listing)
    app.router.add_get("/networks/{id}", inspect)
    app.router.add_get("/plugins/{name}/json", plugin)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, str(socket)).start()
    try:
        yield
    finally:
        await runner.cleanup()


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`pymacvlan status ARGV` as the command line runs it (its blocking HTTP client in a
    thread: the daemon answers on this test's event loop)."""
    args = build_parser().parse_args(["status", *argv])
    capsys.readouterr()  # what the daemon in this process logged before
    code = await asyncio.to_thread(status_cli.run, args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def no_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """DOCKER_HOST names a socket where no engine answers (until a test starts one there)."""
    socket = tmp_path / "docker.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket}")
    return socket


async def test_the_command_line_asks_the_daemon_and_docker_for_names(
    d: Daemon, no_docker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool_id = await make_network(d.client, NET, "192.0.2.0/24", "192.0.2.1")
    address = await run_container(d.client, pool_id, NET, EP)
    where = ["--socket", str(d.settings.socket)]

    async with fake_docker(no_docker, {NET: "lan"}, {EP: "frontend"}):
        code, out, err = await cli(capsys, *where)
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == f"pymacvlan answers on {d.settings.socket}"
        network_row = lines[lines.index("NETWORKS") + 2]
        assert network_row.split()[:6] == [NET[:12], "lan", "macvlan", "bridge", "lab0", "-"]
        endpoint_row = lines[lines.index("ENDPOINTS") + 2]
        assert endpoint_row.split()[:4] == [EP[:12], "lan", "frontend", address]
        pool_row = lines[lines.index("POOLS") + 2]
        assert pool_row.split() == [
            "192.0.2.0/24",
            "default",
            "192.0.2.1-192.0.2.254",
            "254",
            "2",
            "252",
            "0",
            "0",
        ]
        tables = lines[lines.index("NETWORKS") :]
        assert max(len(line) for line in tables) <= 100

        code, out, err = await cli(capsys, *where, "--json", "--network", "lan")
        assert (code, err) == (0, "")
        report = json.loads(out)
        assert [(n["id"], n["name"]) for n in report["networks"]] == [(NET, "lan")]
        assert [(e["id"], e["container"], e["ipv4"]) for e in report["endpoints"]] == [
            (EP, "frontend", address)
        ]
        assert report["names_problem"] is None

        code, out, err = await cli(capsys, *where, "--network", "other")
        assert (code, out) == (1, "")
        assert err.count("\n") == 1
        assert "holds no network 'other'" in err

    # Docker gone: the same answer, without names, and the output says so.
    code, out, err = await cli(capsys, *where)
    assert (code, err) == (0, "")
    assert "names: name unknown: Docker does not answer on" in out
    endpoint_row = out.splitlines()[out.splitlines().index("ENDPOINTS") + 2]
    assert "web" in endpoint_row  # the endpoint name the daemon kept
    code, out, _ = await cli(capsys, *where, "--json")
    assert json.loads(out)["names_problem"].startswith("Docker does not answer on")


# ------------------------------------------------------------------------------ offline


@contextlib.asynccontextmanager
async def running(settings: Settings, factory: ServicesFactory) -> AsyncIterator[PluginClient]:
    """The daemon on `settings`, stopped (its socket removed) when the block ends."""
    runner = make_runner(make_app(settings, factory))
    await runner.setup()
    sock = bind_plugin_socket(settings.socket)
    await PluginSite(runner, sock).start()
    connector = aiohttp.UnixConnector(path=str(settings.socket))
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            yield PluginClient(session)
    finally:
        await runner.cleanup()
        sock.unlink_if_ours()
        sock.close()


def listing(directory: Path) -> dict[str, tuple[int, int, int]]:
    """Every file of `directory`: (size, mtime in ns, mode): what a read must leave as it was."""
    return {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_mode)
        for p in sorted(directory.iterdir())
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        socket=tmp_path / "plugin.sock",
        state_dir=tmp_path / "state",
        node_name="node1",
        quarantine_seconds=600.0,
    )


async def test_a_stopped_daemon_is_read_from_its_state_directory_without_a_change(
    settings: Settings,
    factory: ServicesFactory,
    no_docker: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with running(settings, factory) as client:
        pool_id = await make_network(client, NET, "192.0.2.0/24", "192.0.2.1")
        kept = await run_container(client, pool_id, NET, EP)
        gone = await run_container(client, pool_id, NET, EP2, name="old")
        await stop_container(client, pool_id, NET, EP2, gone)  # rests in quarantine
        _, live = await status(client)
    before = listing(settings.state_dir)
    where = ["--socket", str(settings.socket), "--state-dir", str(settings.state_dir)]

    code, out, err = await cli(capsys, *where)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"the daemon is not running; read from {settings.state_dir}"
    assert "state: ready" in lines[2]
    assert kept in lines[lines.index("ENDPOINTS") + 2]
    assert "name unknown" in out

    code, out, _ = await cli(capsys, *where, "--json")
    offline = json.loads(out)
    assert offline["source"] == "state-dir"
    assert offline["claims"] is None  # seen by a running daemon only
    for part in ("networks", "endpoints", "owned_links", "pools", "allocations"):
        assert offline[part] == live[part], part
    assert offline["pools"][0]["counts"]["quarantined"] == 1
    assert listing(settings.state_dir) == before


async def test_the_state_directory_is_read_while_the_daemon_runs(
    settings: Settings, factory: ServicesFactory, no_docker: Path
) -> None:
    from plugin.admin.offline import read_state_dir

    async with running(settings, factory) as client:
        pool_id = await make_network(client, NET, "192.0.2.0/24", "192.0.2.1")
        address = await run_container(client, pool_id, NET, EP)
        with state_dir_locked(settings.state_dir):  # as `pymacvlan serve` holds it
            before = listing(settings.state_dir)
            assert {"driver.sqlite3-wal", "ipam.sqlite3-wal"} <= set(before)  # the daemon's

            report = await asyncio.to_thread(read_state_dir, settings.state_dir, "node1", 0.0)
            assert report.health == "ready"
            assert [e.ipv4 for e in report.endpoints] == [address]
            assert listing(settings.state_dir) == before
        # ... and the daemon goes on writing.
        await stop_container(client, pool_id, NET, EP, address)
        _, live = await status(client)
        assert live["endpoints"] == []


@pytest.mark.parametrize("case", ["missing", "a file", "empty"])
async def test_no_daemon_and_no_state_is_exit_1_with_one_line(
    tmp_path: Path, no_docker: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    state_dir = tmp_path / "state"
    if case == "a file":
        state_dir.write_text("")
    elif case == "empty":
        state_dir.mkdir()
    code, out, err = await cli(
        capsys, "--socket", str(tmp_path / "none.sock"), "--state-dir", str(state_dir)
    )
    assert (code, out) == (1, "")
    assert err.count("\n") == 1, err
    assert err.startswith("pymacvlan status: the daemon does not answer")
    assert str(state_dir) in err
    if case == "empty":
        assert list(state_dir.iterdir()) == []


# --------------------------------------------------------------------- stale allocations

HOUR = 3600.0
GC = "pymacvlan/v1/gc"
CERTAIN = "unused: the pymacvlan network driver lists no user of it"


@pytest.fixture
async def aged(start_daemon: StartDaemon, links: FakeLinks, clock: Clock) -> Daemon:
    """The daemon on the fake link layer, on the test's clock."""
    return await start_daemon(functools.partial(open_services, links=links, clock=clock))


async def test_a_stale_allocation_is_shown_until_gc_frees_it(
    aged: Daemon, clock: Clock, no_docker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = aged.client
    pool_id = await make_network(client, NET, "192.0.2.0/24", "192.0.2.1")
    await run_container(client, pool_id, NET, EP)
    lost = (await run_container(client, pool_id, NET, EP2, name="lost")).split("/")[0]
    ids = {"NetworkID": NET, "EndpointID": EP2}
    await client.ok("NetworkDriver.Leave", ids)
    await client.ok("NetworkDriver.DeleteEndpoint", ids)  # and dockerd crashed: no release
    lost_at = clock.now
    clock.now += 1
    # A pool of Docker's own macvlan driver with this IPAM: only Docker knows its endpoints.
    other = await client.ok(
        "IpamDriver.RequestPool",
        {"AddressSpace": "local", "Pool": "198.51.100.0/24", "SubPool": "", "Options": {}},
    )
    answer = await client.ok(
        "IpamDriver.RequestAddress", {"PoolID": other["PoolID"], "Address": "", "Options": {}}
    )
    unsure = str(answer["Address"]).split("/")[0]

    _, report = await status(client)
    assert report["stale_allocations"] == []  # within the grace period: perhaps on its way

    clock.now += HOUR
    _, report = await status(client)
    stale, suspect = report["stale_allocations"]
    assert stale == {
        "pool_id": pool_id,
        "subnet": "192.0.2.0/24",
        "address": lost,
        "kind": "dynamic",
        "endpoint": "lost",
        "allocated_at": lost_at,
        "verdict": "stale",
        "reason": CERTAIN,
    }
    assert (suspect["address"], suspect["verdict"]) == (unsure, "suspect")
    assert suspect["reason"].startswith("not certain: Docker was not asked")
    _, narrowed = await status(client, f"?network={NET[:8]}")
    assert narrowed["stale_allocations"] == [stale]

    # The same, read from the state directory without the daemon's help.
    from plugin.admin.offline import read_state_dir

    offline = await asyncio.to_thread(read_state_dir, aged.settings.state_dir, "node1", clock.now)
    assert [s.model_dump() for s in offline.stale_allocations] == [stale, suspect]

    code, out, _ = await cli(capsys, "--socket", str(aged.settings.socket))
    assert code == 0
    lines = out.splitlines()
    at = lines.index("STALE ALLOCATIONS (certain without Docker)")
    assert lines[at + 1].split() == ["ADDRESS", "SUBNET", "KIND", "ENDPOINT", "NAME", "HELD", "FOR"]
    assert lines[at + 2].split()[:4] == [lost, "192.0.2.0/24", "dynamic", "lost"]
    assert lines[at + 3].startswith(
        "1 suspect (perhaps stale, not certain without Docker): not certain: Docker was not asked"
    )
    hint = lines.index("free them with `pymacvlan gc` (add --dry-run to see first)")
    assert max(len(line) for line in lines[at : hint + 1]) <= 100

    freed = await client.call(GC, {"docker_problem": "not asked by this test"})
    assert [(a["address"], a["action"]) for a in freed.body["allocations"]] == [
        (lost, "freed"),
        (unsure, "suspect"),
    ]
    _, report = await status(client)
    assert [s["address"] for s in report["stale_allocations"]] == [unsure]
    await client.ok("IpamDriver.ReleaseAddress", {"PoolID": other["PoolID"], "Address": unsure})
    _, report = await status(client)
    assert report["stale_allocations"] == []
    _, out, _ = await cli(capsys, "--socket", str(aged.settings.socket))
    assert "STALE ALLOCATIONS" not in out
    assert "pymacvlan gc" not in out
