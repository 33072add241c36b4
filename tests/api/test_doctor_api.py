"""`POST /pymacvlan/v1/doctor` through a real daemon app on its socket, with the in-memory link
layer: networks and containers made by the protocol calls dockerd sends, the host's links changed
by the test, the report read as a script reads it.

The fake link layer has no kernel: the checks that send frames (child MAC, host shim) say
skipped, cleanly; tests/kernel/test_doctor_kernel.py runs them on real links.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from dataclasses import replace
from typing import Any

import pytest

from plugin.doctor import parent as parent_checks
from plugin.doctor.model import Check
from plugin.services import ServicesFactory, open_services
from tests.api.conftest import Clock, Daemon, PluginClient, StartDaemon
from tests.api.fake_links import FakeLinks

pytestmark = pytest.mark.asyncio

DOCTOR = "pymacvlan/v1/doctor"
NET = "d0" * 32
NET2 = "d1" * 32
SUBNET = "192.0.2.0/24"
HOUR = 3600.0


@pytest.fixture
async def d(start_daemon: StartDaemon, links: FakeLinks, clock: Clock) -> Daemon:
    factory: ServicesFactory = functools.partial(open_services, links=links, clock=clock)
    return await start_daemon(factory)


class Docker:
    """What dockerd sends for a network with pymacvlan's IPAM, and for its containers."""

    def __init__(self, client: PluginClient, network_id: str, pool_id: str) -> None:
        self.client = client
        self.network_id = network_id
        self.pool_id = pool_id

    @classmethod
    async def network(
        cls,
        client: PluginClient,
        network_id: str = NET,
        subnet: str = SUBNET,
        gateway: str | None = "first",
        **opts: str,
    ) -> Docker:
        if gateway == "first":
            gateway = str(next(ipaddress.ip_network(subnet).hosts()))
        pool = await client.ok(
            "IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": subnet, "Options": {}}
        )
        data: dict[str, Any] = {"AddressSpace": "local", "Pool": subnet}
        if gateway is not None:
            await client.ok(
                "IpamDriver.RequestAddress",
                {
                    "PoolID": pool["PoolID"],
                    "Address": gateway,
                    "Options": {"RequestAddressType": "com.docker.network.gateway"},
                },
            )
            data["Gateway"] = f"{gateway}/{subnet.split('/')[1]}"
        await client.ok(
            "NetworkDriver.CreateNetwork",
            {
                "NetworkID": network_id,
                "Options": {"com.docker.network.generic": {"parent": "lab0", **opts}},
                "IPv4Data": [data],
                "IPv6Data": [],
            },
        )
        return cls(client, network_id, pool["PoolID"])

    async def container(self, name: str, *, endpoint: bool = True) -> str:
        answer = await self.client.ok(
            "IpamDriver.RequestAddress",
            {"PoolID": self.pool_id, "Address": "", "Options": {}},
        )
        address = str(answer["Address"])
        if endpoint:
            endpoint_id = name.ljust(64, "0")
            await self.client.ok(
                "NetworkDriver.CreateEndpoint",
                {
                    "NetworkID": self.network_id,
                    "EndpointID": endpoint_id,
                    "Interface": {"Address": address},
                },
            )
            await self.client.ok(
                "NetworkDriver.Join",
                {
                    "NetworkID": self.network_id,
                    "EndpointID": endpoint_id,
                    "SandboxKey": "/var/run/docker/netns/x",
                },
            )
        return address.split("/")[0]


async def doctor(client: PluginClient, **body: Any) -> dict[str, Any]:
    answer = await client.call(DOCTOR, body)
    assert answer.status == 200, answer
    assert set(answer.body) >= {"version", "where", "generated_at", "checks"}
    return answer.body


def verdicts(report: dict[str, Any], subject: str | None = None) -> dict[str, str]:
    """check name -> verdict (of `subject`'s checks, if given)."""
    return {
        c["name"]: c["verdict"]
        for c in report["checks"]
        if subject is None or c["subject"] == subject
    }


def one(report: dict[str, Any], name: str, subject: str | None = None) -> dict[str, Any]:
    found = [
        c
        for c in report["checks"]
        if c["name"] == name and (subject is None or c["subject"] == subject)
    ]
    assert len(found) == 1, (name, subject, report["checks"])
    check: dict[str, Any] = found[0]
    return check


async def test_a_healthy_network_on_the_fake_host(d: Daemon) -> None:
    docker = await Docker.network(d.client)
    await docker.container("web")

    report = await doctor(d.client)

    assert report["where"] == "daemon"
    assert report["state_dir"] == str(d.settings.state_dir)
    assert verdicts(report, "parent lab0") == {
        "parent-exists": "ok",
        "parent-up": "ok",
        "parent-carrier": "ok",
        "parent-wifi": "ok",
        "parent-member": "ok",
    }
    state = one(report, "state")
    assert state["subject"] == f"state in {d.settings.state_dir}"
    assert state["found"] == "1 network(s), 1 endpoint(s), 2 allocation(s)"
    child = one(report, "child-mac")
    assert child["subject"] == "gateway 192.0.2.1 from lab0"
    assert child["verdict"] == "skipped"
    assert "not the kernel's" in child["found"]
    assert child["networks"] == [NET]
    for name in ("mtu", "address-claims", "lan-conflicts"):
        assert one(report, name, f"network {NET[:12]}")["verdict"] == "ok", name
    for name in ("owned-links", "endpoint-links", "stale-allocations", "stores-agree"):
        assert one(report, name)["verdict"] == "ok", name
    # What the kernel can make is read from this machine's files: whatever it says, macvlan is
    # what this network needs, and nothing else is asked.
    assert [c["subject"] for c in report["checks"] if c["name"] == "kernel-module"] == [
        "kernel module macvlan"
    ]
    assert not [c for c in report["checks"] if c["verdict"] == "problem"]


async def test_parent_problems_each_say_what_to_do(d: Daemon, links: FakeLinks) -> None:
    links.add_nic("wlan0")
    links.add_nic("wlan1", wireless=True)
    links.add_nic("lab1", up=False)
    bond = links.add_nic("bond0", kind="bond")
    await Docker.network(d.client)
    await Docker.network(d.client, NET2, "198.51.100.0/24", parent="wlan0")
    await Docker.network(d.client, "d2" * 32, "203.0.113.0/24", parent="lab1")
    await Docker.network(d.client, "d3" * 32, "198.18.0.0/24", parent="gone0")
    await Docker.network(d.client, "d4" * 32, "198.18.1.0/24", parent="wlan1", type="ipvlan")
    # What changed since (the plugin refuses a macvlan network on Wi-Fi or a bond's port): lab0
    # went into a bond, wlan0 is now a Wi-Fi card.
    links.links["lab0"] = replace(links.links["lab0"], master_index=bond.index)
    links.links["wlan0"] = replace(links.links["wlan0"], wireless=True)

    report = await doctor(d.client)

    member = one(report, "parent-member", "parent lab0")
    assert member["verdict"] == "problem"
    assert member["found"].startswith("lab0 is a port of bond bond0")
    assert member["todo"] == "use bond0 as the parent (-o parent=bond0), or take lab0 out of it"
    wifi = one(report, "parent-wifi", "parent wlan0")
    assert wifi["verdict"] == "problem"
    assert "Wi-Fi" in wifi["found"]
    assert "ipvlan" in wifi["todo"]
    down = one(report, "parent-up", "parent lab1")
    assert down["verdict"] == "problem"
    assert down["todo"].startswith("bring it up: ip link set lab1 up")
    ipvlan_wifi = one(report, "parent-wifi", "parent wlan1")
    assert ipvlan_wifi["verdict"] == "warning"
    assert ipvlan_wifi["found"].endswith("; ipvlan works with caveats")
    gone = one(report, "parent-exists", "parent gone0")
    assert gone["verdict"] == "problem"
    assert gone["found"] == "gone0 does not exist on this host; 1 network use it"


async def test_an_mtu_larger_than_the_parents(d: Daemon, links: FakeLinks) -> None:
    await Docker.network(d.client, **{"com.docker.network.driver.mtu": "1500"})
    assert one(await doctor(d.client), "mtu")["verdict"] == "ok"
    links.links["lab0"] = replace(links.links["lab0"], mtu=1400)  # someone lowered it since
    mtu = one(await doctor(d.client), "mtu")
    assert mtu["verdict"] == "problem"
    assert mtu["found"].startswith("the network's MTU 1500 is larger than the MTU of lab0 (1400)")
    assert "com.docker.network.driver.mtu=1400" in mtu["todo"]


async def test_a_parent_before_any_network(d: Daemon) -> None:
    report = await doctor(d.client, parent="lab0")
    assert verdicts(report, "parent lab0")["parent-exists"] == "ok"
    child = one(report, "child-mac")
    assert (child["verdict"], child["todo"]) == (
        "skipped",
        "give --gateway ADDR (the LAN's router) to ask it",
    )
    # Before any network, every kind the kernel may be asked for is reported.
    assert sorted(c["subject"] for c in report["checks"] if c["name"] == "kernel-module") == [
        "kernel module 8021q",
        "kernel module ipvlan",
        "kernel module macvlan",
    ]
    with_gateway = await doctor(d.client, parent="lab0", gateway="2001:db8::1")
    assert one(with_gateway, "child-mac")["subject"] == "gateway 2001:db8::1 from lab0"


async def test_one_network_by_id_or_prefix(d: Daemon) -> None:
    await Docker.network(d.client)
    await Docker.network(d.client, NET2, "198.51.100.0/24")
    report = await doctor(d.client, network=NET2[:6])
    assert {c["subject"] for c in report["checks"] if c["name"] == "mtu"} == {
        f"network {NET2[:12]}"
    }
    assert all(c["networks"] in ([], [NET2]) for c in report["checks"]), report["checks"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"network": "nope"}, "pymacvlan holds no network 'nope' on this host"),
        ({"gateway": "192.0.2.1"}, "--gateway goes with --parent"),
        ({"parent": "lab0", "gateway": "x" * 200}, "is not an IPv4 or IPv6 address"),
        ({"parent": "a/b"}, "interface name 'a/b' is not valid"),
        ({"parent": 3}, "malformed doctor request: parent: Input should be a valid string"),
        ({"extra": 1}, "malformed doctor request: extra: Extra inputs are not permitted"),
    ],
)
async def test_what_the_caller_got_wrong_is_a_400(
    d: Daemon, body: dict[str, Any], message: str
) -> None:
    await Docker.network(d.client)
    answer = await d.client.call(DOCTOR, body)
    assert answer.status == 400, answer
    assert message in answer.err
    assert "x" * 100 not in answer.err


async def test_a_stale_allocation_and_an_endpoint_the_ipam_lacks(d: Daemon, clock: Clock) -> None:
    docker = await Docker.network(d.client)
    await docker.container("web")
    lost = await docker.container("lost", endpoint=False)  # its CreateEndpoint never came
    clock.now += HOUR

    report = await doctor(d.client)

    stale = one(report, "stale-allocations")
    assert stale["verdict"] == "warning"
    assert stale["found"].startswith(
        f"1 address(es) held for endpoints that no longer exist: {lost} of"
    )
    assert stale["todo"].startswith("pymacvlan gc")
    assert one(report, "stores-agree")["verdict"] == "ok"


async def test_a_check_that_crashes_is_that_checks_problem(
    d: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    await Docker.network(d.client)

    def broken(*_: object) -> Check:
        raise KeyError("boom")

    monkeypatch.setattr(parent_checks, "mtu_check", broken)
    report = await doctor(d.client)
    mtu = one(report, "mtu")
    assert mtu["verdict"] == "problem"
    assert mtu["found"] == "the check itself failed: KeyError: 'boom'"
    # The other checks ran.
    assert one(report, "stores-agree")["verdict"] == "ok"


async def test_a_state_that_cannot_be_used(start_daemon: StartDaemon, tmp_path: Any) -> None:
    state = tmp_path / "state-file"
    state.write_text("not a directory")
    daemon = await start_daemon(functools.partial(open_services, links=_fake()), state_dir=state)
    report = await doctor(daemon.client)
    for _ in range(100):  # the daemon answers at once, while it is still loading its state
        if one(report, "state")["found"] != f"the daemon is still loading its state ({state})":
            break
        await asyncio.sleep(0.05)
        report = await doctor(daemon.client)
    assert one(report, "state")["verdict"] == "problem"
    assert "is not a directory" in one(report, "state")["found"]
    for name in ("owned-links", "endpoint-links", "stale-allocations", "stores-agree"):
        assert one(report, name)["verdict"] == "skipped", name


def _fake() -> FakeLinks:
    fake = FakeLinks()
    fake.add_nic("lab0")
    return fake
