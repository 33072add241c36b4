"""Finds the daemon the user means: the user types `pymacvlan status`, not a socket path.

In order: the socket and state directory given on the command line (or PYMACVLAN_SOCKET and
PYMACVLAN_STATE_DIR, as for `serve`); else the managed plugin `--plugin NAME` (default
pymacvlan) as Docker reports it: its socket under Docker's plugin runtime directory
(EXEC_ROOT/plugins/ID/SOCKET, EXEC_ROOT from the running dockerd's --exec-root, default
/run/docker) and its state mount's source; else a daemon run by hand at the default paths.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from plugin import settings
from plugin.admin.engine import Engine, EngineUnavailable, PluginInfo

DEFAULT_PLUGIN = "pymacvlan"
DEFAULT_EXEC_ROOTS = (Path("/run/docker"), Path("/var/run/docker"))


@dataclass(frozen=True)
class Target:
    socket: Path  # where the daemon answers, when it runs
    state_dir: Path  # where its state is, to read when it does not
    how: str  # how it was found, for messages: "managed plugin pymacvlan:latest (enabled)"
    plugin: PluginInfo | None = None
    engine_problem: str | None = None  # why Docker could not be asked, when it could not


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--socket",
        type=Path,
        default=os.environ.get(settings.ENV_PREFIX + "SOCKET"),
        help=f"the daemon's socket (default: the managed plugin's, else {settings.DEFAULT_SOCKET})",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=os.environ.get(settings.ENV_PREFIX + "STATE_DIR"),
        help="the state directory to read when the daemon does not run (default: the managed "
        f"plugin's state mount, else {settings.DEFAULT_STATE_DIR})",
    )
    parser.add_argument(
        "--plugin",
        default=DEFAULT_PLUGIN,
        help=f"the managed plugin's name (default {DEFAULT_PLUGIN})",
    )


def locate(args: argparse.Namespace, engine: Engine | None = None) -> Target:
    socket: Path | None = args.socket
    state_dir: Path | None = args.state_dir
    if socket is not None:
        return Target(socket, state_dir or settings.DEFAULT_STATE_DIR, f"socket {socket}")
    problem: str | None = None
    try:
        engine = engine or Engine.from_env()
        info = engine.plugin(args.plugin)
    except EngineUnavailable as exc:
        info, problem = None, str(exc)
    if info is not None:
        found = plugin_socket(info)
        return Target(
            found or settings.DEFAULT_SOCKET,
            state_dir or info.state_dir or settings.DEFAULT_STATE_DIR,
            f"managed plugin {info.name} ({'enabled' if info.enabled else 'disabled'})",
            plugin=info,
        )
    return Target(
        settings.DEFAULT_SOCKET,
        state_dir or settings.DEFAULT_STATE_DIR,
        f"socket {settings.DEFAULT_SOCKET}",
        engine_problem=problem,
    )


def plugin_socket(info: PluginInfo) -> Path | None:
    """The managed plugin's socket on the host: Docker's EXEC_ROOT/plugins/ID/SOCKET."""
    for root in _exec_roots():
        candidate = root / "plugins" / info.id / info.socket_name
        if candidate.is_socket():
            return candidate
    return None


def _exec_roots() -> list[Path]:
    """The --exec-root of every running dockerd (a plugin id is unique: no wrong match), then
    Docker's defaults."""
    roots: list[Path] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"dockerd"):
            continue
        for i, arg in enumerate(argv):
            if arg.startswith(b"--exec-root="):
                roots.append(Path(os.fsdecode(arg.split(b"=", 1)[1])))
            elif arg == b"--exec-root" and i + 1 < len(argv):
                roots.append(Path(os.fsdecode(argv[i + 1])))
    return roots + [r for r in DEFAULT_EXEC_ROOTS if r not in roots]
