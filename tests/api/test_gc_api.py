"""`POST /pymacvlan/v1/gc` on the daemon's socket: allocations made by real protocol calls, aged
by the IPAM's clock, judged against a Docker view passed to the route (the command line is what
asks Docker; that part is tested against a real dockerd in tests/e2e) or against the driver's
own endpoints; and `pymacvlan gc` itself against this daemon, without Docker."""

from __future__ import annotations

import argparse
import asyncio
import functools
from pathlib import Path
from typing import Any

import pytest

from plugin import cli, gc_cli
from plugin.services import ServicesFactory, open_services
from tests.api.conftest import Answer, Clock, Daemon, PluginClient, StartDaemon
from tests.api.fake_links import FakeLinks

pytestmark = pytest.mark.asyncio

GC = "pymacvlan/v1/gc"
NET = "a" * 64
SUBNET = "192.0.2.0/24"
GATEWAY_ADDRESS = "192.0.2.1"
HOUR = 3600.0


@pytest.fixture
async def d(start_daemon: StartDaemon, links: FakeLinks, clock: Clock) -> Daemon:
    factory: ServicesFactory = functools.partial(open_services, links=links, clock=clock)
    return await start_daemon(factory)


class Docker:
    """What dockerd sends for one network and its containers, in order."""

    def __init__(self, client: PluginClient, pool_id: str) -> None:
        self.client = client
        self.pool_id = pool_id

    @classmethod
    async def network(cls, client: PluginClient, sub_pool: str = "192.0.2.8/30") -> Docker:
        """`docker network create -d pymacvlan --ipam-driver pymacvlan --subnet 192.0.2.0/24
        --ip-range <sub_pool> --gateway 192.0.2.1 -o parent=lab0`."""
        pool = await client.ok(
            "IpamDriver.RequestPool",
            {"AddressSpace": "local", "Pool": SUBNET, "SubPool": sub_pool, "Options": {}},
        )
        await client.ok(
            "IpamDriver.RequestAddress",
            {
                "PoolID": pool["PoolID"],
                "Address": GATEWAY_ADDRESS,
                "Options": {"RequestAddressType": "com.docker.network.gateway"},
            },
        )
        await client.ok(
            "NetworkDriver.CreateNetwork",
            {
                "NetworkID": NET,
                "Options": {"com.docker.network.generic": {"parent": "lab0"}},
                "IPv4Data": [
                    {"AddressSpace": "local", "Pool": SUBNET, "Gateway": f"{GATEWAY_ADDRESS}/24"}
                ],
                "IPv6Data": [],
            },
        )
        return cls(client, pool["PoolID"])

    async def address(self, name: str) -> str:
        answer = await self.client.ok(
            "IpamDriver.RequestAddress",
            {
                "PoolID": self.pool_id,
                "Address": "",
                "Options": {"com.docker.network.endpoint.name": name},
            },
        )
        return str(answer["Address"]).split("/")[0]

    async def container(self, name: str) -> str:
        """`docker run --name NAME`: an address, then its endpoint, joined."""
        address = await self.address(name)
        endpoint = name.ljust(64, "0")
        await self.client.ok(
            "NetworkDriver.CreateEndpoint",
            {"NetworkID": NET, "EndpointID": endpoint, "Interface": {"Address": f"{address}/24"}},
        )
        await self.client.ok(
            "NetworkDriver.Join",
            {"NetworkID": NET, "EndpointID": endpoint, "SandboxKey": "/var/run/docker/netns/x"},
        )
        return address

    async def crashed_container(self, name: str) -> str:
        """A container removed while dockerd crashed: its endpoint went, its ReleaseAddress
        never came."""
        address = await self.container(name)
        endpoint = name.ljust(64, "0")
        await self.client.ok("NetworkDriver.Leave", {"NetworkID": NET, "EndpointID": endpoint})
        await self.client.ok(
            "NetworkDriver.DeleteEndpoint", {"NetworkID": NET, "EndpointID": endpoint}
        )
        return address


async def gc(client: PluginClient, **body: Any) -> dict[str, Any]:
    answer = await client.call(GC, body)
    assert answer.status == 200, answer
    return answer.body


def view(*addresses: str, asked_at: float, subnet: str = SUBNET) -> dict[str, Any]:
    return {"asked_at": asked_at, "subnets": {subnet: list(addresses)}}


def by_action(answer: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for item in answer["allocations"]:
        found.setdefault(item["action"], []).append(item["address"])
    return found


async def taken(client: PluginClient, pool_id: str, address: str) -> Answer:
    """RequestAddress for exactly `address` (--ip): refused while it is held."""
    return await client.call(
        "IpamDriver.RequestAddress",
        {
            "PoolID": pool_id,
            "Address": address,
            "Options": {"com.docker.network.endpoint.name": "probe"},
        },
    )


async def test_with_dockers_view_exactly_the_address_docker_lacks_is_freed_and_used_again(
    d: Daemon, clock: Clock
) -> None:
    docker = await Docker.network(d.client)
    web = await docker.container("web")
    db = await docker.container("db")
    lost = await docker.crashed_container("lost")
    assert (web, db, lost) == ("192.0.2.8", "192.0.2.9", "192.0.2.10")
    clock.now += HOUR

    answer = await gc(
        d.client,
        docker=view(GATEWAY_ADDRESS, web, db, asked_at=clock.now - 1),
        grace_seconds=600,
    )
    assert by_action(answer) == {"freed": [lost]}
    [item] = answer["allocations"]
    assert item["pool_id"] == docker.pool_id
    assert item["endpoint"] == "lost"
    assert item["age_seconds"] == HOUR
    assert item["reason"] == ("unused: Docker and the pymacvlan network driver list no user of it")
    assert answer["kept"] == {"gateway": 1, "in_use": 2}
    assert answer["judged"] == 4

    # The freed address is handed out again when its turn comes (the range is .8-.11).
    assert await docker.container("next") == "192.0.2.11"
    assert await docker.container("again") == lost
    # Nothing else was touched: a second run finds nothing.
    clock.now += HOUR
    again = await gc(
        d.client, docker=view(GATEWAY_ADDRESS, web, db, "192.0.2.11", lost, asked_at=clock.now)
    )
    assert by_action(again) == {}


async def test_a_dry_run_frees_nothing(d: Daemon, clock: Clock) -> None:
    docker = await Docker.network(d.client)
    web = await docker.container("web")
    lost = await docker.crashed_container("lost")
    clock.now += HOUR
    body = {"docker": view(GATEWAY_ADDRESS, web, asked_at=clock.now), "dry_run": True}
    assert by_action(await gc(d.client, **body)) == {"would_free": [lost]}
    refused = await taken(d.client, docker.pool_id, lost)
    assert refused.status != 200
    assert "Address already in use: 192.0.2.9" in refused.err
    # Still there for the real run.
    body["dry_run"] = False
    assert by_action(await gc(d.client, **body)) == {"freed": [lost]}


async def test_young_allocations_and_gateways_are_kept_even_if_docker_lacks_them(
    d: Daemon, clock: Clock
) -> None:
    docker = await Docker.network(d.client)
    old = await docker.address("old")
    clock.now += HOUR
    young = await docker.address("young")  # requested now: its CreateEndpoint is on its way
    clock.now += 60
    answer = await gc(d.client, docker=view(asked_at=clock.now), grace_seconds=600)
    assert by_action(answer) == {"freed": [old], "kept": [young]}
    [kept] = [i for i in answer["allocations"] if i["action"] == "kept"]
    assert kept["why"] == "young"
    assert "within the grace period of 600 s" in kept["reason"]
    assert answer["kept"] == {"gateway": 1, "young": 1}
    assert (await taken(d.client, docker.pool_id, GATEWAY_ADDRESS)).status != 200
    assert (await taken(d.client, docker.pool_id, young)).status != 200


async def test_an_allocation_made_after_docker_was_asked_is_kept(d: Daemon, clock: Clock) -> None:
    docker = await Docker.network(d.client)
    asked_at = clock.now
    clock.now += 5
    fresh = await docker.address("fresh")
    answer = await gc(d.client, docker=view(asked_at=asked_at), grace_seconds=0)
    assert by_action(answer) == {"kept": [fresh]}
    assert answer["allocations"][0]["why"] == "after_asked"


async def test_without_docker_the_drivers_endpoints_make_it_certain(
    d: Daemon, clock: Clock
) -> None:
    docker = await Docker.network(d.client)
    web = await docker.container("web")
    lost = await docker.crashed_container("lost")
    clock.now += HOUR
    answer = await gc(d.client, docker_problem="Docker could not be asked: refused")
    assert by_action(answer) == {"freed": [lost]}
    assert answer["allocations"][0]["reason"] == (
        "unused: the pymacvlan network driver lists no user of it"
    )
    assert answer["kept"] == {"gateway": 1, "in_use": 1}
    assert (await taken(d.client, docker.pool_id, web)).status != 200


async def test_without_docker_a_pool_of_another_network_driver_is_only_suspect(
    d: Daemon, clock: Clock
) -> None:
    """`docker network create -d macvlan --ipam-driver pymacvlan`: Docker's own driver, whose
    endpoints only Docker knows. Nothing there is certain without Docker."""
    pool = await d.client.ok(
        "IpamDriver.RequestPool",
        {"AddressSpace": "local", "Pool": "198.51.100.0/24", "SubPool": "", "Options": {}},
    )
    answer = await d.client.ok(
        "IpamDriver.RequestAddress",
        {"PoolID": pool["PoolID"], "Address": "", "Options": {}},
    )
    address = answer["Address"].split("/")[0]
    clock.now += HOUR
    result = await gc(d.client, docker_problem="Docker could not be asked: no socket")
    assert by_action(result) == {"suspect": [address]}
    assert result["allocations"][0]["reason"] == (
        "not certain: Docker could not be asked: no socket; no pymacvlan network uses "
        "198.51.100.0/24 (networks of another network driver hold it, whose endpoints only "
        "Docker knows)"
    )
    # With Docker's answer it is certain.
    result = await gc(d.client, docker=view(asked_at=clock.now, subnet="198.51.100.0/24"))
    assert by_action(result) == {"freed": [address]}


async def test_a_pool_docker_has_no_network_for_is_left_to_the_driver(
    d: Daemon, clock: Clock
) -> None:
    """Docker, asked, has no network on a pool (another engine, or a network it lost): its
    silence proves nothing there; what the driver's endpoints make certain still is."""
    docker = await Docker.network(d.client)
    lost = await docker.crashed_container("lost")
    pool = await d.client.ok(
        "IpamDriver.RequestPool",
        {"AddressSpace": "local", "Pool": "198.51.100.0/24", "SubPool": "", "Options": {}},
    )
    other = await d.client.ok(
        "IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "", "Options": {}}
    )
    address = other["Address"].split("/")[0]
    clock.now += HOUR
    answer = await gc(d.client, docker=view(asked_at=clock.now, subnet="203.0.113.0/24"))
    assert by_action(answer) == {"freed": [lost], "suspect": [address]}
    [freed, suspect] = answer["allocations"]
    assert freed["reason"] == "unused: the pymacvlan network driver lists no user of it"
    assert suspect["reason"].startswith(
        "not certain: Docker has no network with this plugin's IPAM driver on 198.51.100.0/24"
    )


async def test_docker_and_the_driver_disagreeing_is_suspect(d: Daemon, clock: Clock) -> None:
    docker = await Docker.network(d.client)
    web = await docker.container("web")
    clock.now += HOUR
    answer = await gc(d.client, docker=view(GATEWAY_ADDRESS, asked_at=clock.now))
    assert by_action(answer) == {"suspect": [web]}
    assert answer["allocations"][0]["reason"] == (
        "the pymacvlan network driver uses it but Docker does not: not freed"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"grace_seconds": -1}, "grace_seconds: Input should be greater than or equal to 0"),
        ({"dry_run": "yes"}, "dry_run: Input should be a valid boolean"),
        ({"colour": 1}, "colour: Extra inputs are not permitted"),
        ({"docker": {"subnets": {}}}, "docker.asked_at: Field required"),
        (
            {"docker": {"asked_at": 0, "subnets": {"192.0.2.0/24": ["x" * 100]}}},
            "String should have at most 64 characters (got 100 characters)",
        ),
        (
            {"docker": {"asked_at": 0, "subnets": {"192.0.2.0/24": ["2001:db8::1"]}}},
            "address 2001:db8::1 in Docker's view of 192.0.2.0/24 is not an IPv4 address",
        ),
        (
            {"docker": {"asked_at": 0, "subnets": {"192.0.2.1/24": []}}},
            "host bits set; did you mean 192.0.2.0/24?",
        ),
    ],
)
async def test_malformed_requests_are_the_callers_fault(
    d: Daemon, body: dict[str, Any], expected: str
) -> None:
    answer = await d.client.call(GC, body)
    assert answer.status == 400, answer
    assert expected in answer.err


async def test_only_post(d: Daemon) -> None:
    answer = await d.client.raw(GC, b"", http_method="GET")
    assert answer.status == 400
    assert answer.err == "Method Not Allowed"


# ------------------------------------------------------------------ the command


def _args(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["gc", *argv])


async def test_the_command_without_docker_frees_and_prints_each_allocation(
    d: Daemon, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    docker = await Docker.network(d.client)
    await docker.container("web")
    lost = await docker.crashed_container("lost")
    clock.now += HOUR
    socket = str(d.settings.socket)
    dry = _args("--socket", socket, "--without-docker", "--dry-run")
    assert await asyncio.to_thread(gc_cli.run, dry) == 0
    out = capsys.readouterr().out
    assert f"would free  {lost}  pool {docker.pool_id}  dynamic endpoint lost  age 60 min" in out
    assert "Docker: Docker was not asked (--without-docker)" in out
    assert "3 allocations judged (grace 600 s, dry run): 1 would free; kept: 1 gateway" in out

    assert await asyncio.to_thread(gc_cli.run, _args("--socket", socket, "--without-docker")) == 0
    out = capsys.readouterr().out
    assert f"freed       {lost}  pool {docker.pool_id}" in out
    assert (await taken(d.client, docker.pool_id, lost)).status == 200


async def test_the_command_needs_the_running_daemon(tmp_path: Path) -> None:
    args = _args("--socket", str(tmp_path / "none.sock"), "--without-docker")
    assert await asyncio.to_thread(gc_cli.run, args) == 1
