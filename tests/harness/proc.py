"""Processes the tests own: start them, signal them by pid, wait until they are really gone.

Rules this module enforces:

* Only processes we started (or that provably belong to a directory we created) are signalled,
  always by pid; never by name.
* "Gone" means no longer running: a zombie counts as gone.
* On this VM pid 1 does not reap orphans, so an orphaned daemon child stays a zombie forever. That
  matters for dockerd: killed with ``kill -9``, its containerd dies too (parent-death signal) but
  as a zombie it still passes dockerd's ``kill(pid, 0)`` check, and the restarted dockerd waits for
  a containerd that will never answer. So the test process makes itself a child subreaper (orphans
  of its descendants become its children) and reaps those zombies (`reap_orphans`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class HarnessError(RuntimeError):
    """The harness could not set up or tear down what a test asked for."""


def _stat(pid: int) -> tuple[str, str, int] | None:
    """(comm, state, ppid) of `pid`, None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return comm, state, int(ppid)


_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Make this process adopt orphaned descendants instead of pid 1 (which never reaps them)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise HarnessError(f"prctl(PR_SET_CHILD_SUBREAPER): errno {ctypes.get_errno()}")


def reap_orphans(comm_prefixes: tuple[str, ...] = ("containerd", "docker-proxy")) -> list[int]:
    """Reap zombie children adopted as subreaper (only Docker's daemons: never a child that a
    `subprocess.Popen` of some test still expects to wait for). Returns the reaped pids."""
    reaped = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        info = _stat(int(entry.name))
        if info is None:
            continue
        comm, state, ppid = info
        if ppid == me and state == "Z" and comm.startswith(comm_prefixes):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry.name), os.WNOHANG)
                reaped.append(int(entry.name))
    return reaped


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    info = _stat(pid)
    return info is not None and info[1] not in {"Z", "X"}


def wait_pid_gone(pid: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for `pid` to be gone; True if it is."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def terminate_pid(pid: int, timeout: float = 30.0) -> None:
    """SIGTERM `pid`, SIGKILL it after `timeout` seconds, and wait until it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_pid_gone(pid, timeout):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not wait_pid_gone(pid, 10.0):
        raise HarnessError(f"pid {pid} survived SIGKILL for 10 s")


def cmdline(pid: int) -> list[str]:
    """The argv of `pid`, or an empty list if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def pids_mentioning(token: str) -> list[int]:
    """Live pids whose command line contains `token` (a path unique to something we created)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        if any(token in arg for arg in cmdline(pid)) and pid_alive(pid):
            found.append(pid)
    return found


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """A long-running child process with its output in a log file.

    It runs in its own session, so a Ctrl-C on pytest does not reach it: the harness decides
    when and how it stops. `start()` may be called again after `stop()` or `kill()` (restart).
    """

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The pid of the current (or last) run, None before the first start."""
        return self._popen.pid if self._popen else None

    @property
    def running(self) -> bool:
        """True while the process runs (reaps it if it exited)."""
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit status of the last run, None while it runs or before the first start."""
        return self._popen.poll() if self._popen else None

    def start(self) -> None:
        """Start the process, appending its output to the log file."""
        if self.running:
            raise HarnessError(f"{self.argv[0]} already runs as pid {self.pid}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, SIGKILL after `timeout`; returns the exit status (None if never started)."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait(10)
        return self._popen.returncode

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` (default ``kill -9``) and, for fatal signals, reap the process."""
        if self._popen is None or self._popen.poll() is not None:
            return
        self._popen.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self._popen.wait(30)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the log, for error messages."""
        return tail(self.log_path, lines)


_CLONE_NEWNET = 0x40000000


def _enter_netns(name: str) -> None:
    """setns(2) into ``/run/netns/<name>`` (os.setns arrives only with Python 3.12)."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into network namespace {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


class ForkedDaemon:
    """Our daemon forked from the test process instead of started from scratch.

    Inside the virtme-ng guest every Python import costs tens of seconds (software emulation), so
    starting `pymacvlan serve` per test does not fit any time budget. The test process imports the
    daemon's modules once; each daemon is then a fork that enters its network namespace (what
    ``ip netns exec`` would do for it) and runs the CLI's `main`. The daemon code is the same;
    only the process start is cheaper. Same interface as `ManagedProcess`.
    """

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        netns: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)  # [pymacvlan, serve, ...]: argv[0] is not executed
        self.log_path = log_path
        self.netns = netns
        self.env = dict(env or {})
        self._pid: int | None = None
        self._status: int | None = None

    @staticmethod
    def preload() -> None:
        """Import what `serve` imports, once, in the test process."""
        import plugin.cli
        import plugin.server  # the imports are the point

        _ = plugin.cli

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def running(self) -> bool:
        if self._pid is None or self._status is not None:
            return False
        done, status = os.waitpid(self._pid, os.WNOHANG)
        if done == 0:
            return True
        self._status = os.waitstatus_to_exitcode(status)
        return False

    @property
    def returncode(self) -> int | None:
        self.running  # noqa: B018  # reaps it if it exited
        return self._status

    def start(self) -> None:
        if self.running:
            raise HarnessError(f"daemon already runs as pid {self._pid}")
        self.preload()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n--- fork: {' '.join(self.argv)} (netns {self.netns})\n".encode())
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                code = self._child()
            finally:
                os._exit(code)
        self._pid, self._status = pid, None

    def _child(self) -> int:
        import sys
        import traceback

        log = os.open(self.log_path, os.O_WRONLY | os.O_APPEND)
        try:
            os.setsid()
            if self.netns is not None:
                _enter_netns(self.netns)
        except BaseException:
            os.write(log, traceback.format_exc().encode())
            raise
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        # pytest replaced sys.stdout/err with its capture: talk to the log file instead.
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        os.environ.update(self.env)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        from plugin.cli import main

        return main(self.argv[1:])

    def stop(self, timeout: float = 30.0) -> int | None:
        if self._pid is None:
            return None
        if self.running:
            os.kill(self._pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.running and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.running:
                self.kill(signal.SIGKILL)
        return self._status

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if not self.running or self._pid is None:
            return
        os.kill(self._pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            deadline = time.monotonic() + 30
            while self.running and time.monotonic() < deadline:
                time.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)
