"""`pymacvlan status` in cluster mode: the blocks this host holds, and this host's range drawn
from them, from the running daemon and read back from its state directory once it stopped."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from plugin.admin.unixhttp import request_json
from tests.cluster.hosts import Hosts
from tests.harness.paths import venv_bin

SUBNET = "198.18.0.0/20"


def status(*args: str, node: str) -> dict[str, Any]:
    """`pymacvlan status --json ARGS` with the daemon's environment (its node name), no Docker."""
    env = {
        "PATH": "/usr/bin:/bin",
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",
        "PYMACVLAN_NODE_NAME": node,
    }
    done = subprocess.run(
        [str(venv_bin("pymacvlan")), "status", "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_status_shows_this_hosts_blocks_live_and_offline(hosts: Hosts) -> None:
    host = hosts.start("node1")
    pool_id = host.request_pool(SUBNET)
    address = host.allocate(pool_id)
    code, live = request_json(host.daemon.socket_path, "GET", "/pymacvlan/v1/status")
    assert code == 200

    cluster = live["cluster"]
    assert cluster["node"] == "node1"
    assert hosts.endpoints.split(",")[0] in cluster["etcd"]
    [block] = cluster["blocks"]
    assert (block["pool"], block["lan"]) == (SUBNET, "default")
    assert block["block"].endswith("/26")
    [pool] = live["pools"]
    assert pool["host_ranges"] == [block["block"]]
    assert f'block {block["block"]} of node "node1"' in pool["host_range"]
    assert pool["counts"]["used"] == 1
    assert [a["address"] for a in live["allocations"]] == [address]

    host.daemon.stop()
    where = ["--socket", str(host.daemon.socket_path), "--state-dir", str(host.state_dir)]
    offline = status(*where, node="node1")
    assert offline["source"] == "state-dir"
    assert [b["block"] for b in offline["cluster"]["blocks"]] == [block["block"]]
    assert offline["cluster"]["instance"] == cluster["instance"]
    assert offline["pools"] == live["pools"]  # same node name: the same share of the subnet
