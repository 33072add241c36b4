"""One daemon per state directory: an exclusive lock held for the life of the process.

Two daemons on one state directory would each load the stores into memory and hand out the same
addresses and link names. The lock is an ``flock`` on ``<state dir>/pymacvlan.lock``: the kernel
releases it when the process ends, however it ends (kill -9 included), so a lock file left behind
is harmless and is never removed (removing a lock file invites two processes to lock two files).
The file holds the owner's pid, to name it in the refusal when that process is visible here.

A state directory that cannot hold the lock file (missing and not creatable, read-only, not a
directory) is not refused here: the stores report such a directory with the remedy, and the
daemon stays up to say so (plugin/state_files.py). Only a lock held by another process stops
the start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from plugin.logs import get_logger

LOCK_FILE_NAME = "pymacvlan.lock"

log = get_logger(__name__)


class StateDirInUse(OSError):
    """Another process holds the state directory's lock."""


@contextlib.contextmanager
def state_dir_locked(state_dir: Path) -> Iterator[None]:
    """Hold the lock on `state_dir` while the block runs; raise `StateDirInUse` at once if
    another process holds it."""
    fd = _open_lock_file(state_dir)
    if fd is None:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _visible_owner(fd)
            raise StateDirInUse(
                f"state directory {state_dir} is in use by another pymacvlan daemon"
                + (f" (pid {owner})" if owner else "")
                + "; stop it first, or give this one its own --state-dir"
            ) from None
        with contextlib.suppress(OSError):  # a read-only directory: locked, but no pid shown
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _open_lock_file(state_dir: Path) -> int | None:
    # Same mode as the stores give the directory (plugin/services.py).
    with contextlib.suppress(OSError):
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / LOCK_FILE_NAME
    flags = os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(path, flags | os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        pass
    try:
        # flock needs no write access: a read-only directory whose lock file exists still locks.
        return os.open(path, flags | os.O_RDONLY)
    except OSError as exc:
        log.debug("state directory not locked", path=str(path), error=str(exc))
        return None


def _visible_owner(fd: int) -> int | None:
    """The pid written by the lock's holder, if that process is a pymacvlan in our pid namespace
    (a managed plugin writes the pid of its own namespace: a number that would mislead here)."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(os.pread(fd, 32, 0).decode().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"pymacvlan" in cmdline or b"plugin.cli" in cmdline:
            return pid
    return None
