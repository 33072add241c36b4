"""Two `pymacvlan serve` processes on one host: the second never takes over the first's socket
or state directory, and a daemon that stops removes only a socket that is still its own."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.serve_process import activate, serve, stop, wait_for_socket


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    spawner = Spawn(tmp_path)
    try:
        yield spawner
    finally:
        for proc in spawner.procs:
            stop(proc)


class Spawn:
    """Start daemons, each with its own log (tmp_path/NAME/daemon.log)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def __call__(self, name: str, sock: Path, state_dir: Path) -> subprocess.Popen[bytes]:
        home = self.tmp_path / name
        home.mkdir()
        proc = serve(home, sock, state_dir)
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp_path / name / "daemon.log").read_text()


def _inode(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def test_a_second_daemon_refuses_a_socket_that_answers(spawn: Spawn, tmp_path: Path) -> None:
    sock = tmp_path / "pymacvlan.sock"
    first = spawn("first", sock, tmp_path / "state-first")
    wait_for_socket(sock, first)
    assert activate(sock)[0] == 200
    before = _inode(sock)

    second = spawn("second", sock, tmp_path / "state-second")
    assert second.wait(timeout=30) == 1
    log = spawn.log("second")
    assert f"pymacvlan: cannot listen on {sock}: another process is serving on it" in log
    assert "Traceback" not in log
    assert len(log.strip().splitlines()) == 1, log

    # The first daemon still owns the socket and answers on it.
    assert _inode(sock) == before
    assert activate(sock)[0] == 200
    assert first.poll() is None


def test_a_stopping_daemon_leaves_a_socket_that_is_not_its_own(
    spawn: Spawn, tmp_path: Path
) -> None:
    """The socket path was taken over (by an operator, or a daemon started after the first one's
    socket file was removed): stopping the first daemon must not cut off the second."""
    sock = tmp_path / "pymacvlan.sock"
    first = spawn("first", sock, tmp_path / "state-first")
    wait_for_socket(sock, first)
    assert activate(sock)[0] == 200  # serving: its signal handlers are in place
    os.unlink(sock)
    second = spawn("second", sock, tmp_path / "state-second")
    wait_for_socket(sock, second)
    theirs = _inode(sock)

    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0
    assert sock.exists(), "the first daemon removed the second one's socket"
    assert _inode(sock) == theirs
    assert activate(sock)[0] == 200


def test_a_second_daemon_refuses_a_state_directory_in_use(spawn: Spawn, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = spawn("first", tmp_path / "first.sock", state)
    wait_for_socket(tmp_path / "first.sock", first)
    assert activate(tmp_path / "first.sock")[0] == 200

    second = spawn("second", tmp_path / "second.sock", state)
    assert second.wait(timeout=30) == 1
    log = spawn.log("second")
    assert f"state directory {state} is in use by another pymacvlan daemon (pid {first.pid})" in log
    assert "Traceback" not in log
    # It cleaned up its own socket and left the first daemon alone.
    assert not (tmp_path / "second.sock").exists()
    assert activate(tmp_path / "first.sock")[0] == 200


def test_the_state_directory_is_free_again_after_a_stop(spawn: Spawn, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = spawn("first", tmp_path / "first.sock", state)
    wait_for_socket(tmp_path / "first.sock", first)
    assert activate(tmp_path / "first.sock")[0] == 200
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0

    second = spawn("second", tmp_path / "second.sock", state)
    wait_for_socket(tmp_path / "second.sock", second)
    assert activate(tmp_path / "second.sock")[0] == 200


def test_the_state_directory_is_free_again_after_a_kill(spawn: Spawn, tmp_path: Path) -> None:
    """kill -9 leaves the lock file behind; the kernel released the lock with the process."""
    state = tmp_path / "state"
    first = spawn("first", tmp_path / "first.sock", state)
    wait_for_socket(tmp_path / "first.sock", first)
    assert activate(tmp_path / "first.sock")[0] == 200
    first.kill()
    first.wait()

    second = spawn("second", tmp_path / "first.sock", state)
    wait_for_socket(tmp_path / "first.sock", second)
    assert activate(tmp_path / "first.sock")[0] == 200
