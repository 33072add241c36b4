"""Runs the app on the plugin socket until SIGTERM or SIGINT.

The socket comes bound and listening from the command line (plugin/listener.py), before the
imports of this module; the state is loaded in the background once the server accepts. Docker
gives a managed plugin a few seconds to answer on its socket before it declares it failed.
The state directory is locked for the whole run (plugin/state_lock.py): one daemon per state.
With ``--metrics-listen`` the metrics and health are also served over TCP
(plugin/metrics_listener.py), from the same app's services.
"""

from __future__ import annotations

import asyncio
import signal
import socket

from aiohttp import web

from plugin.app import make_app, make_runner
from plugin.listener import PluginSocket, bind_plugin_socket
from plugin.logs import get_logger
from plugin.metrics_listener import MetricsListener, bind_metrics_socket
from plugin.settings import Settings
from plugin.state_lock import state_dir_locked
from plugin.transport import PluginSite

log = get_logger(__name__)


async def serve(settings: Settings, sock: PluginSocket | None = None) -> None:
    """Serve on `sock` (bound and listening), or bind `settings.socket` now. Raises
    `StateDirInUse` (an OSError) if another daemon holds the state directory."""
    if sock is None:
        sock = bind_plugin_socket(settings.socket)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner: web.AppRunner | None = None
    metrics_sock: socket.socket | None = None
    listener: MetricsListener | None = None
    try:
        if settings.metrics_address is not None:
            # Before anything is locked or loaded: a taken address stops the start at once.
            metrics_sock = bind_metrics_socket(*settings.metrics_address)
        with state_dir_locked(settings.state_dir):
            try:
                app = make_app(settings)
                runner = make_runner(app)
                await runner.setup()
                await PluginSite(runner, sock).start()
                extra: dict[str, str] = {}
                if metrics_sock is not None:
                    listener = await MetricsListener.start(app, metrics_sock)
                    extra["metrics"] = listener.address
                log.info(
                    "listening",
                    socket=str(settings.socket),
                    node=settings.node_name,
                    state_dir=str(settings.state_dir),
                    **extra,
                )
                await stop.wait()
                log.info("shutting down")
            finally:
                if listener is not None:
                    await listener.close()
                # Still under the lock: the stores close before another daemon may open them.
                if runner is not None:
                    await runner.cleanup()
    finally:
        if metrics_sock is not None:
            metrics_sock.close()
        # Only our own socket file: a daemon started after us may have put its socket there.
        sock.unlink_if_ours()
        sock.close()
