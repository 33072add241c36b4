"""`pymacvlan serve` as a process: its socket, its start-up order, its shutdown."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("plugin", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(str(self.path))


def activate(path: Path) -> tuple[int, object]:
    conn = UnixHTTPConnection(path)
    try:
        conn.request("POST", "/Plugin.Activate", body=b"")
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def serve(tmp_path: Path, sock: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "plugin.cli", "serve", "--socket", str(sock)]
    argv += ["--state-dir", str(tmp_path / "state"), "--node-name", "node1"]
    log = (tmp_path / "daemon.log").open("ab")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def wait_for_socket(path: Path, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the daemon exited"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(str(path))
                return
        except OSError:
            time.sleep(0.01)
    raise AssertionError(f"{path} never accepted a connection")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    sock = tmp_path / "run" / "pymacvlan.sock"
    proc = serve(tmp_path, sock)
    try:
        yield proc, sock
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_socket_is_owner_only_and_answers(
    daemon: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, sock = daemon
    wait_for_socket(sock, proc)
    mode = sock.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600, oct(mode)
    assert activate(sock) == (200, {"Implements": ["NetworkDriver", "IpamDriver"]})


def test_a_connection_made_during_start_up_is_answered(
    daemon: tuple[subprocess.Popen[bytes], Path],
) -> None:
    """Docker dials as soon as the socket exists: that first request waits, it is not refused."""
    proc, sock = daemon
    wait_for_socket(sock, proc)
    # Sent at once, most likely while the server's modules are still importing.
    assert activate(sock)[0] == 200


def test_sigterm_removes_the_socket_and_exits_0(
    daemon: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, sock = daemon
    wait_for_socket(sock, proc)
    assert activate(sock)[0] == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert not sock.exists()


def test_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    sock = tmp_path / "pymacvlan.sock"
    # A socket file whose daemon was killed: nobody listens behind it.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as left:
        left.bind(str(sock))
    proc = serve(tmp_path, sock)
    try:
        wait_for_socket(sock, proc)
        assert activate(sock)[0] == 200
    finally:
        proc.kill()
        proc.wait()


def test_a_file_in_the_sockets_place_is_never_replaced(tmp_path: Path) -> None:
    sock = tmp_path / "pymacvlan.sock"
    sock.write_text("someone's data\n")
    proc = serve(tmp_path, sock)
    assert proc.wait(timeout=60) == 1
    assert sock.read_text() == "someone's data\n"
    log = (tmp_path / "daemon.log").read_text()
    assert "exists and is not a socket; refusing to replace it" in log
    assert "Traceback" not in log
    assert not os.path.exists(tmp_path / "state" / "ipam.sqlite3")


def test_an_unusable_state_directory_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file, not a directory\n")
    sock = tmp_path / "pymacvlan.sock"
    proc = serve(tmp_path, sock)
    assert proc.wait(timeout=60) == 1
    log = (tmp_path / "daemon.log").read_text()
    assert "pymacvlan: cannot start:" in log
    assert str(tmp_path / "state") in log
    assert "Traceback" not in log
    assert not sock.exists()
