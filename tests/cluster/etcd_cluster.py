"""A real etcd cluster on loopback ports, owned by one test (or one session).

Debian's `etcd-server` (3.4) provides `/usr/bin/etcd`. Every member listens on 127.0.0.1 only, on
ports picked free at start, with its data directory under the test's tmp dir. Members are started
and stopped by pid (`tests.harness.proc.ManagedProcess`), never by name, and `destroy()` stops all
of them, also when a test failed half-way.

A cluster may serve its clients over TLS (`ServerTls`: etcd's --cert-file, --key-file,
--trusted-ca-file and --client-cert-auth; the peers stay on plain loopback) and take further
etcd flags (`extra_args`, such as a short --auth-token-ttl); `etcdctl()` reaches it with the
harness's own client certificate, to add users and turn authentication on.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
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


@dataclass(frozen=True)
class ServerTls:
    """etcd's client-side TLS: its certificate, and the CA and certificate of the harness's own
    client (`etcdctl()`, the health checks)."""

    cert: Path
    key: Path
    ca: Path
    client_cert: Path
    client_key: Path
    client_cert_auth: bool = True


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    process: ManagedProcess
    scheme: str = "http"

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.process.running


class EtcdCluster:
    """`size` etcd members on loopback forming one cluster."""

    def __init__(
        self,
        etcd: str,
        base_dir: Path,
        size: int = 3,
        *,
        tls: ServerTls | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.etcd = etcd
        self.base_dir = base_dir
        self.tls = tls
        self._opener = _OPENER
        if tls is not None:
            context = ssl.create_default_context(cafile=str(tls.ca))
            context.load_cert_chain(tls.client_cert, tls.client_key)
            self._opener = urllib.request.build_opener(
                urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
            )
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
                    scheme="https" if tls is not None else "http",
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
                *self._tls_args(),
                *extra_args,
            ]

    def _tls_args(self) -> list[str]:
        tls = self.tls
        if tls is None:
            return []
        args = ["--cert-file", str(tls.cert), "--key-file", str(tls.key)]
        args += ["--trusted-ca-file", str(tls.ca)]
        return args + (["--client-cert-auth"] if tls.client_cert_auth else [])

    def etcdctl(self, *args: str, etcdctl: str = "etcdctl") -> str:
        """`etcdctl ARGS` against every member (v3 API, gRPC: not the gateway pymacvlan uses),
        with the harness's client certificate; its output, or `HarnessError`."""
        argv = [etcdctl, "--endpoints", self.endpoints, "--dial-timeout", "5s"]
        if self.tls is not None:
            argv += ["--cacert", str(self.tls.ca), "--cert", str(self.tls.client_cert)]
            argv += ["--key", str(self.tls.client_key)]
        done = subprocess.run(
            [*argv, *args],
            capture_output=True,
            text=True,
            timeout=30,
            env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        )
        if done.returncode != 0:
            raise HarnessError(f"etcdctl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

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

    def call(
        self, member: Member, path: str, body: dict[str, object], timeout: float = 5.0
    ) -> object:
        request = urllib.request.Request(
            f"{member.endpoint}/v3/{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with self._opener.open(request, timeout=timeout) as response:
            return json.loads(response.read())

    def kill(self, index: int) -> None:
        """`kill -9` one member (by its pid)."""
        self.members[index].process.kill()

    def stop(self, index: int) -> None:
        """Stop one member cleanly (SIGTERM, by its pid); `start()` brings it back."""
        self.members[index].process.stop(timeout=15)

    def leader(self, timeout: float = 10.0) -> int:
        """The index of the member that leads now, as `etcdctl endpoint status` shows it (each
        member's status names the leader's ID; the leader is the one whose own ID that is)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index, member in enumerate(self.members):
                if not member.running:
                    continue
                try:
                    status = self.call(member, "maintenance/status", {}, timeout=1.0)
                except (OSError, urllib.error.URLError, ValueError):
                    continue
                if isinstance(status, dict):
                    header = status.get("header", {})
                    if status.get("leader") and status.get("leader") == header.get("member_id"):
                        return index
            time.sleep(0.1)
        raise HarnessError(f"no etcd member reported itself the leader within {timeout} s")

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
