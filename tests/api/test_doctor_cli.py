"""`pymacvlan doctor` itself: against a daemon's socket (the daemon of tests/api, on the fake link
layer), and in-process when no daemon answers; its exit status, text and --json.

The command line is synchronous (plain HTTP over the unix socket): it runs on a worker thread
while the daemon serves on the test's event loop. In-process it works in this process's network
namespace: here only with names no link of this machine has, so that nothing is made or sent
(tests/kernel/test_doctor_kernel.py runs it inside a lab namespace).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from plugin import cli
from plugin.services import open_services
from tests.api.conftest import Daemon, PluginClient, StartDaemon
from tests.api.fake_links import FakeLinks
from tests.harness.prereq import require_root

pytestmark = pytest.mark.asyncio

NET = "c0" * 32


async def network(client: PluginClient, parent: str = "lab0") -> None:
    await client.ok(
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": NET,
            "Options": {"com.docker.network.generic": {"parent": parent}},
            "IPv4Data": [
                {"AddressSpace": "local", "Pool": "192.0.2.0/24", "Gateway": "192.0.2.1/24"}
            ],
            "IPv6Data": [],
        },
    )


async def doctor(capsys: pytest.CaptureFixture[str], *argv: str) -> int:
    """Run the command; what was printed before (the daemon's log) is dropped."""
    capsys.readouterr()
    return await asyncio.to_thread(cli.main, ["doctor", *argv])


def printed(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    captured = capsys.readouterr()
    return captured.out, captured.err


async def test_against_the_daemon_all_ok_is_exit_0(
    d: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    await network(d.client)

    assert await doctor(capsys, "--socket", str(d.settings.socket), "--json") == 0
    out, err = printed(capsys)
    report = json.loads(out)
    assert report["where"] == "daemon"
    assert {c["name"] for c in report["checks"]} >= {"state", "parent-exists", "child-mac", "mtu"}
    assert err == ""

    assert await doctor(capsys, "--socket", str(d.settings.socket)) == 0
    out, _ = printed(capsys)
    assert out.startswith(f"pymacvlan doctor: checks run by the daemon (socket {d.settings.socket}")
    assert "\nok       parent-exists  parent lab0\n" in out
    assert "\nskipped  child-mac  gateway 192.0.2.1 from lab0\n" in out
    assert out.rstrip().splitlines()[-1].endswith("skipped")


async def test_a_problem_is_exit_1_and_comes_first(
    d: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    await network(d.client, parent="gone0")
    assert await doctor(capsys, "--socket", str(d.settings.socket)) == 1
    out, _ = printed(capsys)
    lines = out.splitlines()
    assert lines[2] == "PROBLEM  parent-exists  parent gone0"
    assert lines[3] == "         gone0 does not exist on this host; 1 network use it"
    assert lines[4].startswith("         what to do: check the name (ip link)")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gateway", "192.0.2.1"], "--gateway goes with --parent"),
        (["--parent", "lab0", "--gateway", "nope"], "gateway 'nope' is not an IPv4 or IPv6"),
        (["--network", "nope"], "pymacvlan holds no network 'nope' on this host"),
    ],
)
async def test_a_wrong_command_line_is_exit_2(
    d: Daemon,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{d.settings.socket.parent / 'no-docker.sock'}")
    await network(d.client)
    assert await doctor(capsys, "--socket", str(d.settings.socket), *argv) == 2
    _, err = printed(capsys)
    assert err.startswith("pymacvlan doctor: ")
    assert message in err


async def test_in_process_when_no_daemon_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_root()
    absent = tmp_path / "absent.sock"
    argv = ["--socket", str(absent), "--state-dir", str(tmp_path / "state"), "--json"]

    # A parent before any network, before pymacvlan ever ran: the state is no problem then.
    assert await doctor(capsys, *argv, "--parent", "pmvnope0") == 1
    out, _ = printed(capsys)
    report: dict[str, Any] = json.loads(out)
    assert report["where"] == "in-process"
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["state"]["verdict"] == "skipped"
    assert checks["state"]["found"] == f"the state directory {tmp_path / 'state'} does not exist"
    assert checks["parent-exists"]["verdict"] == "problem"
    assert checks["child-mac"]["verdict"] == "skipped"

    # Without --parent, a state that cannot be read is the problem.
    assert await doctor(capsys, *argv) == 1
    report = json.loads(printed(capsys)[0])
    assert next((c["name"], c["verdict"]) for c in report["checks"]) == ("state", "problem")


class Clock:
    """The daemon's clock: an hour behind this machine's, so what it allocates is old already."""

    def __init__(self) -> None:
        self.now = time.time() - 3600

    def __call__(self) -> float:
        return self.now


async def test_in_process_a_stale_allocation_is_judged_from_the_state_directory(
    start_daemon: StartDaemon,
    links: FakeLinks,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_root()
    links.add_nic("pmvnope0")  # a name no link of this machine has: nothing is made or sent
    daemon = await start_daemon(functools.partial(open_services, links=links, clock=Clock()))
    await network(daemon.client, parent="pmvnope0")
    pool = await daemon.client.ok(
        "IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "192.0.2.0/24", "Options": {}}
    )
    gateway = {"RequestAddressType": "com.docker.network.gateway"}
    await daemon.client.ok(
        "IpamDriver.RequestAddress",
        {"PoolID": pool["PoolID"], "Address": "192.0.2.1", "Options": gateway},
    )
    answer = await daemon.client.ok(
        "IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "", "Options": {}}
    )
    lost = str(answer["Address"]).split("/")[0]  # its endpoint never came (dockerd crashed)
    argv = [
        "--socket",
        str(tmp_path / "absent.sock"),
        "--state-dir",
        str(daemon.settings.state_dir),
    ]

    await doctor(capsys, *argv, "--json")
    report: dict[str, Any] = json.loads(printed(capsys)[0])
    assert report["where"] == "in-process"
    checks = {c["name"]: c for c in report["checks"]}
    stale = checks["stale-allocations"]
    assert stale["verdict"] == "warning", stale
    assert stale["found"].startswith(
        f"1 address(es) held for endpoints that no longer exist: {lost} of 192.0.2.0/24 "
        "(dynamic, 60 min old): unused: the pymacvlan network driver lists no user of it"
    )
    assert "pymacvlan gc" in stale["todo"]


async def test_in_process_needs_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert await doctor(capsys, "--socket", str(tmp_path / "absent.sock")) == 1
    _, err = printed(capsys)
    assert err.startswith(f"pymacvlan doctor: no daemon answers on {tmp_path / 'absent.sock'}")
    assert "start the daemon, or run this as root" in err
