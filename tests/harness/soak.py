"""A long run of container-like cycles against one real daemon, with kill -9 restarts.

What a host that restarts containers all day does to the plugin, driven through the protocol as
dockerd drives it (one keep-alive connection, Docker's order of calls):

    RequestAddress -> CreateEndpoint -> Join            (docker run)
    Leave -> DeleteEndpoint -> ReleaseAddress           (the container stops)

A few containers are alive at any time (a rolling window), so an address handed out twice is
seen: every new address is checked against the live ones. The daemon runs in a namespace of its
own on a veth "physical" parent; every `kill_every` cycles it is killed with SIGKILL right after
a Join (a link in the host namespace, an endpoint half-way through its life) and started again
on the same state directory, and the run goes on with the live containers it had.

At every checkpoint a `Sample` records what must stay flat over months: the daemon's RSS, open
fds and threads, the links in its namespace, the rows of both state files and their sizes.
`tests/bench/bench_soak.py` runs 10,000 cycles for docs/performance.md; `tests/kernel/test_soak.py`
runs a short version in every test run.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .netns import Netns, NetnsLab
from .plugind import PluginDaemon, PluginDaemons
from .unixhttp import UnixHTTPConnection

SUBNET = "198.51.100.0/24"
GATEWAY = "198.51.100.1"
NETWORK_ID = "5a" * 32
PARENT = "lab0"
ENDPOINT_PREFIX = "pmv"  # driver.names: the endpoint links' prefix in the host namespace
DOCKER_CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"

# Rows counted at each checkpoint: (file, table).
TABLES = (
    ("driver.sqlite3", "networks"),
    ("driver.sqlite3", "endpoints"),
    ("driver.sqlite3", "owned_links"),
    ("ipam.sqlite3", "leases"),
    ("ipam.sqlite3", "allocations"),
    ("ipam.sqlite3", "quarantine"),
)
STATE_FILES = ("driver.sqlite3", "driver.sqlite3-wal", "ipam.sqlite3", "ipam.sqlite3-wal")


class SoakFailure(AssertionError):
    """The plugin broke a promise during the run (an answer, an address, a link)."""


@dataclass(frozen=True)
class Sample:
    cycles: int
    restarts: int
    rss_kib: int
    fds: int  # every open fd but packet sockets, which probing opens and closes as it goes
    packet_sockets: int  # claim watchers and probes in flight at the moment of the sample
    threads: int
    links: int  # links in the daemon's namespace (lo and the parent included)
    rows: dict[str, int]
    file_kib: dict[str, int]
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "cycles": self.cycles,
            "restarts": self.restarts,
            "rss_kib": self.rss_kib,
            "fds": self.fds,
            "packet_sockets": self.packet_sockets,
            "threads": self.threads,
            "links": self.links,
            "rows": self.rows,
            "file_kib": self.file_kib,
            "seconds": round(self.seconds, 1),
        }


@dataclass
class SoakResult:
    samples: list[Sample] = field(default_factory=list)
    addresses_handed_out: int = 0
    distinct_addresses: int = 0
    leftover_links: list[str] = field(default_factory=list)
    final_rows: dict[str, int] = field(default_factory=dict)


class PluginConnection:
    """One keep-alive connection to the daemon, as dockerd keeps one per plugin."""

    def __init__(self, socket_path: Path, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._conn: UnixHTTPConnection | None = None

    def call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._conn is None:
            self._conn = UnixHTTPConnection(self.socket_path, self.timeout)
        payload = json.dumps(body).encode()
        try:
            self._conn.request(
                "POST", f"/{method}", body=payload, headers={"Content-Type": DOCKER_CONTENT_TYPE}
            )
            response = self._conn.getresponse()
            raw = response.read()
        except (OSError, ConnectionError) as exc:
            self.close()
            raise SoakFailure(f"{method}: connection failed: {exc}") from exc
        answer: dict[str, Any] = json.loads(raw) if raw else {}
        if response.status != 200 or answer.get("Err"):
            raise SoakFailure(f"{method} {body} -> {response.status} {answer}")
        return answer

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class Container:
    endpoint_id: str
    address: str  # CIDR, as RequestAddress answered


class Soak:
    """One daemon in a "host" namespace on a veth parent; `run` drives the cycles."""

    def __init__(
        self,
        lab: NetnsLab,
        daemons: PluginDaemons,
        *,
        window: int = 4,
        env: dict[str, str] | None = None,
        label: str = "soak",
    ) -> None:
        self.host: Netns = lab.netns(f"{label}host")
        self.lan: Netns = lab.netns(f"{label}lan")
        lab.veth(self.host, PARENT, self.lan, "wire0")
        self.daemon: PluginDaemon = daemons.spawn(
            label, netns=self.host, env={"PYMACVLAN_ANNOUNCE_COUNT": "0", **(env or {})}
        )
        assert self.daemon.state_dir is not None
        self.state_dir: Path = self.daemon.state_dir
        self.window = window
        self.conn = PluginConnection(self.daemon.socket_path)
        self.live: deque[Container] = deque()
        self.restarts = 0
        self.cycles = 0
        self._serial = 0
        self.pool_id = ""
        self.handed_out = 0
        self.distinct: set[str] = set()

    # ------------------------------------------------------------------ docker's calls

    def create_network(self) -> None:
        """`docker network create -d P --ipam-driver P --subnet .. --gateway .. -o parent=lab0`."""
        pool = self.conn.call(
            "IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": SUBNET, "Options": {}}
        )
        self.pool_id = pool["PoolID"]
        gateway = self.conn.call(
            "IpamDriver.RequestAddress",
            {
                "PoolID": self.pool_id,
                "Address": GATEWAY,
                "Options": {"RequestAddressType": "com.docker.network.gateway"},
            },
        )
        self.conn.call(
            "NetworkDriver.CreateNetwork",
            {
                "NetworkID": NETWORK_ID,
                "Options": {"com.docker.network.generic": {"parent": PARENT}},
                "IPv4Data": [
                    {"AddressSpace": "local", "Pool": SUBNET, "Gateway": gateway["Address"]}
                ],
                "IPv6Data": [],
            },
        )

    def delete_network(self) -> None:
        self.conn.call("NetworkDriver.DeleteNetwork", {"NetworkID": NETWORK_ID})
        self.conn.call("IpamDriver.ReleaseAddress", {"PoolID": self.pool_id, "Address": GATEWAY})
        self.conn.call("IpamDriver.ReleasePool", {"PoolID": self.pool_id})

    def start_container(self) -> Container:
        self._serial += 1
        # Random-looking like Docker's ids: a shared 12-character prefix would be another test.
        endpoint_id = hashlib.sha256(f"soak-{self._serial}".encode()).hexdigest()
        got = self.conn.call(
            "IpamDriver.RequestAddress", {"PoolID": self.pool_id, "Address": "", "Options": {}}
        )
        address = got["Address"]
        held = {c.address for c in self.live}
        if address in held:
            raise SoakFailure(f"cycle {self.cycles}: {address} handed out while a container has it")
        self.handed_out += 1
        self.distinct.add(address)
        self.conn.call(
            "NetworkDriver.CreateEndpoint",
            {
                "NetworkID": NETWORK_ID,
                "EndpointID": endpoint_id,
                "Interface": {"Address": address},
                "Options": {},
            },
        )
        self.conn.call(
            "NetworkDriver.Join",
            {
                "NetworkID": NETWORK_ID,
                "EndpointID": endpoint_id,
                "SandboxKey": f"/var/run/docker/netns/{endpoint_id[:12]}",
                "Options": {},
            },
        )
        container = Container(endpoint_id, address)
        self.live.append(container)
        return container

    def stop_container(self, container: Container) -> None:
        ids = {"NetworkID": NETWORK_ID, "EndpointID": container.endpoint_id}
        self.conn.call("NetworkDriver.Leave", ids)
        self.conn.call("NetworkDriver.DeleteEndpoint", ids)
        self.conn.call(
            "IpamDriver.ReleaseAddress",
            {"PoolID": self.pool_id, "Address": container.address.split("/")[0]},
        )
        self.live.remove(container)

    # ------------------------------------------------------------------ the run

    def cycle(self) -> None:
        """One container started; the oldest stopped once the window is full."""
        self.start_container()
        while len(self.live) > self.window:  # one more after a kill: it joined, then died
            self.stop_container(self.live[0])
        self.cycles += 1

    def kill_and_restart(self) -> None:
        """kill -9 right after a Join, then start again on the same state directory."""
        self.start_container()
        self.cycles += 1
        self.conn.close()
        self.daemon.kill9()
        deadline = time.monotonic() + 10
        while self.daemon.running and time.monotonic() < deadline:
            time.sleep(0.01)
        self.daemon.start()
        self.restarts += 1

    def run(
        self,
        cycles: int,
        *,
        checkpoint_every: int,
        kill_every: int = 0,
        on_sample: Callable[[Sample], None] | None = None,
    ) -> SoakResult:
        """`cycles` cycles; a sample every `checkpoint_every`; a kill -9 every `kill_every`."""
        result = SoakResult()
        started = time.monotonic()
        self.create_network()
        result.samples.append(self.sample(started))
        while self.cycles < cycles:
            due_kill = kill_every and self.cycles and self.cycles % kill_every == 0
            if due_kill and self.cycles // kill_every > self.restarts:
                # Sample before the kill: the RSS a daemon reaches after kill_every cycles.
                sample = self.sample(started)
                result.samples.append(sample)
                if on_sample:
                    on_sample(sample)
                self.kill_and_restart()
                continue
            self.cycle()
            if self.cycles % checkpoint_every == 0 and not (
                kill_every and self.cycles % kill_every == 0
            ):
                sample = self.sample(started)
                result.samples.append(sample)
                if on_sample:
                    on_sample(sample)
        while self.live:
            self.stop_container(self.live[0])
        result.samples.append(self.sample(started))
        self.delete_network()
        result.addresses_handed_out = self.handed_out
        result.distinct_addresses = len(self.distinct)
        result.leftover_links = [
            name for name in self.host.link_names() if name.startswith(ENDPOINT_PREFIX)
        ]
        result.final_rows = self.rows()
        return result

    def network_churn(
        self,
        cycles: int,
        *,
        checkpoint_every: int,
        on_sample: Callable[[Sample], None] | None = None,
    ) -> list[Sample]:
        """`docker network create` + `docker network rm`, `cycles` times (no containers)."""
        started = time.monotonic()
        samples = [self.sample(started, cycles=0)]
        for done in range(1, cycles + 1):
            self.create_network()
            self.delete_network()
            if done % checkpoint_every == 0:
                sample = self.sample(started, cycles=done)
                samples.append(sample)
                if on_sample:
                    on_sample(sample)
        return samples

    # ------------------------------------------------------------------ measurements

    def sample(self, started: float, *, cycles: int | None = None) -> Sample:
        pid = self.daemon.pid
        assert pid is not None
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        fds, packet_sockets = _count_fds(pid)
        return Sample(
            cycles=self.cycles if cycles is None else cycles,
            restarts=self.restarts,
            rss_kib=int(fields["VmRSS"].split()[0]),
            fds=fds,
            packet_sockets=packet_sockets,
            threads=int(fields["Threads"]),
            links=len(self.host.link_names()),
            rows=self.rows(),
            file_kib={
                name: (self.state_dir / name).stat().st_size // 1024
                for name in STATE_FILES
                if (self.state_dir / name).exists()
            },
            seconds=time.monotonic() - started,
        )

    def rows(self) -> dict[str, int]:
        """Row counts, read through a read-only connection (the daemon keeps writing)."""
        counts: dict[str, int] = {}
        for file_name, table in TABLES:
            uri = f"file:{self.state_dir / file_name}?mode=ro"
            with sqlite3.connect(uri, uri=True, timeout=10) as db:
                counts[table] = int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            db.close()
        return counts


def _count_fds(pid: int) -> tuple[int, int]:
    """(fds that are not packet sockets, packet sockets) of a process.

    A packet socket is recognised by its inode in /proc/PID/net/packet (the process's own
    namespace). Probes open one for a few hundred milliseconds at any moment, so a sample may
    catch some in flight: they are counted apart and bounded, the rest must stay exact.
    """
    packet_inodes = {
        line.split()[-1]
        for line in Path(f"/proc/{pid}/net/packet").read_text().splitlines()[1:]
        if line.strip()
    }
    fds = packet_sockets = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed while we looked
            continue
        if target.startswith("socket:[") and target[8:-1] in packet_inodes:
            packet_sockets += 1
        else:
            fds += 1
    return fds, packet_sockets
