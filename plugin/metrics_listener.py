"""The optional TCP listener for Prometheus (``--metrics-listen`` / ``PYMACVLAN_METRICS_LISTEN``):
``GET /metrics`` and ``GET /health``, nothing else.

A TCP port can be reached by more than the host's root: it serves only the two read-only views,
never Docker's plugin methods nor the other admin routes (status shows every container's
address, gc changes the state). It is a small app of its own beside the daemon's, sharing the
daemon's services and metrics, served through the same hardened connections as the plugin
socket (plugin/transport.py: deadlines for slow clients, a bound on connections).

The address is bound before the state directory is locked or anything is loaded: an address
that is taken or cannot be had stops the start with one line (plugin/cli.py prints it).
"""

from __future__ import annotations

import os
import socket

from aiohttp import web

from plugin import metrics
from plugin.admin import health
from plugin.app import make_runner
from plugin.metrics import METRICS
from plugin.services import SERVICES
from plugin.transport import LIMITS, ConnectionLimits, PluginSite, track_requests

BACKLOG = 64


class MetricsListenError(OSError):
    """The metrics address cannot be listened on (taken, not this host's, not resolvable)."""


def bind_metrics_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); host "" is every address (IPv6 and IPv4 where
    the host has both)."""
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        if not host:
            if socket.has_dualstack_ipv6():
                return socket.create_server(
                    ("::", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=BACKLOG
                )
            return socket.create_server(("", port), backlog=BACKLOG)
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        return socket.create_server(address[:2], family=family, backlog=BACKLOG)
    except OSError as exc:
        raise MetricsListenError(f"cannot listen for metrics on {shown}: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    """The error's own words: ``create_server`` repeats the address after them, and a name that
    does not resolve has a resolver's error number, not an errno."""
    if isinstance(exc, socket.gaierror) or not exc.errno:
        return str(exc.strerror or exc)
    return os.strerror(exc.errno)


class MetricsListener:
    """The metrics app served on a bound TCP socket, until `close()`."""

    def __init__(self, runner: web.AppRunner, sock: socket.socket) -> None:
        self._runner = runner
        self._sock = sock

    @classmethod
    async def start(cls, daemon: web.Application, sock: socket.socket) -> MetricsListener:
        """Serve `/metrics` and `/health` of `daemon` (its services started) on `sock`."""
        app = web.Application(middlewares=[track_requests])
        app[SERVICES] = daemon[SERVICES]
        app[METRICS] = daemon[METRICS]
        app[LIMITS] = daemon.get(LIMITS, ConnectionLimits())
        app.router.add_routes(
            [web.get("/metrics", metrics.handle), web.get("/health", health.handle)]
        )
        runner = make_runner(app)
        await runner.setup()
        try:
            await PluginSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            raise
        return cls(runner, sock)

    @property
    def address(self) -> str:
        """Where it listens, as HOST:PORT (the port chosen by the kernel when 0 was asked)."""
        host, port = self._sock.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def close(self) -> None:
        await self._runner.cleanup()
