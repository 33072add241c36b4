"""A real etcd cluster on loopback ports, owned by one test (or one session).

Debian's `etcd-server` (3.4) provides `/usr/bin/etcd`. Every member listens on 127.0.0.1 only, on
ports picked free at start, with its data directory under the test's tmp dir. Members are started
and stopped by pid (`tests.harness.proc.ManagedProcess`), never by name, and `destroy()` stops all
of them, also when a test failed half-way.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.harness.proc import HarnessError, ManagedProcess

# Direct connections only: a proxy from the environment must never see loopback traffic.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    process: ManagedProcess

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.process.running


class EtcdCluster:
    """`size` etcd members on loopback forming one cluster."""

    def __init__(self, etcd: str, base_dir: Path, size: int = 3) -> None:
        self.etcd = etcd
        self.base_dir = base_dir
        ports = free_ports(2 * size)
        token = f"pmv-{secrets.token_hex(4)}"
        self.members: list[Member] = []
        for index in range(size):
            name = f"m{index + 1}"
            self.members.append(
                Member(
                    name=name,
                    client_port=ports[2 * index],
                    peer_port=ports[2 * index + 1],
                    data_dir=base_dir / f"{name}.etcd",
                    process=ManagedProcess([], base_dir / f"{name}.log"),
                )
            )
        initial = ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in self.members)
        for member in self.members:
            member.process.argv = [
                etcd,
                "--name",
                member.name,
                "--data-dir",
                str(member.data_dir),
                "--listen-client-urls",
                member.endpoint,
                "--advertise-client-urls",
                member.endpoint,
                "--listen-peer-urls",
                f"http://127.0.0.1:{member.peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{member.peer_port}",
                "--initial-cluster",
                initial,
                "--initial-cluster-token",
                token,
                "--initial-cluster-state",
                "new",
                # Quick elections: a killed member's successor is chosen in about a second.
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
                "--logger",
                "zap",
                "--log-level",
                "warn",
            ]

    @property
    def endpoints(self) -> str:
        """All client URLs, comma-separated, as `--etcd-endpoints` takes them."""
        return ",".join(m.endpoint for m in self.members)

    def start(self, timeout: float = 30.0) -> None:
        """Start every member that is not running and wait until the cluster serves writes."""
        for member in self.members:
            if not member.running:
                member.process.start()
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for member in self.members:
                if not member.running:
                    continue
                try:
                    # A linearizable read answers only when the cluster has a leader and quorum.
                    self.call(member, "kv/range", {"key": "L2hlYWx0aA=="}, timeout=1.0)
                    return
                except (OSError, urllib.error.URLError, ValueError) as exc:
                    last = f"{member.name}: {exc}"
            time.sleep(0.1)
        logs = "\n".join(f"--- {m.name}\n{m.process.log_tail(15)}" for m in self.members)
        raise HarnessError(f"etcd cluster not healthy within {timeout} s ({last})\n{logs}")

    @staticmethod
    def call(member: Member, path: str, body: dict[str, object], timeout: float = 5.0) -> object:
        request = urllib.request.Request(
            f"{member.endpoint}/v3/{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with _OPENER.open(request, timeout=timeout) as response:
            return json.loads(response.read())

    def kill(self, index: int) -> None:
        """`kill -9` one member (by its pid)."""
        self.members[index].process.kill()

    def stop_all(self) -> None:
        """Stop every member (SIGTERM, by pid): the cluster is unreachable until `start()`."""
        for member in self.members:
            member.process.stop(timeout=15)

    def destroy(self) -> None:
        """Stop every member and remove the data directories."""
        try:
            self.stop_all()
        finally:
            for member in self.members:
                shutil.rmtree(member.data_dir, ignore_errors=True)
