"""The plugin socket's ownership rules and the state directory's lock, in one process
(tests/api/test_two_daemons.py runs the same rules with real daemons)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from plugin.listener import SocketInUse, SocketPathError, bind_plugin_socket
from plugin.state_lock import LOCK_FILE_NAME, StateDirInUse, state_dir_locked


def test_a_socket_that_answers_is_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "p.sock"
    with bind_plugin_socket(path):
        before = path.stat().st_ino
        with pytest.raises(SocketInUse, match="another process is serving on it"):
            bind_plugin_socket(path)
        assert path.stat().st_ino == before


def test_a_dead_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "p.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # bound, never listening: connections are refused
    with bind_plugin_socket(path) as sock:
        assert sock.file_id == (path.stat().st_dev, path.stat().st_ino)


def test_another_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "p.sock"
    path.write_text("data")
    with pytest.raises(SocketPathError, match="exists and is not a socket"):
        bind_plugin_socket(path)
    assert path.read_text() == "data"


def test_the_socket_file_is_removed_only_while_it_is_ours(tmp_path: Path) -> None:
    path = tmp_path / "p.sock"
    ours = bind_plugin_socket(path)
    ours.close()  # as asyncio does when the server stops, before the file is looked at
    os.unlink(path)  # someone removed it; another daemon then bound the path
    theirs = bind_plugin_socket(path)
    try:
        assert not ours.unlink_if_ours()
        assert path.exists()
        assert theirs.unlink_if_ours()
        assert not path.exists()
        assert not theirs.unlink_if_ours()  # already gone: nothing to do
    finally:
        theirs.close()


def test_the_state_directory_is_held_until_released(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with state_dir_locked(state):
        assert (state / LOCK_FILE_NAME).read_text() == f"{os.getpid()}\n"
        with pytest.raises(StateDirInUse) as refused, state_dir_locked(state):
            pass
        # The holder (pytest here) is no pymacvlan: its pid is not offered as one.
        assert str(refused.value) == (
            f"state directory {state} is in use by another pymacvlan daemon; stop it first, "
            "or give this one its own --state-dir"
        )
    with state_dir_locked(state):  # free again
        pass


def test_a_state_directory_that_cannot_hold_the_lock_is_left_to_the_stores(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.write_text("a file, not a directory")
    with state_dir_locked(state):  # no lock, no error: the stores report this directory
        pass
    assert state.read_text() == "a file, not a directory"
