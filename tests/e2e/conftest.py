"""pymacvlan as Docker sees it: a real dockerd (the harness's), our daemon as its plugin.

The ``unmanaged_plugin`` fixture runs ``pymacvlan serve`` on the host with its socket in
/run/docker/plugins, where dockerd discovers plugins by name; the managed v2 plugin (built from
the Dockerfile, installed with ``docker plugin``) has its own fixtures in test_managed_plugin.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.harness.dockerd import Dockerd
from tests.harness.plugind import PluginDaemon, PluginDaemons


@dataclass
class Plugin:
    """A pymacvlan plugin known to `dockerd` under `name` (for -d and --ipam-driver)."""

    name: str
    dockerd: Dockerd
    daemon: PluginDaemon | None = None

    def docker(self, *args: str, check: bool = True) -> str:
        return self.dockerd.cli(*args, check=check).stdout

    def fails(self, *args: str) -> str:
        """Run a docker command that must fail; returns what the user reads (stderr)."""
        result = self.dockerd.cli(*args, check=False)
        assert result.returncode != 0, f"docker {' '.join(args)} succeeded: {result.stdout}"
        return result.stderr

    def ip_of(self, container: str, network: str) -> str:
        out = self.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", container)
        return str(json.loads(out)[network]["IPAddress"])

    def remove_everything(self) -> None:
        """Containers, then networks of this plugin: while the plugin still answers."""
        client = self.dockerd.client()
        nets = [
            n
            for n in client.networks.list()
            if self.name in (n.attrs.get("Driver"), (n.attrs.get("IPAM") or {}).get("Driver"))
        ]
        for net in nets:
            net.reload()
            for cid in net.attrs.get("Containers") or {}:
                self.dockerd.cli("rm", "-f", cid, check=False)
        for container in client.containers.list(all=True):
            settings = container.attrs["NetworkSettings"]["Networks"] or {}
            if any(n.name in settings for n in nets):
                self.dockerd.cli("rm", "-f", container.id, check=False)
        for net in nets:
            self.dockerd.cli("network", "rm", net.id, check=False)


@pytest.fixture
def unmanaged_plugin(dockerd: Dockerd, plugin_daemons: PluginDaemons) -> Iterator[Plugin]:
    daemon = plugin_daemons.spawn("node1", env={"PYMACVLAN_QUARANTINE_SECONDS": "300"})
    assert daemon.name
    plugin = Plugin(daemon.name, dockerd, daemon)
    yield plugin
    if not dockerd.running:
        dockerd.start()
    if not daemon.running:
        daemon.start()
    plugin.remove_everything()


def wait_for(predicate: object, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        if callable(predicate) and predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
