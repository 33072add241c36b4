"""The driver on real links: a daemon inside a throwaway "host" namespace whose "physical" parent
is a veth to a "LAN" namespace, driven through the protocol exactly as dockerd drives it.

This VM's kernel has macvlan but no 802.1q, ipvlan or dummy: those cases run in tests/guest.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

import pytest

from tests.harness.metrics_text import Scrape
from tests.harness.netns import Netns, NetnsLab
from tests.harness.plugind import PluginDaemon, PluginDaemons
from tests.harness.prereq import require_command
from tests.harness.unixhttp import request
from tests.kernel.sandbox import create_network, ok, run_container, stop_container

NET = "a1" * 32
NET2 = "b2" * 32


@dataclass
class Host:
    lab: NetnsLab
    ns: Netns
    lan: Netns  # another machine on the LAN, at 192.0.2.254
    daemon: PluginDaemon

    def container(self, label: str) -> Netns:
        return self.lab.netns(label)

    def link_names(self) -> set[str]:
        return set(self.ns.link_names())


@pytest.fixture
def host(netns_lab: NetnsLab, plugin_daemons: PluginDaemons) -> Host:
    ns = netns_lab.netns("host")
    lan = netns_lab.netns("lan")
    netns_lab.veth(ns, "lab0", lan, "wire0")
    lan.add_address("wire0", "192.0.2.254/24")
    daemon = plugin_daemons.spawn("node1", netns=ns, env={"PYMACVLAN_QUARANTINE_SECONDS": "0"})
    return Host(netns_lab, ns, lan, daemon)


def test_bridge_mode_containers_reach_each_other_and_the_lan(host: Host) -> None:
    before = host.link_names()
    assert create_network(host.daemon, NET, parent="lab0")["_status"] == 200
    c1 = run_container(host.daemon, host.ns, host.container("c1"), NET, "e1" * 32, "192.0.2.10/24")
    c2 = run_container(host.daemon, host.ns, host.container("c2"), NET, "e2" * 32, "192.0.2.11/24")
    assert c1.netns.ping("192.0.2.11")
    assert c2.netns.ping("192.0.2.10")
    assert c1.netns.ping("192.0.2.254")
    link = c1.netns.link("eth0")
    assert link is not None
    assert link["linkinfo"]["info_kind"] == "macvlan"
    assert link["linkinfo"]["info_data"]["mode"] == "bridge"
    assert link["address"] == c1.mac
    stop_container(host.daemon, host.ns, c1)
    stop_container(host.daemon, host.ns, c2)
    ok(host.daemon, "NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert host.link_names() == before


def test_private_mode_isolates_containers_but_not_the_lan(host: Host) -> None:
    assert create_network(host.daemon, NET, parent="lab0", macvlan_mode="private")["_status"] == 200
    c1 = run_container(host.daemon, host.ns, host.container("c1"), NET, "e1" * 32, "192.0.2.10/24")
    c2 = run_container(host.daemon, host.ns, host.container("c2"), NET, "e2" * 32, "192.0.2.11/24")
    assert c1.netns.ping("192.0.2.254")
    assert not c1.netns.ping("192.0.2.11", timeout=1)
    assert not c2.netns.ping("192.0.2.10", timeout=1)


def test_passthru_takes_the_parent_for_itself(host: Host) -> None:
    assert (
        create_network(host.daemon, NET, parent="lab0", macvlan_mode="passthru")["_status"] == 200
    )
    second = create_network(host.daemon, NET2, parent="lab0", pool="198.51.100.0/24")
    assert second["_status"] == 500
    assert "passthru" in second["Err"]
    c1 = run_container(host.daemon, host.ns, host.container("c1"), NET, "e1" * 32, "192.0.2.10/24")
    assert c1.netns.ping("192.0.2.254")


def test_mtu_option_reaches_the_container_link(host: Host) -> None:
    mtu = "com.docker.network.driver.mtu"
    assert create_network(host.daemon, NET, parent="lab0", labels={mtu: "1400"})["_status"] == 200
    c1 = run_container(host.daemon, host.ns, host.container("c1"), NET, "e1" * 32, "192.0.2.10/24")
    link = c1.netns.link("eth0")
    assert link is not None
    assert link["mtu"] == 1400
    too_big = create_network(
        host.daemon,
        NET2,
        parent="lab0",
        pool="198.51.100.0/24",
        labels={mtu: "9000"},
    )
    assert too_big["_status"] == 400
    assert "larger than the MTU of parent lab0 (1500)" in too_big["Err"]


def test_no_vlan_support_is_explained(host: Host) -> None:
    # A missing parent is not refused (tests/kernel/test_parent_changes_kernel.py); a kernel
    # without 802.1q is.
    vlan = create_network(host.daemon, NET, parent="lab0.10")
    if vlan["_status"] == 200:
        pytest.skip("this kernel has 802.1q; the guest tests cover VLANs")
    assert "no 802.1q" in vlan["Err"]
    assert "lab0.10" not in host.link_names()


def test_join_announces_the_address_on_the_lan(host: Host) -> None:
    # A missing tool is a skip (a failure under CI) that names it, not an empty capture.
    tcpdump = require_command("tcpdump")
    timeout = require_command("timeout")
    assert create_network(host.daemon, NET, parent="lab0")["_status"] == 200
    capture = subprocess.Popen(
        host.lan.exec_argv(
            [timeout, "10", tcpdump, "-l", "-n", "-e", "-c", "1", "-i", "wire0", "arp"]
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        c1 = run_container(
            host.daemon, host.ns, host.container("c1"), NET, "e1" * 32, "192.0.2.10/24"
        )
        out, err = capture.communicate(timeout=15)
    finally:
        capture.kill()
    assert c1.mac in out, f"no announcement captured; tcpdump said: {err.strip()}"
    assert "192.0.2.10 tell 192.0.2.10" in out
    # What went on the wire is what the metrics count (one frame per round for one address;
    # the count follows the send by a moment).
    deadline = time.monotonic() + 5
    while (metrics := scrape(host.daemon)).value("pymacvlan_announcement_frames_total") < 1:
        assert time.monotonic() < deadline, metrics.text
        time.sleep(0.05)
    assert metrics.value("pymacvlan_announcement_failures_total") == 0


def scrape(daemon: PluginDaemon) -> Scrape:
    status, body = request(daemon.socket_path, "GET", "/pymacvlan/v1/metrics")
    assert status == 200
    return Scrape(body.decode())


def test_state_survives_kill_9_and_cleanup_still_works(host: Host) -> None:
    before = host.link_names()
    assert create_network(host.daemon, NET, parent="lab0")["_status"] == 200
    c1 = run_container(host.daemon, host.ns, host.container("c1"), NET, "e1" * 32, "192.0.2.10/24")
    host.daemon.kill9()
    host.daemon.start()
    c2 = run_container(host.daemon, host.ns, host.container("c2"), NET, "e2" * 32, "192.0.2.11/24")
    assert c2.netns.ping("192.0.2.10")
    stop_container(host.daemon, host.ns, c1)
    stop_container(host.daemon, host.ns, c2)
    ok(host.daemon, "NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert host.link_names() == before


def test_host_shim_lets_the_host_and_its_containers_reach_each_other(host: Host) -> None:
    before = host.link_names()
    host.ns.add_address("lab0", "192.0.2.5/24")  # the host's own LAN address, on the parent
    assert create_network(host.daemon, NET2, parent="lab0")["_status"] == 200
    plain = run_container(
        host.daemon, host.ns, host.container("plain"), NET2, "e9" * 32, "192.0.2.9/24"
    )
    # The wall every macvlan user hits: parent and children do not talk.
    assert not host.ns.ping("192.0.2.9", timeout=1)
    stop_container(host.daemon, host.ns, plain)
    ok(host.daemon, "NetworkDriver.DeleteNetwork", {"NetworkID": NET2})

    reply = create_network(
        host.daemon, NET, parent="lab0", aux={"me": "192.0.2.2"}, host_address="me"
    )
    assert reply["_status"] == 200, reply
    c1 = run_container(host.daemon, host.ns, host.container("c1"), NET, "e1" * 32, "192.0.2.10/24")
    assert host.ns.ping("192.0.2.10")
    assert c1.netns.ping("192.0.2.2")
    assert c1.netns.ping("192.0.2.254")  # the rest of the LAN, as before
    assert host.ns.ping("192.0.2.254")  # and the host's own LAN traffic is untouched
    assert host.lan.ping("192.0.2.5")
    stop_container(host.daemon, host.ns, c1)
    ok(host.daemon, "NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert host.link_names() == before
    assert "192.0.2.5/24" in host.ns.addresses("lab0")
