"""Runs the app on the plugin socket until SIGTERM or SIGINT.

Order matters: the socket is bound as soon as the app is set up (which only opens the state
files), and the state is loaded in the background; Docker gives a managed plugin a few seconds to
answer on its socket before it declares it failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
from pathlib import Path

from aiohttp import web

from plugin.app import make_app, make_runner
from plugin.logs import get_logger
from plugin.settings import Settings

log = get_logger(__name__)


def _prepare_socket_path(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise SystemExit(f"{path} exists and is not a socket; refusing to replace it")
        # A socket left by a previous run that was killed: nobody is listening on it any more.
        path.unlink()


async def serve(settings: Settings) -> None:
    app = make_app(settings)
    runner = make_runner(app)
    await runner.setup()
    _prepare_socket_path(settings.socket)
    # Owner-only socket: whoever can talk to it can create links on this host.
    old_umask = os.umask(0o177)
    try:
        site = web.UnixSite(runner, str(settings.socket))
        await site.start()
    finally:
        os.umask(old_umask)
    log.info(
        "listening",
        socket=str(settings.socket),
        node=settings.node_name,
        state_dir=str(settings.state_dir),
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            settings.socket.unlink()
