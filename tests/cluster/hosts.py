"""Lab "hosts" for the cluster tests: real `pymacvlan serve` processes in cluster mode.

Each host is one daemon with its own unix socket, state directory and node name, all pointed at
the same etcd cluster and key prefix; the tests drive them with the IpamDriver protocol over the
socket, as dockerd would, and read the cluster with the real `pymacvlan cluster` command.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.paths import venv_bin
from tests.harness.plugind import PluginDaemon, serve_argv

GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}


@dataclass
class Answer:
    status: int
    body: Any

    @property
    def err(self) -> str:
        return str(self.body.get("Err", "")) if isinstance(self.body, dict) else str(self.body)


@dataclass
class Host:
    """One daemon of the lab cluster."""

    node: str
    daemon: PluginDaemon
    state_dir: Path
    etcd_args: list[str] = field(default_factory=list)

    def call(self, method: str, payload: dict[str, Any]) -> Answer:
        status, body = self.daemon.call(method, payload, timeout=30)
        return Answer(status, body)

    def request_pool(self, subnet: str, sub_pool: str = "", **options: str) -> str:
        answer = self.call(
            "IpamDriver.RequestPool",
            {
                "AddressSpace": "local",
                "Pool": subnet,
                "SubPool": sub_pool,
                "Options": options,
                "V6": ":" in subnet,
            },
        )
        assert answer.status == 200, answer
        return str(answer.body["PoolID"])

    def release_pool(self, pool_id: str) -> None:
        answer = self.call("IpamDriver.ReleasePool", {"PoolID": pool_id})
        assert answer.status == 200, answer

    def request(self, pool_id: str, address: str = "", **options: str) -> Answer:
        return self.call(
            "IpamDriver.RequestAddress",
            {"PoolID": pool_id, "Address": address, "Options": options},
        )

    def allocate(self, pool_id: str, address: str = "", **options: str) -> str:
        """An address (without its prefix length); fails the test on an error answer."""
        answer = self.request(pool_id, address, **options)
        assert answer.status == 200, (self.node, answer)
        return str(ipaddress.ip_interface(answer.body["Address"]).ip)

    def release(self, pool_id: str, address: str) -> None:
        answer = self.call("IpamDriver.ReleaseAddress", {"PoolID": pool_id, "Address": address})
        assert answer.status == 200, answer

    def log(self) -> str:
        return self.daemon.log()


class Hosts:
    """Starts hosts for one test; `cleanup()` stops them all (by pid)."""

    def __init__(self, tmp_dir: Path, endpoints: str, prefix: str) -> None:
        self.tmp_dir = tmp_dir
        self.endpoints = endpoints
        self.prefix = prefix
        self.hosts: list[Host] = []

    def start(
        self,
        node: str,
        *,
        quarantine: float = 0.0,
        sweep: float = 30.0,
        endpoints: str | None = None,
        extra: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
    ) -> Host:
        state_dir = self.tmp_dir / f"{node}-state"
        socket_path = self.tmp_dir / f"{node}.sock"
        etcd_args = [
            "--etcd-endpoints",
            endpoints or self.endpoints,
            "--etcd-prefix",
            self.prefix,
            "--etcd-timeout",
            "1",
        ]
        argv = serve_argv(
            socket_path,
            state_dir,
            node,
            "--quarantine-seconds",
            str(quarantine),
            "--cluster-sweep-seconds",
            str(sweep),
            "--log-level",
            "info",
            *etcd_args,
            *extra,
        )
        daemon = PluginDaemon(
            argv,
            socket_path,
            self.tmp_dir / f"{node}.log",
            name=node,
            state_dir=state_dir,
            env=env,
        )
        host = Host(node, daemon, state_dir, etcd_args)
        self.hosts.append(host)
        daemon.start()
        return host

    def cli(
        self, *args: str, endpoints: str | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`pymacvlan cluster ARGS` against the lab's etcd (`env`: more PYMACVLAN_* settings)."""
        env = {
            **os.environ,
            "PYMACVLAN_ETCD_ENDPOINTS": endpoints or self.endpoints,
            "PYMACVLAN_ETCD_PREFIX": self.prefix,
            **(env or {}),
        }
        return subprocess.run(
            [str(venv_bin("pymacvlan")), "cluster", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def status(self, endpoints: str | None = None) -> dict[str, Any]:
        done = self.cli("status", "--json", endpoints=endpoints)
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def blocks_of(self, node: str, endpoints: str | None = None) -> list[ipaddress.IPv4Network]:
        status = self.status(endpoints)
        return sorted(
            ipaddress.IPv4Network(block["block"])
            for pool in status["pools"]
            for block in pool["blocks"]
            if block["node"] == node
        )

    def cleanup(self) -> None:
        for host in reversed(self.hosts):
            host.daemon.cleanup()
        self.hosts.clear()
