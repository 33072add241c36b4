"""The managed v2 plugin under test: built by scripts/build-plugin, driven with the docker CLI.

What the user types is what the tests type: ``docker plugin create/set/enable/disable/upgrade/
install``, ``docker network create -d <name>:latest``. Nothing here talks to the plugin behind
Docker's back except where a test measures the plugin itself (its start-up, its stored state).

Facts the helpers rely on (checked on Docker 20.10 and 28.5, and in moby's source):

* A managed plugin's socket is ``/run/docker/plugins/<plugin id>/<interface.socket>`` on the host,
  whatever dockerd's ``--exec-root`` says (moby: the plugins' exec root is fixed).
* Its processes run in a cgroup named after the plugin id: that finds them without matching
  process names.
* Network and IPAM drivers of a managed plugin are registered under the plugin's full name,
  ``<name>:<tag>``; ``-d <name>`` alone is "could not resolve driver" (moby resolveDriver).
* Docker 20.10 refuses a second ``docker plugin create`` from a byte-identical rootfs ("content
  sha256:... already exists"), so every create stamps the rootfs first (`PluginBuild.stamp`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Plugin, wait_for
from tests.harness.dockerd import Dockerd
from tests.harness.netns import Netns, NetnsLab
from tests.harness.paths import REPO
from tests.harness.proc import HarnessError, ManagedProcess

BUILD_SCRIPT = REPO / "scripts" / "build-plugin"
PUSH_SCRIPT = REPO / "scripts" / "push-plugin"
CONFIG_JSON = REPO / "config.json"
PLUGIN_EXEC_ROOT = Path("/run/docker/plugins")
DEFAULT_STATE_SOURCE = "/var/lib/pymacvlan"
BUILD_STAMP = "etc/pymacvlan-build"

# The LAN's subnets. Not 192.0.2.0/24: this project's VMs have their own uplink (eth0) in it, and
# a container address that the host also owns is answered by the host (see `make_lan`).
LAN_SUBNET = "203.0.113.0/24"
LAN_PEER = "203.0.113.254"
LAN_SUBNET_2 = "198.51.100.0/24"
LAN_PEER_2 = "198.51.100.254"


def plugin_config() -> dict[str, Any]:
    """The checkout's config.json."""
    config: dict[str, Any] = json.loads(CONFIG_JSON.read_text())
    return config


def settable_defaults() -> dict[str, str]:
    """``{name: value}`` of every settable environment variable, as config.json ships it."""
    return {
        env["name"]: env.get("value", "")
        for env in plugin_config()["env"]
        if "value" in env.get("settable", [])
    }


# ------------------------------------------------------------------------------ build


@dataclass(frozen=True)
class PluginBuild:
    """A plugin directory (config.json + rootfs/) written by ``build-plugin --output``."""

    directory: Path
    seconds: float

    def stamp(self, label: str) -> None:
        """Make the rootfs unique (see the module docstring) and tell builds apart."""
        (self.directory / "rootfs" / BUILD_STAMP).write_text(f"{label}\n")


def build_plugin(dockerd: Dockerd, name: str, output: Path, base: str) -> PluginBuild:
    """``scripts/build-plugin --base BASE --disabled --output OUTPUT NAME`` against `dockerd`."""
    started = time.monotonic()
    result = subprocess.run(
        [str(BUILD_SCRIPT), "--base", base, "--disabled", "--output", str(output), name],
        capture_output=True,
        text=True,
        env=dockerd.env(),
        timeout=900,
    )
    if result.returncode != 0:
        raise HarnessError(f"build-plugin failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return PluginBuild(output, time.monotonic() - started)


def push_plugin(dockerd: Dockerd, build: PluginBuild, ref: str) -> None:
    """``scripts/push-plugin --from DIR REF``: create REF from the build, push it, remove it."""
    result = subprocess.run(
        [str(PUSH_SCRIPT), "--from", str(build.directory), ref],
        capture_output=True,
        text=True,
        env=dockerd.env(),
        timeout=600,
    )
    if result.returncode != 0:
        raise HarnessError(f"push-plugin failed ({result.returncode}):\n{result.stderr[-4000:]}")


# ----------------------------------------------------------------------------- plugin


@dataclass
class ManagedPlugin(Plugin):
    """A managed plugin in `dockerd`; `name` is the full ``<name>:<tag>`` used with ``-d``.

    `state_dir` is the host directory its state mount points at (`use_state_dir`)."""

    state_dir: Path | None = None

    def inspect(self, template: str) -> str:
        """``docker plugin inspect --format TEMPLATE``."""
        return self.docker("plugin", "inspect", "--format", template, self.name).strip()

    @property
    def id(self) -> str:
        return self.inspect("{{.Id}}")

    @property
    def enabled(self) -> bool:
        return self.inspect("{{.Enabled}}") == "true"

    @property
    def state_source(self) -> str:
        """The host directory mounted as the state, as Docker will mount it (Config, not
        Settings: after ``docker plugin upgrade`` only the former is true, see docs/install.md)."""
        mounts = '{{range .Config.Mounts}}{{if eq .Name "state"}}{{.Source}}{{end}}{{end}}'
        return self.inspect(mounts)

    @property
    def socket_path(self) -> Path:
        return PLUGIN_EXEC_ROOT / self.id / str(plugin_config()["interface"]["socket"])

    def enable(self) -> None:
        self.docker("plugin", "enable", self.name)

    def disable(self, *, force: bool = False) -> subprocess.CompletedProcess[str]:
        """``docker plugin disable [-f]``; returns the result (a refusal is not an exception)."""
        args = ["plugin", "disable", *(["--force"] if force else []), self.name]
        return self.dockerd.cli(*args, check=False)

    def set(self, *settings: str) -> None:
        """``docker plugin set NAME K=V ...`` (the plugin must be disabled)."""
        self.docker("plugin", "set", self.name, *settings)

    def use_state_dir(self, state_dir: Path) -> None:
        """Point the state mount at `state_dir` (disabled plugin; created here, like install)."""
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.set(f"state.source={state_dir}")
        self.state_dir = state_dir

    def allocations(self) -> list[str]:
        """The addresses its IPAM state holds (see `stored_allocations`)."""
        if self.state_dir is None:
            raise HarnessError(f"{self.name} has no state directory of the test's")
        return [address for address, _kind in stored_allocations(self.state_dir)]

    def reset_settings(self) -> None:
        """Every settable environment variable back to config.json's value."""
        self.set(*(f"{key}={value}" for key, value in settable_defaults().items()))

    def pids(self) -> list[int]:
        """Processes of this plugin (by its cgroup, named after the plugin id)."""
        return plugin_pids(self.id)

    def build_stamp(self) -> str:
        """`PluginBuild.stamp` of the rootfs the running plugin was started from."""
        pids = self.pids()
        if not pids:
            raise HarnessError(f"plugin {self.name} has no running process")
        return Path(f"/proc/{pids[0]}/root", BUILD_STAMP).read_text().strip()

    def log(self) -> str:
        """The plugin's output: dockerd's log lines tagged ``plugin=<id>``."""
        tag = f"plugin={self.id}"
        text = self.dockerd.log_path.read_text(errors="replace")
        return "\n".join(line for line in text.splitlines() if tag in line)

    def remove(self) -> None:
        """Containers and networks on it (enabling it if needed), then ``docker plugin rm -f``."""
        if self.dockerd.cli("plugin", "inspect", self.name, check=False).returncode != 0:
            return
        if not self.enabled:
            with contextlib.suppress(HarnessError):
                self.enable()
        self.remove_everything()
        self.dockerd.cli("plugin", "rm", "--force", self.name, check=False)


def plugin_pids(plugin_id: str) -> list[int]:
    """Live processes whose cgroup is the plugin's."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cgroups = (entry / "cgroup").read_text()
        except OSError:
            continue
        if plugin_id in cgroups:  # 64 hex digits: no other cgroup path contains them
            pids.append(int(entry.name))
    return pids


# ------------------------------------------------------------------ start-up timing


@dataclass(frozen=True)
class StartUp:
    """How long `docker plugin enable` and the plugin's own start took."""

    socket_s: float  # from the exec of the plugin's entrypoint to its socket accepting
    container_s: float  # the same from the fork of its container's init (runc setup included)
    enable_s: float  # the whole `docker plugin enable`, as the user waits for it


ENTRYPOINT_ARGV = b"\0".join(a.encode() for a in plugin_config()["entrypoint"])


def _boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def process_start(pid: int) -> float:
    """Start (fork) of `pid` in CLOCK_BOOTTIME seconds (the kernel's record, 1/CLK_TCK)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime
    return start_ticks / os.sysconf("SC_CLK_TCK")


def _entrypoint_pid(plugin_id: str) -> int | None:
    """The pid running config.json's entrypoint in the plugin's cgroup, once it has exec'd."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # (a script entrypoint runs as "<interpreter> <entrypoint> ...")
            if ENTRYPOINT_ARGV not in (entry / "cmdline").read_bytes():
                continue
            if plugin_id in (entry / "cgroup").read_text():
                return int(entry.name)
        except OSError:
            continue
    return None


def socket_accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def enable_and_time(plugin: ManagedPlugin, timeout: float = 30.0) -> StartUp:
    """Enable the plugin and measure when its socket first accepts a connection.

    A poller watches while `docker plugin enable` runs: first for the process that exec'd the
    entrypoint (its container's init becomes it), then for the socket to accept, every few ms.
    That is what Docker's deadline applies to: dockerd dials the socket 0.5 s after starting the
    plugin and then every 3 s, three times, before it gives up (moby plugin/manager_linux.go,
    pluginPostStart).
    """
    sock = plugin.socket_path
    plugin_id = plugin.id
    seen: dict[str, float] = {}
    pid: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            if not pid:
                found = _entrypoint_pid(plugin_id)
                if found is not None:
                    seen["exec"] = _boottime()
                    pid.append(found)
            if socket_accepts(sock):
                seen["socket"] = _boottime()
                return
            time.sleep(0.002)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    started = time.monotonic()
    try:
        plugin.enable()
        enable_s = time.monotonic() - started
        poller.join(timeout)
    finally:
        stop.set()
    if "socket" not in seen or not pid:
        raise HarnessError(f"{sock} never accepted a connection (seen: {seen})")
    return StartUp(
        socket_s=seen["socket"] - seen["exec"],
        container_s=seen["socket"] - process_start(pid[0]),
        enable_s=enable_s,
    )


# ------------------------------------------------------------------------- the state


def stored_allocations(state_dir: Path) -> list[tuple[str, str]]:
    """``(address, kind)`` of every allocation in the plugin's IPAM state, sorted.

    Read-only SQL on ``ipam.sqlite3`` (ipam/sqlite_store.py's ``allocations`` table) while the
    plugin runs: WAL lets a reader in at any time, and nothing is written.
    """
    db = state_dir / "ipam.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT address, kind FROM allocations ORDER BY address").fetchall()
    return [(str(address), str(kind)) for address, kind in rows]


# --------------------------------------------------------------------------- the LAN


@dataclass
class Lan:
    """A "physical" LAN: `parent` is the root-namespace end of a veth whose other end sits in
    `peer`, another machine on the LAN (203.0.113.254/24 and 198.51.100.254/24)."""

    parent: str
    peer: Netns


def host_addresses_in(*subnets: str) -> list[str]:
    """Addresses of the root namespace (this machine) inside `subnets`."""
    nets = [ipaddress.ip_network(s) for s in subnets]
    out = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True, check=True)
    return [
        f"{info['local']} on {link['ifname']}"
        for link in json.loads(out.stdout)
        for info in link.get("addr_info", [])
        if any(ipaddress.ip_address(info["local"]) in net for net in nets)
    ]


def make_lan(lab: NetnsLab) -> Lan:
    """The LAN of one test. The root end of the cable gets ``arp_ignore=1``: by default Linux
    answers ARP on every interface for every address the host owns, so a container address that
    is also one of the host's would be answered by the host (and the host's reply routed out of
    its uplink). The subnets must not be the host's either."""
    clash = host_addresses_in(LAN_SUBNET, LAN_SUBNET_2)
    if clash:
        raise HarnessError(f"this machine has addresses in the tests' LAN subnets: {clash}")
    peer = lab.netns("lan")
    parent = lab.veth_to_root(peer, "wire0")
    Path(f"/proc/sys/net/ipv4/conf/{parent}/arp_ignore").write_text("1\n")
    peer.add_address("wire0", f"{LAN_PEER}/24")
    peer.add_address("wire0", f"{LAN_PEER_2}/24")
    return Lan(parent, peer)


# -------------------------------------------------------------------------- containers


def run(p: Plugin, image: str, name: str, network: str, *args: str) -> None:
    p.docker("run", "-d", "--name", name, "--network", network, *args, image, "sleep", "3600")


def pings(p: Plugin, container: str, target: str) -> bool:
    cmd = ["exec", container, "ping", "-c", "1", "-W", "2", target]
    return p.dockerd.cli(*cmd, check=False).returncode == 0


def running_addresses(p: Plugin, network: str) -> dict[str, str]:
    """``{container name: address}`` of the running containers on `network`."""
    out = p.docker("ps", "--filter", f"network={network}", "--format", "{{.Names}}")
    return {name: p.ip_of(name, network) for name in out.split()}


def wait_running(p: Plugin, *containers: str, timeout: float = 60.0) -> None:
    def all_running() -> bool:
        states = p.docker("inspect", "-f", "{{.State.Running}}", *containers).split()
        return all(state == "true" for state in states)

    wait_for(all_running, timeout, f"{', '.join(containers)} running")


# ---------------------------------------------------------------------------- registry


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the registry binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Registry:
    """Debian's ``docker-registry`` on 127.0.0.1 only, with its own storage; stopped by pid."""

    def __init__(self, root: Path, command: str = "docker-registry") -> None:
        self.root = root
        self.port = free_loopback_port()
        self.config = root / "config.yml"
        self.process = ManagedProcess(
            [command, "serve", str(self.config)], root / "registry.log", env=dict(os.environ)
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n"
            f"http:\n  addr: {self.address}\n"
        )
        self.process.start()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if not self.process.running:
                raise HarnessError(f"docker-registry exited:\n{self.process.log_tail()}")
            if time.monotonic() > deadline:
                self.process.stop()
                raise HarnessError(f"docker-registry did not answer within {timeout} s")
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        self.process.stop(timeout=10)


@contextlib.contextmanager
def registry(root: Path) -> Iterator[Registry]:
    reg = Registry(root)
    reg.start()
    try:
        yield reg
    finally:
        reg.stop()


def privileges(dockerd: Dockerd, ref: str) -> Mapping[str, list[str]]:
    """What ``docker plugin install`` asks the user to grant, ``{name: values}``."""
    listed = dockerd.api("GET", f"/plugins/privileges?remote={ref}")
    merged: dict[str, set[str]] = {}
    for item in listed:  # one item per mount: merged, as `docker plugin install` shows them
        merged.setdefault(item["Name"], set()).update(item["Value"])
    return {name: sorted(values) for name, values in merged.items()}
