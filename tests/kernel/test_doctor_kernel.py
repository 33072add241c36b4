"""`pymacvlan doctor` against a real daemon in a lab "host", and in-process inside that host.

    ns "host": pymacvlan serve; lab0 ─── ns "sw": br0 (the LAN's switch, also its gateway
               (the "physical" parent)            192.0.2.1/24, 2001:db8::1/64), port p0 ─ lab0,
               a container ns on a macvlan of     port p1 ─ a "rogue" device
               lab0, the host shim pmvh-…

The daemon runs the checks in its namespace (the route); the command line asks it over its
socket, as a user does. The strict NIC is an ``ebtables`` rule on the switch port p0 that drops
every frame entering with a source MAC other than lab0's (the nf_tables bridge family behind
ebtables-nft: this kernel has no tc classifiers): what vSphere without forged transmits, Hyper-V
without MAC address spoofing or a port-security switch does.
"""

from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import dataclass
from typing import Any

import pytest

from driver import announce
from driver.lan.packet_socket import ARP_FILTER, PacketSocket
from plugin import cli
from tests.harness.netns import Netns, NetnsLab, Switch
from tests.harness.paths import venv_bin
from tests.harness.plugind import PluginDaemon, PluginDaemons
from tests.harness.prereq import require_command, require_root, slow
from tests.kernel.sandbox import Container, create_network, run_container

NET = "da" * 32
EP = "ea" * 32
ROGUE_MAC = "02:00:00:00:0b:ad"


@dataclass
class Lab:
    lab: NetnsLab
    host: Netns
    switch: Switch
    daemon: PluginDaemon
    container: Container

    def parent_mac(self) -> str:
        link = self.host.link("lab0")
        assert link is not None
        return str(link["address"])

    def make_strict(self) -> None:
        """Only lab0's own MAC may enter the LAN through the switch port p0."""
        require_command("ebtables")
        for chain in ("INPUT", "FORWARD"):
            self.switch.netns.run(
                "ebtables", "-A", chain, "-i", "p0", "-s", "!", self.parent_mac(), "-j", "DROP"
            )


@pytest.fixture
def lab(netns_lab: NetnsLab, plugin_daemons: PluginDaemons) -> Lab:
    require_root()
    host = netns_lab.netns("host")
    switch = netns_lab.switch("sw")
    switch.attach(host, "lab0")
    switch.netns.add_address("br0", "192.0.2.1/24")
    switch.netns.add_address("br0", "2001:db8::1/64")
    daemon = plugin_daemons.spawn("node1", netns=host, env={"PYMACVLAN_ANNOUNCE_COUNT": "0"})
    created = create_network(
        daemon,
        NET,
        gateway="192.0.2.1",
        aux={"host": "192.0.2.2"},
        parent="lab0",
        host_address="host",
    )
    assert created["_status"] == 200, created
    container = run_container(daemon, host, netns_lab.netns("c1"), NET, EP, "192.0.2.10/24")
    return Lab(netns_lab, host, switch, daemon, container)


def doctor(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    status = cli.main(["doctor", *argv, "--json"])
    return status, json.loads(capsys.readouterr().out)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for check in report["checks"]:
        found.setdefault(check["name"], check)
    return found


def test_on_a_lan_that_passes_any_mac_everything_is_ok(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    before = lab.host.link_names()
    status, report = doctor(capsys, "--socket", str(lab.daemon.socket_path))

    checks = by_name(report)
    assert report["where"] == "daemon"
    problems = [c for c in report["checks"] if c["verdict"] == "problem"]
    assert status == 0, problems
    child = checks["child-mac"]
    assert (child["subject"], child["verdict"]) == ("gateway 192.0.2.1 from lab0", "ok")
    assert "frames from containers' MACs pass both ways" in child["found"]
    shim = checks["host-shim"]
    assert shim["verdict"] == "ok", shim
    assert shim["found"].startswith("the host reaches container")
    # `ip netns exec` mounts the host namespace's own /sys for the daemon: Wi-Fi is known.
    for name in ("parent-exists", "parent-up", "parent-carrier", "parent-member", "parent-wifi"):
        assert checks[name]["verdict"] == "ok", checks[name]
    assert checks["mtu"]["verdict"] == "ok"
    for name in ("owned-links", "endpoint-links", "stores-agree", "address-claims"):
        assert checks[name]["verdict"] == "ok", checks[name]
    assert lab.host.link_names() == before  # the test link is gone; nothing else changed


def test_a_switch_that_passes_only_the_parents_mac_is_a_problem_with_the_remedy(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    lab.make_strict()
    before = lab.host.link_names()
    parent_before = lab.host.link("lab0")

    status, report = doctor(capsys, "--socket", str(lab.daemon.socket_path))

    assert status == 1
    child = by_name(report)["child-mac"]
    assert child["verdict"] == "problem"
    assert child["found"].startswith(
        f"192.0.2.1 answers lab0 (MAC {lab.parent_mac()}) but not a macvlan link with another MAC"
    )
    assert "drops frames from MACs other than the parent's" in child["found"]
    assert "forged transmits" in child["todo"]
    assert "MAC address spoofing (Hyper-V)" in child["todo"]
    assert "use ipvlan (-o type=ipvlan)" in child["todo"]
    assert child["networks"] == [NET]
    # The shim reaches the container on the host's side of the switch: still fine.
    assert by_name(report)["host-shim"]["verdict"] == "ok"
    assert lab.host.link_names() == before
    parent_after = lab.host.link("lab0")
    assert parent_before is not None
    assert parent_after is not None
    for key in ("address", "mtu", "flags", "operstate", "promiscuity", "ifalias"):
        assert parent_after.get(key) == parent_before.get(key), key

    # Before any network, for a parent and a gateway given on the command line: the same answer.
    status, report = doctor(
        capsys,
        "--socket",
        str(lab.daemon.socket_path),
        "--parent",
        "lab0",
        "--gateway",
        "2001:db8::1",
    )
    child = next(c for c in report["checks"] if c["subject"] == "gateway 2001:db8::1 from lab0")
    assert (status, child["verdict"]) == (1, "problem")


def test_a_device_that_claims_a_containers_address(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    rogue = lab.lab.netns("rogue")
    lab.switch.attach(rogue, "eth0")
    frame = announce.gratuitous_arp(ROGUE_MAC, ipaddress.IPv4Address("192.0.2.10"))
    deadline = time.monotonic() + slow(5)
    while True:
        with PacketSocket.open("eth0", ARP_FILTER, rogue.name) as sock:
            sock.send(frame)
        status, report = doctor(
            capsys, "--socket", str(lab.daemon.socket_path), "--network", NET[:8]
        )
        claims = by_name(report)["address-claims"]
        if claims["verdict"] == "problem" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 1
    assert claims["verdict"] == "problem", claims
    assert claims["found"].startswith(
        f"another device holds a container's address: 192.0.2.10 (container {EP[:12]}, MAC "
        f"{lab.container.mac}) claimed by {ROGUE_MAC} on lab0"
    )


def test_in_process_inside_the_host_when_the_daemon_is_stopped(lab: Lab) -> None:
    lab.daemon.stop()
    before = lab.host.link_names()
    assert lab.daemon.state_dir is not None
    result = lab.host.run(
        str(venv_bin("pymacvlan")),
        "doctor",
        "--socket",
        str(lab.daemon.socket_path.parent / "absent.sock"),
        "--state-dir",
        str(lab.daemon.state_dir),
        "--json",
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    checks = by_name(report)
    assert report["where"] == "in-process"
    assert checks["state"]["verdict"] == "ok"
    assert checks["child-mac"]["verdict"] == "ok"
    assert checks["host-shim"]["verdict"] == "ok"
    assert checks["address-claims"]["verdict"] == "skipped"  # only a running daemon watches
    assert checks["stale-allocations"]["verdict"] == "ok"  # judged on the state directory
    assert lab.host.link_names() == before

    text = lab.host.run(
        str(venv_bin("pymacvlan")),
        "doctor",
        "--socket",
        "/nonexistent.sock",
        "--state-dir",
        str(lab.daemon.state_dir),
        check=False,
    )
    assert text.returncode == 0
    assert text.stdout.startswith("pymacvlan doctor: checks run in this process")
