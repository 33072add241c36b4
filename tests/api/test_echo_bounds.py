"""Hostile sizes: a value of 900 KB in any field comes back neither in the answer nor in the log.

The daemon's own logging is configured as ``pymacvlan serve`` configures it (plugin.logs), and its
output captured, so that what a year of such requests would leave in dockerd's log is measured.
"""

from __future__ import annotations

import functools
import io
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from plugin import logs
from plugin.services import open_services
from tests.api.conftest import Daemon, StartDaemon
from tests.api.fake_links import FakeLinks
from tests.api.test_driver_api import NET, create, create_body
from tests.api.test_driver_ids import with_options

pytestmark = pytest.mark.asyncio

HUGE = "x" * 900_000
ANSWER_LIMIT = 1_000  # bytes of an error answer
LOG_LIMIT = 6_000  # bytes of log output for one call


class DaemonLog:
    """What the daemon wrote to its stderr since the last look."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def take(self) -> str:
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text


@pytest.fixture(params=["logfmt", "json"])
def daemon_log(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DaemonLog]:
    """The daemon's logging as `pymacvlan serve` sets it up, its stderr captured; structlog as it
    was afterwards."""
    saved = structlog.get_config()
    captured = DaemonLog()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", captured.buffer)
        logs.configure("info", request.param)
    yield captured
    structlog.configure(**saved)


@pytest.fixture
async def d(start_daemon: StartDaemon) -> Daemon:
    fake = FakeLinks()
    fake.add_nic("lab0")
    return await start_daemon(functools.partial(open_services, links=fake))


def pool(**fields: Any) -> dict[str, Any]:
    return {"AddressSpace": "local", "Pool": "192.0.2.0/24", "Options": {}, **fields}


CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("pool id", "IpamDriver.RequestAddress", {"PoolID": HUGE, "Address": ""}),
    ("pool id release", "IpamDriver.ReleasePool", {"PoolID": HUGE}),
    ("release address", "IpamDriver.ReleaseAddress", {"PoolID": "p", "Address": HUGE}),
    ("pool", "IpamDriver.RequestPool", pool(Pool=HUGE)),
    ("sub pool", "IpamDriver.RequestPool", pool(SubPool=HUGE)),
    ("address space", "IpamDriver.RequestPool", pool(AddressSpace=HUGE)),
    ("option key", "IpamDriver.RequestPool", pool(Options={HUGE: "1"})),
    ("lan", "IpamDriver.RequestPool", pool(Options={"lan": HUGE})),
    ("range", "IpamDriver.RequestPool", pool(Options={"range.node1": HUGE})),
    (
        "endpoint name",
        "IpamDriver.RequestAddress",
        {"PoolID": "p", "Options": {"com.docker.network.endpoint.name": HUGE}},
    ),
    ("network id", "NetworkDriver.CreateNetwork", create_body(HUGE, parent="lab0")),
    ("network id delete", "NetworkDriver.DeleteNetwork", {"NetworkID": HUGE}),
    ("driver option key", "NetworkDriver.CreateNetwork", with_options({HUGE: "1"})),
    ("driver option value", "NetworkDriver.CreateNetwork", create_body(parent=HUGE)),
    (
        "mtu",
        "NetworkDriver.CreateNetwork",
        with_options({"parent": "lab0", "com.docker.network.driver.mtu": HUGE}),
    ),
    (
        "gateway",
        "NetworkDriver.CreateNetwork",
        create_body(ipv4=[{"Pool": "192.0.2.0/24", "Gateway": HUGE}]),
    ),
    ("endpoint id", "NetworkDriver.CreateEndpoint", {"NetworkID": NET, "EndpointID": HUGE}),
    (
        "endpoint address",
        "NetworkDriver.CreateEndpoint",
        {"NetworkID": NET, "EndpointID": "ep1", "Interface": {"Address": HUGE}},
    ),
    (
        "mac",
        "NetworkDriver.CreateEndpoint",
        {"NetworkID": NET, "EndpointID": "ep1", "Interface": {"MacAddress": HUGE}},
    ),
    ("join", "NetworkDriver.Join", {"NetworkID": NET, "EndpointID": HUGE}),
]


@pytest.mark.parametrize(("what", "method", "body"), CASES, ids=[c[0] for c in CASES])
async def test_a_huge_value_is_echoed_neither_in_the_answer_nor_in_the_log(
    d: Daemon, daemon_log: DaemonLog, what: str, method: str, body: dict[str, Any]
) -> None:
    await create(d.client, parent="lab0")
    daemon_log.take()
    answer = await d.client.call(method, body)
    assert answer.status in (200, 400, 500), answer.status
    assert len(json.dumps(answer.body)) < ANSWER_LIMIT, (what, answer.body)
    logged = daemon_log.take()
    assert logged, "the call was not logged"
    assert len(logged) < LOG_LIMIT, (what, len(logged), logged[:300])


async def test_oversized_fields_are_refused_at_the_door_without_their_value(d: Daemon) -> None:
    for method, body, field in (
        ("IpamDriver.RequestAddress", {"PoolID": HUGE}, "PoolID"),
        ("IpamDriver.RequestPool", pool(Pool=HUGE), "Pool"),
        ("IpamDriver.RequestPool", pool(SubPool=HUGE), "SubPool"),
        ("IpamDriver.ReleaseAddress", {"PoolID": "p", "Address": HUGE}, "Address"),
        ("NetworkDriver.CreateNetwork", create_body(HUGE), "NetworkID"),
        ("NetworkDriver.Leave", {"NetworkID": NET, "EndpointID": HUGE}, "EndpointID"),
        (
            "NetworkDriver.CreateEndpoint",
            {"NetworkID": NET, "EndpointID": "ep1", "Interface": {"Address": HUGE}},
            "Interface.Address",
        ),
    ):
        answer = await d.client.call(method, body)
        assert answer.status == 400, (method, answer)
        assert f"{field}: " in answer.err
        assert "at most" in answer.err
        assert "900000 characters" in answer.err
        assert "xxxxxxxxxx" not in answer.err
