"""`pymacvlan serve` run as a process, and a blocking client for its socket (tests/api)."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("plugin", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(str(self.path))


def call(path: Path, method: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """POST `/method` like dockerd does; (status, parsed answer)."""
    conn = UnixHTTPConnection(path)
    try:
        conn.request("POST", f"/{method}", body=b"" if body is None else json.dumps(body))
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def activate(path: Path) -> tuple[int, object]:
    return call(path, "Plugin.Activate")


def serve(tmp_path: Path, sock: Path, state_dir: Path | None = None) -> subprocess.Popen[bytes]:
    """The daemon on `sock`, state in `state_dir` (default tmp_path/state), output (stdout and
    stderr) appended to tmp_path/daemon.log."""
    argv = [sys.executable, "-m", "plugin.cli", "serve", "--socket", str(sock)]
    argv += ["--state-dir", str(state_dir or tmp_path / "state"), "--node-name", "node1"]
    log = (tmp_path / "daemon.log").open("ab")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def wait_for_socket(path: Path, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the daemon exited"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(str(path))
                return
        except OSError:
            time.sleep(0.01)
    raise AssertionError(f"{path} never accepted a connection")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
