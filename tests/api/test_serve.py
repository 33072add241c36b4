"""`pymacvlan serve` as a process: its socket, its start-up order, its shutdown."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.serve_process import activate, serve, wait_for_socket


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
