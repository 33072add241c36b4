"""The plugin socket's HTTP connections, driven over a raw unix socket: what a client that does
not speak HTTP properly, or stops half-way, or never leaves, gets back; and that the daemon keeps
serving everyone else meanwhile.

Most tests serve the app in this process through `PluginSite` with short deadlines; the last
ones run `pymacvlan serve` itself with its default deadlines.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from plugin.app import make_app, make_runner
from plugin.errors import PLUGIN_CONTENT_TYPE
from plugin.listener import bind_plugin_socket
from plugin.services import open_services
from plugin.settings import Settings
from plugin.transport import ConnectionLimits, PluginSite
from tests.api.fake_links import FakeLinks
from tests.api.serve_process import serve, stop, wait_for_socket

pytestmark = pytest.mark.asyncio

LIMITS = ConnectionLimits(header_seconds=0.5, body_seconds=0.5, idle_seconds=1.5, max_connections=4)
ACTIVATE = b"POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\nContent-Length: 0\r\n\r\n"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool  # the server closed the connection after it

    @property
    def err(self) -> str:
        parsed = json.loads(self.body)
        assert set(parsed) == {"Err"}, parsed
        return str(parsed["Err"])


class Raw:
    """One raw connection to the plugin socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, path: Path) -> Raw:
        return cls(*await asyncio.open_unix_connection(str(path)))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, within: float = 5.0, *, then_closed: bool = True) -> Answer:
        """The next answer on this connection, and (`then_closed`) whether the server closes
        the connection right after it."""
        async with asyncio.timeout(within):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return Answer(status, headers, body, then_closed and await self.closed(within=2.0))

    async def closed(self, within: float) -> bool:
        """True if the server closes the connection within `within` seconds, sending nothing."""
        try:
            async with asyncio.timeout(within):
                rest = await self.reader.read(1)
        except TimeoutError:
            return False
        assert rest == b"", rest
        return True

    def close(self) -> None:
        self.writer.close()


@dataclass
class Daemon:
    path: Path

    async def connect(self) -> Raw:
        return await Raw.open(self.path)

    async def activate(self, within: float = 1.0) -> Answer:
        raw = await self.connect()
        try:
            await raw.send(ACTIVATE)
            return await raw.answer(within, then_closed=False)
        finally:
            raw.close()


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    settings = Settings(socket=tmp_path / "plugin.sock", state_dir=tmp_path / "state")
    links = FakeLinks()
    app = make_app(settings, functools.partial(open_services, links=links), LIMITS)
    runner = make_runner(app)
    await runner.setup()
    sock = bind_plugin_socket(settings.socket)
    await PluginSite(runner, sock).start()
    try:
        yield Daemon(settings.socket)
    finally:
        await runner.cleanup()
        sock.close()


@pytest.fixture(autouse=True)
def no_tracebacks(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[None]:
    """Hostile input is the client's fault: a line in the log at most, never a traceback."""
    caplog.set_level(logging.DEBUG)
    yield
    assert [r for r in caplog.records if r.exc_info] == []
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err


def assert_plugin_error(answer: Answer, status: int = 400) -> str:
    assert answer.status == status, answer
    assert answer.headers["content-type"].startswith(PLUGIN_CONTENT_TYPE), answer.headers
    message = answer.err
    assert "\n" not in message
    assert len(message) < 300
    return message


# ------------------------------------------------------------------ what aiohttp cannot parse


async def test_a_bad_request_line_is_a_json_400(daemon: Daemon) -> None:
    raw = await daemon.connect()
    await raw.send(b"GARBAGE\r\n\r\n")
    answer = await raw.answer()
    message = assert_plugin_error(answer)
    assert message == "malformed HTTP request: Invalid method encountered: b'GARBAGE'"
    assert answer.closed


async def test_broken_chunked_encoding_is_a_json_400(daemon: Daemon) -> None:
    raw = await daemon.connect()
    await raw.send(
        b"POST /IpamDriver.RequestPool HTTP/1.1\r\nHost: plugin\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    )
    answer = await raw.answer()
    message = assert_plugin_error(answer)
    assert message == "malformed HTTP request: Invalid character in chunk size: b'zz'"
    assert answer.closed


async def test_a_header_line_over_the_limit_is_a_json_400_that_does_not_echo_it(
    daemon: Daemon,
) -> None:
    raw = await daemon.connect()
    await raw.send(b"POST /Plugin.Activate HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
    answer = await raw.answer()
    message = assert_plugin_error(answer)
    assert message.startswith("malformed HTTP request: Got more than 8190 bytes when reading")
    assert answer.closed


async def test_broken_chunking_after_the_headers_is_answered_and_closed(daemon: Daemon) -> None:
    """The headers were fine and the handler is reading the body when the framing breaks."""
    raw = await daemon.connect()
    await raw.send(
        b"POST /IpamDriver.RequestPool HTTP/1.1\r\nHost: plugin\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n"
    )
    await asyncio.sleep(0.1)
    await raw.send(b"zz\r\n")
    answer = await raw.answer(within=LIMITS.body_seconds + 2)
    message = assert_plugin_error(answer)
    assert message.startswith("request body incomplete"), message
    assert answer.closed


# ------------------------------------------------------------------ clients that stop half-way


async def test_half_a_request_line_is_answered_and_closed_after_the_header_deadline(
    daemon: Daemon,
) -> None:
    raw = await daemon.connect()
    started = time.monotonic()
    await raw.send(b"POST /Plugin.Act")
    answer = await raw.answer(within=LIMITS.header_seconds + 2)
    assert time.monotonic() - started >= LIMITS.header_seconds * 0.9
    message = assert_plugin_error(answer)
    assert message == "request incomplete: its headers did not arrive within 0.5 s"
    assert answer.closed


async def test_headers_that_trickle_in_are_cut_off_at_the_deadline(daemon: Daemon) -> None:
    """A byte now and then keeps no deadline alive: the headers have half a second in all."""
    raw = await daemon.connect()
    started = time.monotonic()
    await raw.send(b"POST /Plugin.Activate HTTP/1.1\r\n")
    while time.monotonic() - started < LIMITS.header_seconds * 0.9:
        await asyncio.sleep(0.05)
        await raw.send(b"X")
    last_byte = time.monotonic()
    answer = await raw.answer(within=LIMITS.header_seconds + 2)
    # Were each byte to restart the deadline, the answer would come a whole deadline later.
    assert time.monotonic() - last_byte < LIMITS.header_seconds * 0.8
    assert_plugin_error(answer)
    assert answer.closed


async def test_half_a_body_is_answered_and_closed_after_the_body_deadline(
    daemon: Daemon,
) -> None:
    raw = await daemon.connect()
    await raw.send(
        b'POST /IpamDriver.RequestPool HTTP/1.1\r\nHost: plugin\r\nContent-Length: 100\r\n\r\n{"A'
    )
    answer = await raw.answer(within=LIMITS.body_seconds + 2)
    message = assert_plugin_error(answer)
    assert message == "request body incomplete: not all of 100 bytes arrived within 0.5 s"
    assert answer.closed


async def test_a_body_that_arrives_after_the_header_deadline_is_still_read(
    daemon: Daemon,
) -> None:
    """The header deadline ends with the headers: a body (within its own deadline) and the
    handler may take longer."""
    body = json.dumps({"AddressSpace": "local", "Pool": "192.0.2.0/24"}).encode()
    raw = await daemon.connect()
    await raw.send(
        b"POST /IpamDriver.RequestPool HTTP/1.1\r\nHost: plugin\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body[:5]
    )
    await asyncio.sleep(LIMITS.header_seconds * 0.8)
    await raw.send(body[5:])
    answer = await raw.answer()
    assert answer.status == 200, answer
    assert json.loads(answer.body)["Pool"] == "192.0.2.0/24"


async def test_a_client_that_vanishes_mid_body_costs_a_log_line(daemon: Daemon) -> None:
    raw = await daemon.connect()
    await raw.send(
        b"POST /IpamDriver.RequestPool HTTP/1.1\r\nHost: plugin\r\nContent-Length: 100\r\n\r\n{"
    )
    await asyncio.sleep(0.1)
    raw.close()
    await asyncio.sleep(0.2)
    assert (await daemon.activate()).status == 200


# ------------------------------------------------------------------ idle and surplus connections


async def test_an_idle_connection_is_closed_after_the_idle_timeout(daemon: Daemon) -> None:
    raw = await daemon.connect()
    started = time.monotonic()
    assert await raw.closed(within=LIMITS.idle_seconds + 2)
    assert time.monotonic() - started >= LIMITS.idle_seconds * 0.9


async def test_a_kept_alive_connection_serves_several_calls(daemon: Daemon) -> None:
    raw = await daemon.connect()
    for _ in range(3):
        await raw.send(ACTIVATE)
        head = await raw.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        await raw.reader.readexactly(length)
        await asyncio.sleep(LIMITS.idle_seconds / 3)
    raw.close()


async def test_connections_over_the_limit_are_closed_at_once(daemon: Daemon) -> None:
    held = [await daemon.connect() for _ in range(LIMITS.max_connections)]
    await asyncio.sleep(0.1)
    surplus = await daemon.connect()
    assert await surplus.closed(within=1.0)
    held.pop().close()
    await asyncio.sleep(0.1)
    assert (await daemon.activate()).status == 200
    for raw in held:
        raw.close()


async def test_the_daemon_serves_others_while_clients_stall(daemon: Daemon) -> None:
    stalled = []
    for data in (
        b"POST /Plugin.Act",
        b"POST /IpamDriver.RequestPool HTTP/1.1\r\nHost: plugin\r\nContent-Length: 50\r\n\r\n{",
    ):
        raw = await daemon.connect()
        await raw.send(data)
        stalled.append(raw)
    for _ in range(5):
        started = time.monotonic()
        assert (await daemon.activate()).status == 200
        assert time.monotonic() - started < 0.5
    for raw in stalled:
        assert_plugin_error(await raw.answer(within=3.0))


# ------------------------------------------------------------------ the daemon as it runs


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Path]:
    sock = tmp_path / "run" / "pymacvlan.sock"
    proc = serve(tmp_path, sock)
    try:
        wait_for_socket(sock, proc)
        yield sock
    finally:
        stop(proc)
    log = (tmp_path / "daemon.log").read_text()
    assert "Traceback" not in log


async def test_pymacvlan_serve_answers_broken_http_with_json(served: Path) -> None:
    daemon = Daemon(served)
    assert (await daemon.activate(within=30)).status == 200  # imports done, serving
    for data, expected in (
        (b"GARBAGE\r\n\r\n", "malformed HTTP request: Invalid method encountered"),
        (
            b"POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            "malformed HTTP request: Invalid character in chunk size",
        ),
    ):
        raw = await daemon.connect()
        await raw.send(data)
        answer = await raw.answer()
        assert assert_plugin_error(answer).startswith(expected)
        assert answer.closed


async def test_pymacvlan_serve_cuts_off_stalled_clients(served: Path) -> None:
    """Its default deadlines: a few seconds for the headers and for the body."""
    daemon = Daemon(served)
    assert (await daemon.activate(within=30)).status == 200
    half_line = await daemon.connect()
    await half_line.send(b"POST /Plugin.Act")
    half_body = await daemon.connect()
    await half_body.send(
        b"POST /IpamDriver.RequestPool HTTP/1.1\r\nHost: plugin\r\nContent-Length: 50\r\n\r\n{"
    )
    assert (await daemon.activate()).status == 200
    defaults = ConnectionLimits()
    within = max(defaults.header_seconds, defaults.body_seconds) + 3
    for raw, expected in (
        (half_line, "request incomplete: its headers did not arrive within"),
        (half_body, "request body incomplete: not all of 50 bytes arrived within"),
    ):
        answer = await raw.answer(within=within)
        assert assert_plugin_error(answer).startswith(expected)
        assert answer.closed
