"""A stand-in daemon for the harness self-test: same command line shape as ``pymacvlan serve``.

It answers ``/Plugin.Activate``, and ``/Harness.Whoami`` with its node name, how often it was
started on this state dir, and the links it sees (which proves it runs inside its namespace).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import socketserver
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import FrameType
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body: Any
        if self.path == "/Plugin.Activate":
            body = {"Implements": ["NetworkDriver"]}
        elif self.path == "/Harness.Whoami":
            body = {
                "Node": self.server.node_name,
                "Starts": self.server.starts,
                "Links": sorted(name for _index, name in socket.if_nameindex()),
            }
        else:
            self.send_error(404)
            return
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(socketserver.UnixStreamServer):
    node_name = ""
    starts = 0


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("serve")
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--node-name", required=True)
    args = parser.parse_args()

    counter = args.state_dir / "starts"
    starts = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(starts))

    with contextlib.suppress(FileNotFoundError):
        args.socket.unlink()  # left behind by a kill -9
    server = _Server(str(args.socket), _Handler)
    server.node_name = args.node_name
    server.starts = starts
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.socket)


if __name__ == "__main__":
    main()
