"""A daemon process inside a lab namespace: socket readiness, restart on its state dir, kill -9."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.harness.netns import NetnsLab
from tests.harness.plugind import PluginDaemons

FAKE_PLUGIN = Path(__file__).with_name("fake_plugin.py")


def fake_argv(socket: Path, state_dir: Path, node_name: str) -> list[str]:
    return [
        sys.executable,
        str(FAKE_PLUGIN),
        "serve",
        "--socket",
        str(socket),
        "--state-dir",
        str(state_dir),
        "--node-name",
        node_name,
    ]


def test_daemon_runs_in_its_namespace_and_survives_restart_and_kill9(
    netns_lab: NetnsLab, plugin_daemons: PluginDaemons
) -> None:
    host = netns_lab.netns("host1")
    netns_lab.switch(hosts=[host])
    daemon = plugin_daemons.spawn("node1", netns=host, argv=fake_argv)

    assert daemon.call("Plugin.Activate") == (200, {"Implements": ["NetworkDriver"]})
    status, who = daemon.call("Harness.Whoami")
    assert status == 200
    assert who["Node"] == "node1"
    assert who["Links"] == ["lan0", "lo"]  # the namespace's links, not the root namespace's

    daemon.restart()
    assert daemon.call("Harness.Whoami")[1]["Starts"] == 2

    daemon.kill9()
    assert not daemon.running
    assert daemon.socket_path.exists()  # nobody cleaned up: that is what kill -9 means
    daemon.start()
    assert daemon.call("Harness.Whoami")[1]["Starts"] == 3
