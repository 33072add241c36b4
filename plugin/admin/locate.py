"""Finds the daemon the user means: the user types `pymacvlan status`, not a socket path.

In order: the socket and state directory given on the command line (or PYMACVLAN_SOCKET and
PYMACVLAN_STATE_DIR, as for `serve`); else the managed plugin `--plugin NAME` (default
pymacvlan) as Docker reports it: its socket in Docker's plugin runtime directory,
/run/docker/plugins/ID/SOCKET (on Linux that directory is fixed whatever dockerd's --exec-root:
socket paths must stay under 108 bytes; moby's getPluginExecRoot), and its state mount's source;
else a daemon run by hand at the default paths.
"""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from plugin import settings
from plugin.admin.engine import Engine, EngineUnavailable, PluginInfo

DEFAULT_PLUGIN = "pymacvlan"
PLUGIN_RUNTIME_DIR = Path("/run/docker/plugins")


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
        # A disabled plugin has no socket there: nothing answers, and its state is read. Never
        # the default socket instead: a daemon run by hand may answer there.
        return Target(
            plugin_socket(info),
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


def node_name(target: Target) -> str:
    """The daemon's node name (its address plans and cluster blocks are this node's): the
    managed plugin's setting, else PYMACVLAN_NODE_NAME, else the host name (as `serve`)."""
    env = target.plugin.env if target.plugin is not None else os.environ
    return env.get(settings.ENV_PREFIX + "NODE_NAME") or socket.gethostname()


def plugin_socket(info: PluginInfo) -> Path:
    """Where the managed plugin's socket is on the host while it is enabled."""
    return PLUGIN_RUNTIME_DIR / info.id / info.socket_name
