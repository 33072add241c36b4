"""The harness dockerd: containers run, restart and kill -9 keep the data root, stop leaves nothing.

Runs once per engine selected by PYMACVLAN_TEST_ENGINE (e.g. ``bookworm,sid``).
"""

from __future__ import annotations

import time

from tests.harness.dockerd import Dockerd
from tests.harness.netns import NetnsLab, root_link_names

ENGINE_VERSIONS = {"bookworm": "20.10.", "trixie": "26.1.", "sid": "28.5."}


def test_engine_version_and_busybox_container(dockerd: Dockerd, busybox_image: str) -> None:
    version = dockerd.client().version()["Version"]
    assert version.startswith(ENGINE_VERSIONS[dockerd.engine.name])

    assert dockerd.cli("run", "--rm", busybox_image, "echo", "hi").stdout == "hi\n"


def test_restart_and_kill9_keep_networks_on_the_data_root(
    dockerd: Dockerd, busybox_image: str, netns_lab: NetnsLab
) -> None:
    parent = netns_lab.switch().attach_root()
    dockerd.cli(
        "network", "create", "-d", "macvlan", "--subnet", "198.51.100.0/24",
        "-o", f"parent={parent}", "pmv-selftest",
    )  # fmt: skip

    dockerd.restart()
    assert "pmv-selftest" in dockerd.cli("network", "ls", "--format", "{{.Name}}").stdout

    dockerd.kill9()
    assert not dockerd.running
    dockerd.start()
    run = dockerd.cli(
        "run", "--rm", "--network", "pmv-selftest", busybox_image, "ip", "-4", "-o", "addr"
    )
    assert "198.51.100." in run.stdout


def test_stop_after_kill9_leaves_no_process_mount_or_link(
    dockerd: Dockerd, busybox_image: str
) -> None:
    links_before = set(root_link_names())  # the machine is shared: compare, do not enumerate
    dockerd.cli("run", "-d", "--name", "pmv-sleeper", busybox_image, "sleep", "600")
    dockerd.kill9()  # containerd, the shim and the container keep running
    assert dockerd.leftovers() != []

    dockerd.stop()

    assert dockerd.leftovers() == []
    # The container's veth goes with its network namespace, which the kernel tears down
    # asynchronously after the last process died: give it a moment on a busy machine.
    deadline = time.monotonic() + 15
    while not set(root_link_names()) <= links_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(root_link_names()) <= links_before
