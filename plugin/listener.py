"""The plugin socket, bound before anything slow happens.

Docker dials a managed plugin's socket 0.5 s after starting it, then every 3 s, and disables the
plugin after about 9.5 s of silence (moby plugin/manager_linux.go, pluginPostStart). A dial only
needs a listening socket: the kernel queues the connection until the server accepts it. So the
command line binds here, with the standard library only, before importing aiohttp, pydantic and
pyroute2 (about a second of imports on a small machine) and before the state is loaded.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path

# Connections the kernel queues while the imports run; Docker opens one at a time.
BACKLOG = 128


class SocketPathError(Exception):
    """The socket path is taken by something that is not a socket."""


def bind_plugin_socket(path: Path) -> socket.socket:
    """A listening unix socket at `path`, owner-only: whoever can talk to it can create links
    on this host. A socket left by a killed earlier run is replaced; any other file is not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise SocketPathError(f"{path} exists and is not a socket; refusing to replace it")
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old_umask)
    return sock
