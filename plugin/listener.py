"""The plugin socket, bound before anything slow happens, and removed only by its owner.

Docker dials a managed plugin's socket 0.5 s after starting it, then every 3 s, and disables the
plugin after about 9.5 s of silence (moby plugin/manager_linux.go, pluginPostStart). A dial only
needs a listening socket: the kernel queues the connection until the server accepts it. So the
command line binds here, with the standard library only, before importing aiohttp, pydantic and
pyroute2 (about a second of imports on a small machine) and before the state is loaded.

One socket path, one daemon: a socket file that answers belongs to a running daemon and is never
replaced; one that refuses connections was left by a killed run and is. On the way out a daemon
removes the socket file only if it is still the one it bound (same device and inode): a daemon
started after ours may have put its own there.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

# Connections the kernel queues while the imports run; Docker opens one at a time.
BACKLOG = 128
# How long a socket file may take to answer before we call it alive anyway: a daemon whose
# backlog is full is busy, not dead.
PROBE_SECONDS = 1.0


class SocketPathError(Exception):
    """The socket path is taken by something that is not a socket."""


class SocketInUse(SocketPathError):
    """Another process listens on the socket path."""


class PluginSocket(socket.socket):
    """A listening unix socket that remembers which file it was bound to."""

    path: Path
    # An O_PATH descriptor of the socket file: it keeps the file's inode alive, so that no
    # other file can get its number while we may still compare (tmpfs reuses a freed inode
    # number at once, and asyncio closes the socket itself before we look).
    _file_fd: int | None

    @property
    def file_id(self) -> tuple[int, int]:
        """The socket file's (device, inode)."""
        assert self._file_fd is not None, "unlink_if_ours() was called"
        st = os.fstat(self._file_fd)
        return st.st_dev, st.st_ino

    def unlink_if_ours(self) -> bool:
        """Remove the socket file if it is still the one this socket was bound to (a socket file
        with nobody behind it makes dockerd wait for its timeouts). True if it was removed.
        Call it once, on the way out."""
        if self._file_fd is None:
            return False
        try:
            st = self.path.lstat()
            if (st.st_dev, st.st_ino) != self.file_id:
                return False
            self.path.unlink()
            return True
        except FileNotFoundError:
            return False
        finally:
            os.close(self._file_fd)
            self._file_fd = None


def bind_plugin_socket(path: Path) -> PluginSocket:
    """A listening unix socket at `path`, owner-only: whoever can talk to it can create links
    on this host. A socket left by a killed earlier run is replaced; a live one or any other
    file is not (`SocketInUse`, `SocketPathError`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Two daemons starting at once must not both find the old socket dead, and the second
    # remove the first's fresh one: probe, unlink and bind are one step under a lock on the
    # directory (taken only by pymacvlan, held for a few milliseconds).
    with _directory_locked(path.parent):
        _remove_if_stale(path)
        sock = PluginSocket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(str(path))
            sock.listen(BACKLOG)
            sock.path = path
            sock._file_fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        except BaseException:
            sock.close()
            raise
        finally:
            os.umask(old_umask)
    return sock


def _remove_if_stale(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SocketPathError(f"{path} exists and is not a socket; refusing to replace it")
    if _answers(path):
        raise SocketInUse(
            "another process is serving on it (a pymacvlan daemon already running?); "
            "stop that one first, or give this one another --socket"
        )
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _answers(path: Path) -> bool:
    """Whether something listens behind the socket file. Refused means a dead socket; anything
    else (accepted, or a full backlog that makes the connect wait) means a live one."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(PROBE_SECONDS)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except TimeoutError:
            return True
        except BlockingIOError:  # EAGAIN: the listener's backlog is full
            return True
    return True


@contextlib.contextmanager
def _directory_locked(directory: Path) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            # A file system without flock: the probe alone still catches every daemon that
            # is up, which is all but a start within the same millisecond.
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
        yield
    finally:
        os.close(fd)
