"""`pymacvlan serve` with a damaged, read-only, lost or mismatched state: what the user sees.

A state problem never stops the daemon (its socket already answers Docker): it logs one line that
names the file and what to do, and every call that needs state answers 500 with that same line.
Lost state is never started over silently.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import ClientSession, UnixConnector, web

from plugin.app import make_app, make_runner
from plugin.services import open_services
from plugin.settings import Settings
from tests.api.conftest import PluginClient
from tests.api.fake_links import FakeLinks
from tests.api.serve_process import activate, call, serve, stop, wait_for_socket

NET = "n" * 64
EP = "e" * 64
GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}
TROUBLESHOOTING = "see docs/install.md#troubleshooting"
POOL = {"AddressSpace": "local", "Pool": "198.51.100.0/24"}


# ------------------------------------------------------------------------------- set-up


async def _seed(tmp_path: Path, state_dir: Path) -> None:
    """What `docker network create -d pymacvlan --ipam-driver pymacvlan --subnet 192.0.2.0/24
    --gateway 192.0.2.1` and one `docker run` leave in the state: 1 pool, 2 allocations (gateway
    and container), 1 network, 1 endpoint. Served in this process on an in-memory link layer."""
    links = FakeLinks()
    links.add_nic("lab0")
    sock = tmp_path / "seed.sock"
    settings = Settings(socket=sock, state_dir=state_dir, node_name="node1")
    runner = make_runner(make_app(settings, functools.partial(open_services, links=links)))
    await runner.setup()
    await web.UnixSite(runner, str(sock)).start()
    try:
        async with ClientSession(connector=UnixConnector(path=str(sock))) as session:
            client = PluginClient(session)
            pool = await client.ok(
                "IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "192.0.2.0/24"}
            )
            gateway = {"PoolID": pool["PoolID"], "Address": "192.0.2.1", "Options": GATEWAY}
            await client.ok("IpamDriver.RequestAddress", gateway)
            address = await client.ok("IpamDriver.RequestAddress", {"PoolID": pool["PoolID"]})
            assert address["Address"] == "192.0.2.2/24"
            await client.ok(
                "NetworkDriver.CreateNetwork",
                {
                    "NetworkID": NET,
                    "Options": {"com.docker.network.generic": {"parent": "lab0"}},
                    "IPv4Data": [
                        {"AddressSpace": "local", "Pool": "192.0.2.0/24", "Gateway": "192.0.2.1/24"}
                    ],
                    "IPv6Data": [],
                },
            )
            await client.ok(
                "NetworkDriver.CreateEndpoint",
                {"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": "192.0.2.2/24"}},
            )
    finally:
        await runner.cleanup()


def seed(tmp_path: Path, state_dir: Path) -> None:
    asyncio.run(_seed(tmp_path, state_dir))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def daemon(tmp_path: Path, state: Path) -> Iterator[Callable[[], Path]]:
    """`start()` runs `pymacvlan serve` on `state` (after stopping the one it started before)
    and returns its socket; stopped after the test."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> Path:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 0
        sock = tmp_path / "run" / "pymacvlan.sock"
        proc = serve(tmp_path, sock, state)
        procs.append(proc)
        wait_for_socket(sock, proc)
        return sock

    yield start
    for proc in procs:
        stop(proc)


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], None]]:
    """`make_read_only(dir)`: bind-mount `dir` on itself, read-only (root ignores file modes);
    unmounted after the test. Request it before `daemon`, so that the daemon stops first."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("read-only mounts need root")
        pytest.skip("read-only mounts need root")
    mounted: list[Path] = []

    def make_read_only(path: Path) -> None:
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
        mounted.append(path)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)

    yield make_read_only
    for path in reversed(mounted):
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(path)], check=False)


def log_of(tmp_path: Path) -> str:
    return (tmp_path / "daemon.log").read_text()


def refused(tmp_path: Path, sock: Path) -> str:
    """The daemon is up, answers Activate, and refuses every state call with one message,
    which is also its log's one error line; no traceback anywhere. Returns the message."""
    assert activate(sock)[0] == 200
    status, answer = call(sock, "IpamDriver.RequestPool", POOL)
    assert status == 500, answer
    message = answer["Err"]
    status, answer = call(sock, "NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert (status, answer) == (500, {"Err": message})
    assert activate(sock)[0] == 200  # still serving
    log = log_of(tmp_path)
    assert "Traceback" not in log
    # One line at start-up; each refused call then logs its own line, with its method.
    errors = [line for line in log.splitlines() if "level=error" in line]
    assert len([line for line in errors if "method=" not in line]) == 1, errors
    assert message.replace('"', '\\"') in errors[0]
    assert TROUBLESHOOTING in message
    return str(message)


# ------------------------------------------------------------------------ fresh start


def test_a_fresh_start_makes_owner_only_files_and_starts_again(
    tmp_path: Path, state: Path, daemon: Callable[[], Path]
) -> None:
    sock = daemon()
    status, _ = call(sock, "IpamDriver.RequestPool", POOL)
    assert status == 200
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for name in ("driver.sqlite3", "ipam.sqlite3"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
    sock = daemon()  # a second start on what the first one wrote
    status, answer = call(sock, "IpamDriver.RequestPool", POOL)
    assert status == 200, answer
    log = log_of(tmp_path)
    assert "Traceback" not in log
    assert "level=error" not in log
    assert "level=warning" not in log


# --------------------------------------------------------------------- unusable files


def test_a_driver_file_that_is_not_a_database_is_one_clear_line(
    tmp_path: Path, state: Path, daemon: Callable[[], Path]
) -> None:
    state.mkdir()
    (state / "driver.sqlite3").write_bytes(b"this is not a database, but someone's notes\n" * 30)
    message = refused(tmp_path, daemon())
    daemon()  # the refusing daemon stops cleanly too (exit 0 on SIGTERM)
    assert message.startswith(
        f"{state}/driver.sqlite3 is not a pymacvlan state file (file is not a database): "
        "restore it from a backup or move it aside"
    )
    assert (state / "driver.sqlite3").read_bytes().startswith(b"this is not a database")


def test_a_driver_file_from_a_newer_version_is_refused(
    tmp_path: Path, state: Path, daemon: Callable[[], Path]
) -> None:
    seed(tmp_path, state)
    with sqlite3.connect(state / "driver.sqlite3") as db:
        db.execute("PRAGMA user_version = 99")
    message = refused(tmp_path, daemon())
    assert message.startswith(
        f"{state}/driver.sqlite3 was written by a newer pymacvlan (schema version 99"
    )
    assert "upgrade pymacvlan" in message
    with sqlite3.connect(state / "driver.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 99  # not downgraded


def test_a_read_only_state_directory_is_one_clear_line(
    tmp_path: Path,
    state: Path,
    read_only: Callable[[Path], None],
    daemon: Callable[[], Path],
) -> None:
    seed(tmp_path, state)
    read_only(state)
    message = refused(tmp_path, daemon())
    assert f"the state directory {state} must be writable by pymacvlan" in message


def test_a_state_directory_that_cannot_be_created_is_one_clear_line(
    tmp_path: Path, read_only: Callable[[Path], None]
) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    read_only(parent)
    state = parent / "state"
    sock = tmp_path / "run" / "pymacvlan.sock"
    proc = serve(tmp_path, sock, state)
    try:
        wait_for_socket(sock, proc)
        message = refused(tmp_path, sock)
    finally:
        stop(proc)
    assert message.startswith(f"cannot create the state directory {state}")
    assert f"the state directory {state} must be writable by pymacvlan" in message


def test_a_state_path_that_is_a_file_keeps_the_daemon_up(
    tmp_path: Path, state: Path, daemon: Callable[[], Path]
) -> None:
    state.write_text("a file, not a directory\n")
    message = refused(tmp_path, daemon())
    assert str(state) in message
    assert state.read_text() == "a file, not a directory\n"


# ------------------------------------------------------------------------ lost state


def test_an_emptied_ipam_file_next_to_networks_is_refused(
    tmp_path: Path, state: Path, daemon: Callable[[], Path]
) -> None:
    seed(tmp_path, state)
    (state / "ipam.sqlite3").write_bytes(b"")
    message = refused(tmp_path, daemon())
    assert message.startswith(
        f"{state}/ipam.sqlite3 is empty (0 bytes), but {state}/driver.sqlite3 still holds "
        "1 network and 1 endpoint"
    )
    assert "restore" in message
    assert "docker network rm" in message
    assert (state / "ipam.sqlite3").stat().st_size == 0  # nothing made up in its place


def test_a_deleted_ipam_file_next_to_networks_is_refused(
    tmp_path: Path, state: Path, daemon: Callable[[], Path]
) -> None:
    seed(tmp_path, state)
    (state / "ipam.sqlite3").unlink()
    message = refused(tmp_path, daemon())
    assert message.startswith(
        f"{state}/ipam.sqlite3 is missing, but {state}/driver.sqlite3 still holds "
        "1 network and 1 endpoint"
    )
    assert not [p.name for p in state.iterdir() if p.name.startswith("ipam.sqlite3")]


def test_an_emptied_driver_file_next_to_pools_is_refused(
    tmp_path: Path, state: Path, daemon: Callable[[], Path]
) -> None:
    seed(tmp_path, state)
    (state / "driver.sqlite3").write_bytes(b"")
    message = refused(tmp_path, daemon())
    assert message.startswith(
        f"{state}/driver.sqlite3 is empty (0 bytes), but {state}/ipam.sqlite3 still holds "
        "1 pool and 2 allocations"
    )
    assert (state / "driver.sqlite3").stat().st_size == 0


def test_files_of_two_state_directories_are_refused(
    tmp_path: Path, state: Path, daemon: Callable[[], Path]
) -> None:
    other = tmp_path / "other"
    seed(tmp_path, state)
    seed(tmp_path, other)
    shutil.copyfile(other / "ipam.sqlite3", state / "ipam.sqlite3")
    message = refused(tmp_path, daemon())
    assert message.startswith(
        f"{state}/driver.sqlite3 and {state}/ipam.sqlite3 belong to different pymacvlan "
        "state directories"
    )


def test_files_written_before_state_ids_are_adopted(
    tmp_path: Path, state: Path, daemon: Callable[[], Path]
) -> None:
    seed(tmp_path, state)
    for name in ("driver.sqlite3", "ipam.sqlite3"):
        with sqlite3.connect(state / name) as db:
            db.execute("DROP TABLE IF EXISTS meta")
    sock = daemon()
    status, answer = call(
        sock, "NetworkDriver.EndpointOperInfo", {"NetworkID": NET, "EndpointID": EP}
    )
    assert status == 200, answer
    ids = set()
    for name in ("driver.sqlite3", "ipam.sqlite3"):
        with sqlite3.connect(state / name) as db:
            ids.add(db.execute("SELECT value FROM meta WHERE name = 'state_id'").fetchone())
    assert len(ids) == 1
    assert "level=error" not in log_of(tmp_path)


def test_an_endpoint_address_ipam_does_not_hold_is_reported(
    tmp_path: Path, state: Path, daemon: Callable[[], Path]
) -> None:
    seed(tmp_path, state)
    with sqlite3.connect(state / "ipam.sqlite3") as db:
        db.execute("DELETE FROM allocations WHERE address = '192.0.2.2'")
    sock = daemon()
    status, answer = call(sock, "IpamDriver.RequestPool", POOL)
    assert status == 200, answer
    log = log_of(tmp_path)
    warnings = [line for line in log.splitlines() if "level=warning" in line]
    assert len(warnings) == 1, warnings
    assert f"endpoint {EP[:12]} of network {NET[:12]} has 192.0.2.2/24" in warnings[0]
    assert "ipam.sqlite3 does not hold that address" in warnings[0]
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("file_name", "damage"),
    [
        ("driver.sqlite3", "UPDATE networks SET config = '{\"kind\": '"),
        ("driver.sqlite3", "UPDATE endpoints SET record = '{}'"),
        ("ipam.sqlite3", "UPDATE leases SET options = 'not json'"),
        (
            "ipam.sqlite3",
            "UPDATE allocations SET address = 'not an address' WHERE kind = 'dynamic'",
        ),
    ],
)
def test_a_damaged_record_is_one_clear_line(
    tmp_path: Path, state: Path, daemon: Callable[[], Path], file_name: str, damage: str
) -> None:
    seed(tmp_path, state)
    with sqlite3.connect(state / file_name) as db:
        db.execute("PRAGMA foreign_keys = OFF")
        db.execute(damage)
    db.close()
    message = refused(tmp_path, daemon())
    assert message.startswith(f"{state}/{file_name} holds a record pymacvlan cannot read"), message
    assert "restore the file from a backup" in message
