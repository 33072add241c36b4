"""Finding the daemon the user means (plugin/admin/locate.py), with Docker's answers made up:
which socket and state directory `pymacvlan status` (and doctor, gc) use."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from plugin import settings
from plugin.admin import locate
from plugin.admin.engine import Engine, EngineUnavailable, PluginInfo

PLUGIN_ID = "0123456789abcdef" * 4


class FakeEngine(Engine):
    """Docker's answer to `GET /plugins/NAME/json`, already decoded (or a failure)."""

    def __init__(self, info: PluginInfo | None = None, problem: str | None = None) -> None:
        super().__init__(Path("/nonexistent/docker.sock"))
        self.info, self.problem = info, problem

    def plugin(self, name: str) -> PluginInfo | None:
        if self.problem is not None:
            raise EngineUnavailable(self.problem)
        return self.info


def arguments(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    locate.add_target_arguments(parser)
    return parser.parse_args(argv)


def info(*, enabled: bool, env: dict[str, str] | None = None) -> PluginInfo:
    return PluginInfo(
        id=PLUGIN_ID,
        name="pymacvlan:latest",
        enabled=enabled,
        socket_name="pymacvlan.sock",
        state_dir=Path("/srv/pmv-state"),
        env=env or {},
    )


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SOCKET", "STATE_DIR", "NODE_NAME"):
        monkeypatch.delenv(settings.ENV_PREFIX + name, raising=False)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_managed_plugin_is_asked_on_its_own_socket_enabled_or_not(enabled: bool) -> None:
    """Docker keeps every managed plugin's socket under /run/docker/plugins/ID, whatever its
    --exec-root (moby: getPluginExecRoot). A disabled plugin has no socket there: then nothing
    answers and its state is read; never the default socket of a daemon run by hand."""
    target = locate.locate(arguments(), FakeEngine(info(enabled=enabled)))
    assert target.socket == Path("/run/docker/plugins") / PLUGIN_ID / "pymacvlan.sock"
    assert target.state_dir == Path("/srv/pmv-state")
    assert target.how == f"managed plugin pymacvlan:latest ({'enabled' if enabled else 'disabled'})"


def test_paths_given_win_and_docker_is_not_needed() -> None:
    target = locate.locate(
        arguments("--socket", "/tmp/x.sock", "--state-dir", "/tmp/state"),
        FakeEngine(problem="must not be asked"),
    )
    assert (target.socket, target.state_dir) == (Path("/tmp/x.sock"), Path("/tmp/state"))


def test_without_docker_the_defaults_and_the_reason() -> None:
    target = locate.locate(arguments(), FakeEngine(problem="Docker does not answer"))
    assert (target.socket, target.state_dir) == (
        settings.DEFAULT_SOCKET,
        settings.DEFAULT_STATE_DIR,
    )
    assert target.engine_problem == "Docker does not answer"


def test_the_node_name_is_the_plugins_setting_else_the_environment_else_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    managed = locate.locate(
        arguments(), FakeEngine(info(enabled=True, env={"PYMACVLAN_NODE_NAME": "n7"}))
    )
    assert locate.node_name(managed) == "n7"
    by_hand = locate.locate(arguments("--socket", "/tmp/x.sock"))
    monkeypatch.setenv("PYMACVLAN_NODE_NAME", "n8")
    assert locate.node_name(by_hand) == "n8"
    monkeypatch.delenv("PYMACVLAN_NODE_NAME")
    monkeypatch.setattr("socket.gethostname", lambda: "host9")
    assert locate.node_name(by_hand) == "host9"


class RawEngine(Engine):
    """Docker's raw JSON answer to `GET /plugins/NAME/json`."""

    def __init__(self, raw: dict[str, object]) -> None:
        super().__init__(Path("/nonexistent/docker.sock"))
        self.raw = raw

    def get(self, path: str) -> object:
        assert path == "/plugins/pymacvlan/json"
        return self.raw


def test_the_state_directory_is_the_mount_docker_makes() -> None:
    """After `docker plugin upgrade`, Docker mounts what .Config.Mounts says (the new version's
    source) while .Settings.Mounts still shows the source set before (docs/install.md)."""
    raw = {
        "Id": PLUGIN_ID,
        "Name": "pymacvlan:latest",
        "Enabled": True,
        "Config": {
            "Interface": {"Socket": "pymacvlan.sock"},
            "Mounts": [{"Destination": "/var/lib/pymacvlan", "Source": "/var/lib/pymacvlan"}],
        },
        "Settings": {
            "Mounts": [{"Destination": "/var/lib/pymacvlan", "Source": "/srv/set-before"}],
            "Env": ["PYMACVLAN_NODE_NAME=n1", "PYMACVLAN_LOG_LEVEL=info"],
        },
    }
    found = RawEngine(raw).plugin("pymacvlan")
    assert found is not None
    assert found.state_dir == Path("/var/lib/pymacvlan")
    assert found.env["PYMACVLAN_NODE_NAME"] == "n1"
