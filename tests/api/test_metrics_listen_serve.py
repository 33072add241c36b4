"""`pymacvlan serve` with PYMACVLAN_METRICS_LISTEN: Prometheus scrapes it over TCP; an address
that cannot be listened on stops the start with one line."""

from __future__ import annotations

import http.client
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.api.serve_process import activate, serve, stop, wait_for_socket
from tests.harness.metrics_text import Scrape


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def wait_for_port(port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def test_prometheus_scrapes_the_daemon_over_tcp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("PYMACVLAN_METRICS_LISTEN", f"127.0.0.1:{port}")
    sock = tmp_path / "run" / "pymacvlan.sock"
    proc = serve(tmp_path, sock)
    try:
        wait_for_socket(sock, proc)
        assert activate(sock)[0] == 200
        wait_for_port(port)
        status, text = get(port, "/metrics")
        assert status == 200
        ok = {"method": "Plugin.Activate", "outcome": "ok"}
        assert Scrape(text).value("pymacvlan_requests_total", **ok) == 1
        status, _ = get(port, "/health")
        assert status in (200, 503)  # ready, or still loading
        assert get(port, "/pymacvlan/v1/status")[0] == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        stop(proc)
    log = (tmp_path / "daemon.log").read_text()
    assert f"metrics=127.0.0.1:{port}" in log
    with socket.socket() as probe:  # the port is free again
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_a_taken_metrics_address_stops_the_start_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("PYMACVLAN_METRICS_LISTEN", f"127.0.0.1:{port}")
        sock = tmp_path / "run" / "pymacvlan.sock"
        proc = serve(tmp_path, sock)
        try:
            assert proc.wait(timeout=30) == 1
        finally:
            stop(proc)
    log = (tmp_path / "daemon.log").read_text()
    assert log.splitlines()[-1] == (
        f"pymacvlan: cannot start: cannot listen for metrics on 127.0.0.1:{port}: "
        "Address already in use"
    )
    assert "Traceback" not in log
    assert not sock.exists()  # the plugin socket it had bound is given back


def test_a_malformed_metrics_address_is_refused_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYMACVLAN_METRICS_LISTEN", "9100")
    sock = tmp_path / "run" / "pymacvlan.sock"
    proc = serve(tmp_path, sock)
    try:
        assert proc.wait(timeout=30) == 2
    finally:
        stop(proc)
    log = (tmp_path / "daemon.log").read_text()
    assert log.splitlines() == [
        "pymacvlan: metrics listen address '9100' is not HOST:PORT, [IPV6]:PORT or :PORT "
        "(such as 127.0.0.1:9523)"
    ]
    assert not sock.exists()
