"""Plain HTTP/1.1 over a unix socket, with the standard library only.

The command line talks to two daemons this way: pymacvlan's (its admin routes) and Docker's
engine API. Both are short JSON exchanges; an event loop and aiohttp would only add start-up time.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

MAX_ANSWER_BYTES = 64 * 1024 * 1024  # a status of thousands of endpoints is a few MB


class Unreachable(OSError):
    """Nothing answers on the socket (absent, refused, timed out, not ours to open)."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


def request(
    path: Path,
    method: str,
    url: str,
    body: Any = None,
    *,
    timeout: float = 30.0,
) -> tuple[int, bytes, str]:
    """One request; (status, body, content type). `body`, when given, is sent as JSON.
    Raises `Unreachable` when the socket does not answer."""
    conn = _UnixConnection(path, timeout)
    payload = b"" if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    try:
        conn.request(method, url, body=payload or None, headers=headers)
        response = conn.getresponse()
        data = response.read(MAX_ANSWER_BYTES + 1)
        if len(data) > MAX_ANSWER_BYTES:
            raise Unreachable(f"{path}: the answer is larger than {MAX_ANSWER_BYTES} bytes")
        return response.status, data, response.getheader("Content-Type", "")
    except (OSError, http.client.HTTPException) as exc:
        if isinstance(exc, Unreachable):
            raise
        raise Unreachable(
            f"{path}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
        ) from None
    finally:
        conn.close()


def request_json(
    path: Path, method: str, url: str, body: Any = None, *, timeout: float = 30.0
) -> tuple[int, Any]:
    """As `request`, the answer decoded as JSON (None when it is not JSON)."""
    status, data, _ = request(path, method, url, body, timeout=timeout)
    try:
        return status, json.loads(data) if data else None
    except ValueError:
        return status, None
