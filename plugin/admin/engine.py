"""Docker's engine API, read-only, for the command line: which plugin is ours and where it keeps
its socket and state, the names of networks and containers, the endpoints Docker still has.

Only the command line calls it, never the daemon: a plugin that calls the engine while the engine
is starting (and waiting for its plugins) deadlocks it at boot.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugin.admin.unixhttp import Unreachable, request_json

DEFAULT_DOCKER_SOCKET = Path("/var/run/docker.sock")
STATE_MOUNT = "/var/lib/pymacvlan"  # config.json's state mount destination


class EngineUnavailable(Exception):
    """Docker's engine API cannot be asked (no socket, refused, an error answer)."""


@dataclass(frozen=True)
class PluginInfo:
    """A managed plugin as `docker plugin inspect` shows it."""

    id: str
    name: str
    enabled: bool
    socket_name: str  # config.json's interface.socket
    state_dir: Path | None  # the host side of its state mount
    env: Mapping[str, str] = field(default_factory=dict)  # its settings (docker plugin set)


class Engine:
    def __init__(self, socket: Path, timeout: float = 10.0) -> None:
        self.socket = socket
        self.timeout = timeout

    @classmethod
    def from_env(cls, timeout: float = 10.0) -> Engine:
        """The engine DOCKER_HOST names (unix:// only), else Docker's default socket."""
        host = os.environ.get("DOCKER_HOST", "")
        if host.startswith("unix://"):
            return cls(Path(host.removeprefix("unix://")), timeout)
        if host:
            raise EngineUnavailable(f"DOCKER_HOST={host[:100]}: only unix:// sockets are supported")
        return cls(DEFAULT_DOCKER_SOCKET, timeout)

    def get(self, path: str) -> Any:
        """GET `path` of the engine API; the decoded JSON. Raises EngineUnavailable."""
        try:
            status, answer = request_json(self.socket, "GET", path, timeout=self.timeout)
        except Unreachable as exc:
            raise EngineUnavailable(f"Docker does not answer on {self.socket}: {exc}") from None
        if status != 200:
            message = answer.get("message", "") if isinstance(answer, dict) else ""
            raise EngineUnavailable(f"Docker answered {status} to GET {path}: {message[:200]}")
        return answer

    def plugin(self, name: str) -> PluginInfo | None:
        """The managed plugin `name` (as `docker plugin ls` shows it), None if not installed."""
        try:
            raw = self.get(f"/plugins/{urllib.parse.quote(name, safe='')}/json")
        except EngineUnavailable as exc:
            if " 404 " in str(exc):
                return None
            raise
        # The mount Docker makes is in .Config.Mounts (moby: Plugin.InitSpec); `docker plugin
        # set` changes it there, and after `docker plugin upgrade` only there is it true
        # (.Settings.Mounts keeps the source set before; docs/install.md, Upgrade).
        state_dir = next(
            (
                Path(m["Source"])
                for part in ("Config", "Settings")
                for m in raw.get(part, {}).get("Mounts") or []
                if m.get("Destination") == STATE_MOUNT and m.get("Source")
            ),
            None,
        )
        return PluginInfo(
            id=raw["Id"],
            name=raw.get("Name", name),
            enabled=bool(raw.get("Enabled")),
            socket_name=raw.get("Config", {}).get("Interface", {}).get("Socket", ""),
            state_dir=state_dir,
            env=dict(
                entry.split("=", 1)
                for entry in raw.get("Settings", {}).get("Env") or []
                if isinstance(entry, str) and "=" in entry
            ),
        )
