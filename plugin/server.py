"""Runs the app on the plugin socket until SIGTERM or SIGINT.

The socket comes bound and listening from the command line (plugin/listener.py), before the
imports of this module; the state is loaded in the background once the server accepts. Docker
gives a managed plugin a few seconds to answer on its socket before it declares it failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket

from aiohttp import web

from plugin.app import make_app, make_runner
from plugin.listener import bind_plugin_socket
from plugin.logs import get_logger
from plugin.settings import Settings

log = get_logger(__name__)


async def serve(settings: Settings, sock: socket.socket | None = None) -> None:
    """Serve on `sock` (bound and listening), or bind `settings.socket` now."""
    if sock is None:
        sock = bind_plugin_socket(settings.socket)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner: web.AppRunner | None = None
    try:
        runner = make_runner(make_app(settings))
        await runner.setup()
        await web.SockSite(runner, sock).start()
        log.info(
            "listening",
            socket=str(settings.socket),
            node=settings.node_name,
            state_dir=str(settings.state_dir),
        )
        await stop.wait()
        log.info("shutting down")
    finally:
        if runner is not None:
            await runner.cleanup()
        sock.close()
        # A socket file with nobody behind it makes dockerd wait for its timeouts.
        with contextlib.suppress(FileNotFoundError):
            settings.socket.unlink()
