"""The HTTP connections of the plugin socket: JSON answers to broken HTTP, deadlines, a bound.

aiohttp answers what it cannot parse (a bad request line, broken chunked encoding, a header line
over 8 KiB) itself, in ``RequestHandler.handle_error``: plain text, with a traceback in the log,
before any middleware runs (3.14: ``_make_error_handler``). Docker shows a plugin's ``Err`` to the
user, so those answers must be ``{"Err": ...}`` too, and hostile input must not fill the log with
tracebacks. aiohttp also never times out a client that stops half-way: its idle timeout is an
hour and a request whose headers or body stop arriving holds its connection (and the handler
reading the body) forever.

How, with as little of aiohttp's private API as possible:

* `PluginConnection` subclasses the public ``web.RequestHandler`` (aiohttp's protocol class) and
  overrides only ``handle_error`` (public, documented as the place that answers bad requests)
  and the asyncio protocol callbacks (``connection_made``, ``data_received``,
  ``connection_lost``). Its constructor takes aiohttp's own keyword arguments: a short idle
  (keep-alive) timeout and a short lingering time.
* `PluginSite` is a ``web.BaseSite`` that serves a runner's app on our already-listening socket
  through a factory of `PluginConnection` (the public ``runner.server`` is their manager, so the
  runner's shutdown still closes them). The alternatives touch more private state: swapping
  ``web.Server`` for a subclass means reaching into ``AppRunner._make_server``.
* The header deadline needs to know when a request's headers are complete: `track_requests`,
  a middleware, tells the connection (``request.protocol``, public); the body deadline is
  `read_body`, called by plugin.rpc instead of ``request.read()``.

Docker's plugin client retries a call whose connection fails (moby pkg/plugins/client.go,
``callWithRetry``), so closing idle or surplus connections costs it at most a retry.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from plugin.errors import PLUGIN_CONTENT_TYPE, Handler, MalformedRequest, err_response
from plugin.logs import get_logger

log = get_logger(__name__)

# Longest error detail taken from aiohttp's parser (it quotes the offending bytes).
MAX_DETAIL = 160


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take and how many may be connected at once."""

    # From the first byte of a request to the end of its headers: Docker sends a request in
    # one write, a few hundred bytes, in microseconds.
    header_seconds: float = 5.0
    # From the end of the headers to the end of the body (at most 1 MiB on a local socket).
    body_seconds: float = 5.0
    # A connection with no request in flight. Docker keeps one open between calls; long enough
    # that a burst of calls (a `docker run` makes seven) reuses it.
    idle_seconds: float = 60.0
    # Open connections; the next is closed at once (Docker retries it). Docker uses a handful.
    max_connections: int = 256


LIMITS = web.AppKey("connection_limits", ConnectionLimits)


class IncompleteRequest(MalformedRequest):
    """The request's body did not arrive (too slow, or the connection went away)."""


async def read_body(request: web.Request) -> bytes:
    """The request body, or `IncompleteRequest` if it does not arrive within the body deadline.
    Oversize bodies still raise aiohttp's ``HTTPRequestEntityTooLarge``.

    Broken framing in a body that is already being read (bad chunk sizes after good headers)
    also ends here, at the deadline: aiohttp 3.14's C parser drops such a body without telling
    its reader (``_http_parser.pyx``, ``feed_data``), so the wait is the only signal."""
    seconds = request.app.get(LIMITS, ConnectionLimits()).body_seconds
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except TimeoutError:
        expected = request.content_length
        size = f" of {expected} bytes" if expected is not None else ""
        raise IncompleteRequest(
            f"request body incomplete: not all{size} arrived within {seconds:g} s"
        ) from None
    except ConnectionError:
        raise IncompleteRequest("request body incomplete: the connection was closed") from None
    except web.RequestPayloadError as exc:
        raise IncompleteRequest(f"malformed request body: {_one_line(str(exc))}") from None


@web.middleware
async def track_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tells a `PluginConnection` that a request's headers have arrived (its header deadline
    ends) and when its handler is done."""
    connection = request.protocol
    if not isinstance(connection, PluginConnection):
        return await handler(request)
    connection.request_started()
    try:
        return await handler(request)
    finally:
        connection.request_finished()


def describe_http_error(exc: BaseException | None, message: str | None) -> str:
    """aiohttp's parser errors, on one bounded line: ``malformed HTTP request: Invalid method
    encountered: b'GARBAGE'``. Its messages span lines and point at the bad byte with a caret."""
    text = message or (exc.message if isinstance(exc, HttpProcessingError) else "") or ""
    return f"malformed HTTP request: {_one_line(text) or 'unreadable'}"


def _one_line(text: str) -> str:
    parts = [p.strip() for p in text.splitlines()]
    line = " ".join(p for p in parts if p and set(p) != {"^"})
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 3] + "..."


def raw_error(status: int, message: str) -> bytes:
    """A complete HTTP error answer, for a connection that has no request object to answer."""
    body = json.dumps({"Err": message}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        f"Content-Type: {PLUGIN_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class _Admission:
    """Counts refusals of one site, so that a flood of connections is two log lines, not one a
    connection: when the refusing starts and when it ends."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.refused = 0

    def admit(self, open_connections: int) -> bool:
        if open_connections <= self.limit:
            if self.refused:
                log.warning("accepting connections again", refused=self.refused)
                self.refused = 0
            return True
        if not self.refused:
            log.warning("too many connections: closing new ones", limit=self.limit)
        self.refused += 1
        return False


class PluginConnection(web.RequestHandler):
    """One client connection: aiohttp's HTTP/1.1 protocol with JSON errors and deadlines."""

    def __init__(
        self,
        manager: web.Server,
        *,
        loop: asyncio.AbstractEventLoop,
        limits: ConnectionLimits,
        admission: _Admission,
    ) -> None:
        super().__init__(
            manager,
            loop=loop,
            # aiohttp closes a connection that waits this long for a request (from the
            # connection's start or the previous answer).
            keepalive_timeout=limits.idle_seconds,
            tcp_keepalive=False,  # a unix socket
            # No access log: every call is logged with its ids by plugin.rpc. (None is aiohttp's
            # documented "off", though its signature says Logger.)
            access_log=None,  # type: ignore[arg-type]
            # After an answer sent before the body was read (too large, too slow): how long to
            # read and drop the rest before closing.
            lingering_time=1.0,
        )
        self._manager_ref = manager
        self._event_loop = loop
        self._limits = limits
        self._admission = admission
        self._handling = False
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._admission.admit(len(self._manager_ref.connections)):
            self.force_close()

    def data_received(self, data: bytes) -> None:
        # The first bytes of a request start its header deadline (an idle connection is
        # aiohttp's keep-alive timeout's business).
        if data and not self._handling and self._header_deadline is None:
            self._header_deadline = self._event_loop.call_later(
                self._limits.header_seconds, self._headers_too_slow
            )
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def request_started(self) -> None:
        self._handling = True
        self._cancel_header_deadline()

    def request_finished(self) -> None:
        self._handling = False

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to what it could not parse (400) or to an exception that escaped
        every middleware (500): ``{"Err": ...}``, and a traceback only for the latter, ours."""
        if request.writer.output_size > 0:
            # Part of an answer is out already: nothing sensible can follow (as aiohttp does).
            raise ConnectionError("the response was partly sent; cannot send an error after it")
        if status >= 500:
            log.error("internal error", path=request.path, exc_info=exc)
            text = f"internal error in pymacvlan: {type(exc).__name__}" if exc else "internal error"
            response = err_response(500, text)
        else:
            # A client that does not speak HTTP/1.1 properly: its fault, one line, no traceback.
            text = describe_http_error(exc, message)
            log.warning("refused", error=text)
            response = err_response(400, text)
        response.force_close()
        return response

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self._handling or self.transport is None:
            return
        text = (
            f"request incomplete: its headers did not arrive within "
            f"{self._limits.header_seconds:g} s"
        )
        log.warning("refused", error=text)
        self.transport.write(raw_error(400, text))
        self.force_close()  # the transport sends what it holds, then closes

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None


class PluginSite(web.BaseSite):
    """Serves an `AppRunner`'s app on a bound, listening socket through `PluginConnection`."""

    def __init__(self, runner: web.AppRunner, sock: socket.socket) -> None:
        super().__init__(runner)
        self._app_runner = runner
        self._sock = sock

    @property
    def name(self) -> str:
        return f"http://unix:{self._sock.getsockname()}:"

    async def start(self) -> None:
        await super().start()
        manager = self._app_runner.server
        assert manager is not None  # BaseSite's constructor checked that setup() ran
        limits = self._app_runner.app.get(LIMITS, ConnectionLimits())
        admission = _Admission(limits.max_connections)
        loop = asyncio.get_running_loop()
        factory: Callable[[], PluginConnection] = lambda: PluginConnection(  # noqa: E731
            manager, loop=loop, limits=limits, admission=admission
        )
        self._server = await loop.create_server(factory, sock=self._sock)
