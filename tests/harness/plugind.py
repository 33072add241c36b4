"""Our daemon as a process under test: start it on a plugin socket, stop, restart, ``kill -9``.

A lab "host" is a network namespace running its own daemon (``ip netns exec NS pymacvlan serve``);
the daemon never enters a namespace itself. For the e2e layer the daemon runs in the root namespace
with its socket in ``/run/docker/plugins/<name>.sock``, where dockerd discovers unmanaged plugins.

The argv is the caller's (the CLI is not this module's business); `serve_argv` builds the usual one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .netns import Netns
from .paths import venv_bin
from .prereq import in_guest, slow
from .proc import ForkedDaemon, HarnessError, ManagedProcess
from .unixhttp import request, socket_accepts

# dockerd looks for unmanaged plugins' sockets here (moby pkg/plugins: socketsPath).
PLUGIN_SOCKET_DIR = Path("/run/docker/plugins")

# (socket, state_dir, node_name) -> argv
ArgvFactory = Callable[[Path, Path, str], list[str]]

_plugin_ids = itertools.count()


def plugin_socket(name: str) -> Path:
    """Where dockerd looks for the socket of unmanaged plugin `name`."""
    return PLUGIN_SOCKET_DIR / f"{name}.sock"


def serve_argv(socket_path: Path, state_dir: Path, node_name: str, *extra: str) -> list[str]:
    """The usual command line: ``pymacvlan serve --socket ... --state-dir ... --node-name ...``."""
    return [
        str(venv_bin("pymacvlan")),
        "serve",
        "--socket",
        str(socket_path),
        "--state-dir",
        str(state_dir),
        "--node-name",
        node_name,
        *extra,
    ]


def post_json(
    socket_path: Path, method: str, payload: Any = None, *, timeout: float = 30.0
) -> tuple[int, Any]:
    """POST like dockerd does (``/NetworkDriver.CreateNetwork``); returns (status, parsed body).

    `payload` None sends an empty body, as dockerd does for Activate and GetCapabilities.
    """
    body = b"" if payload is None else json.dumps(payload).encode()
    status, raw = request(
        socket_path,
        "POST",
        method if method.startswith("/") else f"/{method}",
        body,
        {"Content-Type": "application/vnd.docker.plugins.v1.2+json"},
        timeout=slow(timeout),
    )
    try:
        parsed = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        parsed = raw.decode(errors="replace")
    return status, parsed


class PluginDaemon:
    """One daemon process: a socket, a state dir, a log; optionally inside a namespace.

    Restarting reuses the same argv, so the same state directory: that is the point of the
    "restart keeps state" tests.
    """

    def __init__(
        self,
        argv: Sequence[str],
        socket_path: Path,
        log_path: Path,
        *,
        netns: Netns | None = None,
        env: Mapping[str, str] | None = None,
        name: str = "",
        state_dir: Path | None = None,
    ) -> None:
        self.name = name
        self.state_dir = state_dir
        self.socket_path = socket_path
        self.netns = netns
        self.process: ManagedProcess | ForkedDaemon
        if in_guest() or os.environ.get("PYMACVLAN_FORK_DAEMONS") == "1":
            # Every interpreter start costs a minute in the guest: fork the test process.
            self.process = ForkedDaemon(
                argv, log_path, netns=netns.name if netns else None, env=env
            )
        else:
            full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
            wrapped = netns.exec_argv(argv) if netns else list(argv)
            self.process = ManagedProcess(wrapped, log_path, env=full_env)

    @property
    def pid(self) -> int | None:
        """Pid of the daemon (``ip netns exec`` execs it, so this is the daemon itself)."""
        return self.process.pid

    @property
    def running(self) -> bool:
        """True while the daemon process runs."""
        return self.process.running

    def start(self, timeout: float = 20.0) -> None:
        """Start the daemon and wait until its socket accepts connections.

        Timeouts here are host seconds, stretched in the guest (see `prereq.slow`).
        """
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.process.start()
        timeout = slow(timeout)
        deadline = time.monotonic() + timeout
        while not socket_accepts(self.socket_path):
            if not self.process.running:
                raise HarnessError(
                    f"daemon exited with {self.process.returncode} before opening "
                    f"{self.socket_path}:\n{self.process.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.process.kill()
                raise HarnessError(
                    f"daemon did not open {self.socket_path} within {timeout} s:\n"
                    f"{self.process.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (SIGKILL after `timeout`); returns the exit status."""
        return self.process.stop(slow(timeout))

    def kill9(self) -> None:
        """``kill -9``: no shutdown code runs, the socket file stays behind."""
        self.process.kill(signal.SIGKILL)

    def restart(self, timeout: float = 20.0) -> None:
        """Stop (if running) and start again with the same argv and state dir."""
        self.stop()
        self.start(timeout)

    def call(self, method: str, payload: Any = None, *, timeout: float = 30.0) -> tuple[int, Any]:
        """POST a plugin-protocol method to this daemon; returns (status, parsed body)."""
        return post_json(self.socket_path, method, payload, timeout=timeout)

    def log(self) -> str:
        """The daemon's whole log so far."""
        return self.process.log_path.read_text(errors="replace")

    def cleanup(self) -> None:
        """Stop the daemon and remove its socket file."""
        self.stop()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


class PluginDaemons:
    """Starts daemons for one test, each with a unique plugin name; `cleanup()` stops them all."""

    def __init__(self, tmp_dir: Path) -> None:
        self.tmp_dir = tmp_dir
        self.daemons: list[PluginDaemon] = []

    def spawn(
        self,
        node_name: str = "node1",
        *,
        netns: Netns | None = None,
        argv: ArgvFactory = serve_argv,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        start: bool = True,
        timeout: float = 20.0,
    ) -> PluginDaemon:
        """A daemon serving plugin `name` (unique by default) on ``/run/docker/plugins``.

        Its state dir and log live in the test's tmp dir; `argv` builds the command line from
        (socket, state_dir, node_name), `serve_argv` by default.
        """
        name = name or f"pmv{os.getpid()}-{next(_plugin_ids)}"
        state_dir = self.tmp_dir / f"{name}-state"
        state_dir.mkdir(parents=True, exist_ok=True)
        socket_path = plugin_socket(name)
        daemon = PluginDaemon(
            argv(socket_path, state_dir, node_name),
            socket_path,
            self.tmp_dir / f"{name}.log",
            netns=netns,
            env=env,
            name=name,
            state_dir=state_dir,
        )
        self.daemons.append(daemon)
        if start:
            daemon.start(timeout)
        return daemon

    def cleanup(self) -> None:
        """Stop every daemon and remove its socket."""
        for daemon in reversed(self.daemons):
            daemon.cleanup()
        self.daemons.clear()
