"""A real dockerd owned by the test session: start, stop, restart, ``kill -9``, clean up.

Everything of one dockerd lives under one directory ``<scratch>/pmv-dockerd-<pid>-<n>``: data root,
exec root, pidfile, socket, log, daemon.json. That directory name is how the harness recognises
its own processes (managed containerd, shims) and mounts, and how a later run sweeps what a crashed
run left behind.

Rules:

* One harness dockerd per machine at a time (engines share iptables chains and ``docker0``): a
  machine-wide lock, and no other Docker engine may be running.
* dockerd's own addresses are documentation ranges too: ``docker0`` and its default pools live in
  ``198.19.240.0/20`` (tests should not use that block for their own networks).
* Engines: ``bookworm`` is the system's docker.io 20.10; ``trixie`` (26.1) and ``sid`` (28.5) are
  unpacked by ``tests/harness/fetch_engine.sh`` into ``.work/engines/<name>/root`` and put first on
  dockerd's PATH, while bookworm's runc stays in use.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .paths import WORK, scratch_dir
from .prereq import slow
from .proc import (
    HarnessError,
    ManagedProcess,
    become_subreaper,
    cmdline,
    pid_alive,
    pids_mentioning,
    reap_orphans,
    terminate_pid,
    wait_pid_gone,
)
from .unixhttp import request

ENGINE_ENV = "PYMACVLAN_TEST_ENGINE"
# dockerd's last words when the managed containerd it found running never answered.
CONTAINERD_TIMEOUT = "timeout waiting for containerd to start"
ENGINES = ("bookworm", "trixie", "sid")
DEFAULT_ENGINE = "bookworm"

# docker0 and the pools of `docker network create` without --subnet; the defaults are
# 172.17.0.0/16 and friends, which must never appear on an interface here.
DAEMON_ADDRESS_ARGS = (
    "--bip=198.19.255.1/24",
    "--default-address-pool=base=198.19.240.0/21,size=24",
)
# In the emulated guest dockerd's iptables set-up alone takes a minute; the guest tests are about
# VLAN and ipvlan networks, which do not need it.
GUEST_DAEMON_ARGS = ("--iptables=false", "--ip6tables=false")
ROOT_PREFIX = "pmv-dockerd-"
LOCK_PATH = Path("/run/lock/pymacvlan-test-dockerd.lock")
# dockerd uses a system containerd instead of starting its own as soon as this file exists.
SYSTEM_CONTAINERD_SOCKET = Path("/run/containerd/containerd.sock")

_root_ids = itertools.count()


# What dockerd executes under time pressure (containerd must answer within 15 s) or per container;
# copied by `Engine.stage`. dockerd and the CLI are faulted in once and then stay cached.
STAGED_COMMANDS = ("containerd", "containerd-shim-runc-v2", "runc", "docker-proxy", "docker-init")


@dataclass(frozen=True)
class Engine:
    """A Docker engine build: the system's (``root`` None) or one unpacked from Debian .debs."""

    name: str
    root: Path | None
    staged: Path | None = None  # a copy of the binaries, first on PATH (see `stage`)

    @property
    def bin_dirs(self) -> list[Path]:
        """Directories that go first on PATH for dockerd and the CLI."""
        dirs = [self.staged] if self.staged else []
        if self.root is not None:
            dirs += [self.root / "usr/bin", self.root / "usr/sbin"]
        return dirs

    def stage(self, dest: Path) -> Engine:
        """This engine with its binaries copied to `dest` (a tmpfs) and put first on PATH.

        For the virtme-ng guest: executing a big Go binary straight from the guest's 9p root
        faults it in page by page over 9p, so slowly that dockerd gives up on its containerd
        (a fixed 15 s start-up timeout); one sequential copy is fast.
        """
        dest.mkdir(parents=True, exist_ok=True)
        for command in STAGED_COMMANDS:
            source = self.which(command)
            if source is not None and not (dest / command).exists():
                shutil.copy(source, dest / command)
        return Engine(self.name, self.root, dest)

    def available(self) -> bool:
        """True if dockerd of this engine can be run."""
        return self.which("dockerd") is not None

    def missing_reason(self) -> str:
        """What to do when `available()` is False."""
        if self.root is None:
            return "dockerd is not installed (apt-get install docker.io; see .ci/run)"
        return f"engine {self.name!r} is not fetched: run tests/harness/fetch_engine.sh {self.name}"

    def path(self) -> str:
        """PATH for this engine: its binaries first, then the system's (bookworm runc)."""
        system = os.environ.get("PATH", "").split(":")
        sbin = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        dirs = [str(d) for d in self.bin_dirs] + system + [d for d in sbin if d not in system]
        return ":".join(d for d in dirs if d)

    def which(self, command: str) -> str | None:
        """Full path of `command` as dockerd of this engine would find it."""
        return shutil.which(command, path=self.path())

    def version(self) -> str:
        """``dockerd --version`` of this engine."""
        dockerd = self.which("dockerd")
        if dockerd is None:
            raise HarnessError(self.missing_reason())
        return subprocess.run([dockerd, "--version"], capture_output=True, text=True).stdout.strip()

    def major(self) -> int:
        """The major version (20, 26, 28...) from ``dockerd --version``."""
        found = re.search(r"version (\d+)\.", self.version())
        if found is None:
            raise HarnessError(f"no version in {self.version()!r}")
        return int(found.group(1))

    def picks_gateways(self) -> bool:
        """Whether this engine always takes a gateway address for a network. Docker 28 added
        GwAllocCheck, which lets a driver (pymacvlan, macvlan, ipvlan) decline it."""
        return self.major() < 28


def engine(name: str) -> Engine:
    """The engine called `name` (``bookworm``, ``trixie``, ``sid``)."""
    if name not in ENGINES:
        raise HarnessError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    if name == "bookworm":
        return Engine(name, None)
    return Engine(name, WORK / "engines" / name / "root")


def engine_names_from_env() -> list[str]:
    """Engines selected by ``PYMACVLAN_TEST_ENGINE`` (comma-separated, default bookworm)."""
    raw = os.environ.get(ENGINE_ENV, "") or DEFAULT_ENGINE
    names = [name.strip() for name in raw.split(",") if name.strip()]
    for name in names:
        engine(name)  # validates
    return names


class MachineLock:
    """The machine-wide "one harness dockerd at a time" lock (flock; released if we die)."""

    def __init__(self, path: Path = LOCK_PATH) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, timeout: float, on_wait: Callable[[str], None] | None = None) -> bool:
        """Wait up to `timeout` seconds for the lock; True once held.

        `on_wait` is told (once) which pid holds the lock when we have to wait.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    return False
                if not announced and on_wait is not None:
                    on_wait(os.pread(fd, 64, 0).decode(errors="replace").strip())
                    announced = True
                time.sleep(1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        """Release the lock."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class Dockerd:
    """One dockerd with everything under `root`; survives restarts with the same data root."""

    def __init__(
        self,
        root: Path,
        engine: Engine,
        extra_args: Sequence[str] = DAEMON_ADDRESS_ARGS,
    ) -> None:
        self.root = root
        self.engine = engine
        self.data_root = root / "data"
        self.exec_root = root / "exec"
        self.pidfile = root / "docker.pid"
        self.socket = root / "docker.sock"
        self.config_file = root / "daemon.json"
        self.log_path = root / "dockerd.log"
        self.extra_args = list(extra_args)
        self._client: Any = None
        self.process = ManagedProcess(self._argv(), self.log_path, env=self.env())

    @classmethod
    def create(cls, engine: Engine, extra_args: Sequence[str] = DAEMON_ADDRESS_ARGS) -> Dockerd:
        """A dockerd in a fresh directory named after this pytest process."""
        root = scratch_dir() / f"{ROOT_PREFIX}{os.getpid()}-{next(_root_ids)}"
        return cls(root, engine, extra_args)

    def __repr__(self) -> str:
        return f"Dockerd({self.engine.name}, {self.root})"

    @property
    def base_url(self) -> str:
        """``unix://...`` for `docker.DockerClient` and ``docker -H``."""
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        """Pid of the running dockerd, None if it is not running."""
        return self.process.pid if self.process.running else None

    @property
    def running(self) -> bool:
        """True while dockerd runs."""
        return self.process.running

    def env(self) -> dict[str, str]:
        """Environment for dockerd and the CLI: engine first on PATH, private CLI config."""
        return {
            **os.environ,
            "PATH": self.engine.path(),
            "DOCKER_CONFIG": str(self.root / "cli"),
            "DOCKER_HOST": self.base_url,
        }

    def _argv(self) -> list[str]:
        dockerd = self.engine.which("dockerd") or "dockerd"
        return [
            dockerd,
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.pidfile}",
            f"--config-file={self.config_file}",
            f"--host={self.base_url}",
            *self.extra_args,
        ]

    def start(self, timeout: float = 120.0) -> None:
        """Start dockerd and wait until it answers ``/_ping``."""
        for directory in (self.root, self.data_root, self.exec_root, self.root / "cli"):
            directory.mkdir(parents=True, exist_ok=True)
        if not self.config_file.exists():
            self.config_file.write_text("{}\n")  # never read the machine's /etc/docker/daemon.json
        try:
            self._start_once(timeout)
        except ContainerdTimeout:
            # After a kill -9, the old managed containerd may still be dying (a parent-death
            # SIGKILL that waits on a busy disk): dockerd saw its pid, waited 15 s for its socket
            # and gave up. systemd would start dockerd again; so does the harness, once the old
            # containerd is gone.
            pid = self._containerd_pid()
            if pid is not None:
                wait_pid_gone(pid, slow(30.0))
            self._start_once(timeout)

    def _start_once(self, timeout: float) -> None:
        # A zombie containerd from before a kill -9 would look alive to dockerd (see proc.py).
        become_subreaper()
        reap_orphans()
        self.process.start()
        timeout = slow(timeout)
        deadline = time.monotonic() + timeout
        while not self._pings():
            if not self.process.running:
                tail = self.process.log_tail()
                error = ContainerdTimeout if CONTAINERD_TIMEOUT in tail else HarnessError
                raise error(f"{self} exited with {self.process.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise HarnessError(f"{self} did not answer within {timeout} s")
            time.sleep(0.1)

    def _pings(self) -> bool:
        try:
            status, body = request(self.socket, "GET", "/_ping", timeout=5)
        except OSError:
            return False
        return status == 200 and body == b"OK"

    def client(self) -> Any:
        """A `docker.DockerClient` on this dockerd (closed on stop)."""
        if self._client is None:
            # Imported here: it costs tens of seconds in the emulated guest, and few tests need it.
            import docker  # type: ignore[import-untyped]

            self._client = docker.DockerClient(base_url=self.base_url, timeout=slow(120))
        return self._client

    def api(self, method: str, path: str, body: Any = None, *, timeout: float = 120.0) -> Any:
        """One Engine API call (``api("GET", "/containers/json?all=1")``); returns parsed JSON.

        Raises `HarnessError` on an error status, with dockerd's message.
        """
        payload = b"" if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        status, raw = request(self.socket, method, path, payload, headers, timeout=slow(timeout))
        parsed = json.loads(raw) if raw.strip() else None
        if status >= 400:
            message = parsed.get("message") if isinstance(parsed, dict) else raw.decode()
            raise HarnessError(f"{method} {path}: {status} {message}")
        return parsed

    def cli(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 120.0,
        input: bytes | Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI (this engine's, else the system's) against this dockerd.

        `input` is fed to stdin: bytes, or a file (for big tarballs).
        """
        docker_cli = self.engine.which("docker")
        if docker_cli is None:
            raise HarnessError("no docker CLI found (apt-get install docker.io)")
        argv = [docker_cli, *args]
        if isinstance(input, Path):
            with input.open("rb") as stdin:
                result = subprocess.run(
                    argv, stdin=stdin, capture_output=True, env=self.env(), timeout=slow(timeout)
                )
        else:
            result = subprocess.run(
                argv, input=input, capture_output=True, env=self.env(), timeout=slow(timeout)
            )
        completed = subprocess.CompletedProcess(
            result.args,
            result.returncode,
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )
        if check and result.returncode != 0:
            raise HarnessError(
                f"docker {' '.join(args)} failed ({result.returncode}): {completed.stderr.strip()}"
            )
        return completed

    def _close_client(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    def stop(self, timeout: float = 90.0) -> None:
        """SIGTERM dockerd (SIGKILL after `timeout`), wait until its pid is gone, then make sure
        its containerd, shims, containers and mounts are gone too (they survive a ``kill -9``)."""
        self._close_client()
        self.process.stop(slow(timeout))
        self._reap_leftovers()
        unmount_under(self.root)
        reap_orphans()

    def kill9(self) -> None:
        """``kill -9`` dockerd alone, as in a crash: shims and containers keep running.

        Whatever dies with dockerd (its managed containerd gets a parent-death signal on some
        engines) is waited for and reaped, so that `start()` finds a consistent picture.
        """
        self._close_client()
        self.process.kill()
        pid = self._containerd_pid()
        if pid is not None:
            wait_pid_gone(pid, 2.0)
        reap_orphans()

    def _containerd_pid(self) -> int | None:
        try:
            return int((self.exec_root / "containerd" / "containerd.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def restart(self, timeout: float = 120.0) -> None:
        """Stop and start again on the same data root (networks and images survive)."""
        self.stop()
        self.start(timeout)

    def _reap_leftovers(self) -> None:
        """Kill this engine's containers (via runc's state), then its shims and containerd."""
        runc_root = self.exec_root / "runtime-runc" / "moby"
        runc = self.engine.which("runc")
        if runc_root.is_dir() and runc is not None:
            listed = subprocess.run(
                [runc, "--root", str(runc_root), "list", "-q"], capture_output=True, text=True
            )
            for container in listed.stdout.split():
                subprocess.run(
                    [runc, "--root", str(runc_root), "kill", container, "KILL"], capture_output=True
                )
                subprocess.run(
                    [runc, "--root", str(runc_root), "delete", "--force", container],
                    capture_output=True,
                )
        for pid in pids_mentioning(f"{self.root}/"):
            terminate_pid(pid, timeout=15)

    def leftovers(self) -> list[str]:
        """Processes and mounts of this dockerd that still exist."""
        found = [f"pid {pid}: {' '.join(cmdline(pid))}" for pid in pids_mentioning(f"{self.root}/")]
        found += [f"mount {point}" for point in mounts_under(self.root)]
        return found

    def destroy(self) -> None:
        """Stop everything, unmount, delete the directory; raise if something stays behind."""
        self.stop()
        unmount_under(self.root)
        left = self.leftovers()
        if left:
            raise HarnessError(f"{self} left behind: " + "; ".join(left))
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.root)], check=False)


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root` in our mount namespace, deepest first."""
    prefix = str(root)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def unmount_under(root: Path) -> None:
    """Unmount everything at or below `root` (netns bind mounts, overlays, the data root)."""
    for _attempt in range(3):
        points = mounts_under(root)
        if not points:
            return
        for point in points:
            if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                subprocess.run(["umount", "--lazy", point], capture_output=True)


def foreign_engines() -> list[str]:
    """Docker engines on this machine that are not ours: they would share iptables and docker0.

    Counted: dockerd or containerd processes outside any harness directory, harness dockerds of
    other live test runs (they should hold the lock, so this means trouble), and a system
    containerd socket (dockerd would silently use that containerd instead of its own).
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm not in {"dockerd", "containerd"} or not pid_alive(pid):
            continue
        argv = " ".join(cmdline(pid))
        owner = _harness_owner(argv)
        if owner is None or owner != os.getpid():
            found.append(f"{comm} pid {pid} ({argv})")
    if SYSTEM_CONTAINERD_SOCKET.exists():
        found.append(f"a system containerd ({SYSTEM_CONTAINERD_SOCKET} exists)")
    return found


def _harness_owner(text: str) -> int | None:
    match = re.search(re.escape(ROOT_PREFIX) + r"(\d+)-\d+", text)
    return int(match.group(1)) if match else None


def sweep_stale_dockerds() -> list[str]:
    """Destroy harness dockerds (and their directories) whose pytest process is gone."""
    removed = []
    for root in sorted(scratch_dir().glob(f"{ROOT_PREFIX}*")):
        owner = _harness_owner(root.name)
        if owner is None or pid_alive(owner):
            continue
        stale = Dockerd(root, engine(DEFAULT_ENGINE))
        for pid in pids_mentioning(f"{root}/"):
            terminate_pid(pid, timeout=30)
        stale.destroy()
        removed.append(str(root))
    return removed


_FORWARDING_SYSCTLS = (
    Path("/proc/sys/net/ipv4/ip_forward"),
    Path("/proc/sys/net/ipv6/conf/all/forwarding"),
)


@dataclass(frozen=True)
class NetfilterSnapshot:
    """The root namespace's iptables rules and forwarding switches, as found before dockerd.

    dockerd adds its chains, a MASQUERADE rule, sets the FORWARD policy to DROP and turns on
    forwarding, and leaves all of it behind when it stops. `restore()` puts the machine back.
    """

    rules: dict[str, str]  # "iptables"/"ip6tables" -> *-save output
    sysctls: dict[Path, str]

    @classmethod
    def take(cls) -> NetfilterSnapshot:
        """Record the current rules and forwarding switches."""
        rules = {
            tool: subprocess.run([f"{tool}-save"], capture_output=True, text=True).stdout
            for tool in ("iptables", "ip6tables")
            if shutil.which(f"{tool}-save")
        }
        sysctls = {path: path.read_text().strip() for path in _FORWARDING_SYSCTLS if path.exists()}
        return cls(rules, sysctls)

    def restore(self) -> None:
        """Put rules and switches back; tables created since are emptied."""
        for tool, saved in self.rules.items():
            now = subprocess.run([f"{tool}-save"], capture_output=True, text=True).stdout
            sections = _tables(saved)
            for table in _tables(now):
                sections.setdefault(table, f"*{table}\nCOMMIT\n")
            text = "".join(sections.values())
            subprocess.run([f"{tool}-restore"], input=text, text=True, capture_output=True)
        for path, value in self.sysctls.items():
            path.write_text(f"{value}\n")


def _tables(save_output: str) -> dict[str, str]:
    """Split ``iptables-save`` output into {table: "*table ... COMMIT"} sections."""
    sections: dict[str, str] = {}
    current: list[str] = []
    for line in save_output.splitlines():
        if line.startswith("*"):
            current = [line]
        elif current:
            current.append(line)
            if line == "COMMIT":
                sections[current[0][1:]] = "\n".join(current) + "\n"
                current = []
    return sections


def link_exists(name: str) -> bool:
    """True if the root namespace has a link called `name`."""
    return Path("/sys/class/net", name).exists()


class ContainerdTimeout(HarnessError):
    """dockerd gave up waiting for a containerd it believed running."""


class ForeignEngine(HarnessError):
    """Another Docker engine runs on this machine."""


@contextlib.contextmanager
def running_dockerd(
    engine: Engine, args: Sequence[str] = DAEMON_ADDRESS_ARGS, tell: Callable[[str], None] = print
) -> Iterator[Dockerd]:
    """A fresh harness dockerd of `engine`, started; destroyed afterwards, and the machine put
    back (docker0, iptables). The caller holds the `MachineLock`."""
    for root in sweep_stale_dockerds():
        tell(f"destroyed dockerd {root} of a test run that is gone")
    foreign = foreign_engines()
    if foreign:
        raise ForeignEngine(
            "another Docker engine runs on this machine; stop it first (engines share iptables "
            "chains and docker0): " + "; ".join(foreign)
        )
    # dockerd leaves docker0, its iptables chains and forwarding on: put the machine back.
    docker0_existed = link_exists("docker0")
    netfilter = NetfilterSnapshot.take()
    daemon = Dockerd.create(engine, args)
    try:
        daemon.start()
        yield daemon
    finally:
        try:
            daemon.destroy()
        finally:
            if not docker0_existed and link_exists("docker0"):
                subprocess.run(["ip", "link", "del", "docker0"], capture_output=True)
            netfilter.restore()
