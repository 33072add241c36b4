"""Another device claiming a container's address (driver/lan/claims.py), on this host's kernel.

    ns "host": lab0 (parent) ── ns "sw": br0 (switch, 192.0.2.1/24) ── ns "c1": the container
         └─ macvlan child ──────────────────────────────────────────────┘ (192.0.2.60 on it)
                                   ├── ns "rogue": a device configured with the same address
                                   └── ns "owner": a LAN device that rightly holds 192.0.2.61

The watcher runs in this process on lab0 of "host"; the daemon test runs it inside a real
`pymacvlan serve` there, driven as dockerd drives it, and reads its log.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from structlog.testing import capture_logs

from driver import announce
from driver.lan.claims import Claim, ClaimWatcher
from driver.lan.packet_socket import ARP_FILTER, PacketSocket
from tests.harness.netns import Netns, NetnsLab, Switch
from tests.harness.plugind import PluginDaemons
from tests.harness.prereq import require_root
from tests.kernel.sandbox import create_network, ok, run_container

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
FAKE = "02:00:00:00:0b:ad"  # a MAC no device in the lab has
WATCHING_AGAIN = "watching the link for address claims again"
CLAIM_LINE = "another device claims a container's address"


@dataclass
class Lan:
    lab: NetnsLab
    host: Netns
    switch: Switch

    def device(self, label: str, *addresses: str) -> tuple[Netns, str]:
        ns = self.lab.netns(label)
        self.switch.attach(ns, "eth0")
        for address in addresses:
            ns.ip("addr", "add", address, "dev", "eth0", *(("nodad",) if ":" in address else ()))
        return ns, mac_of(ns, "eth0")

    def container(self, label: str, address: str, address_v6: str) -> tuple[Netns, str]:
        """A macvlan child of lab0 in its own namespace, as Docker leaves a container's link."""
        ns = self.lab.netns(label)
        self.host.ip("link", "add", "mv0", "link", "lab0", "type", "macvlan", "mode", "bridge")
        self.host.ip("link", "set", "mv0", "netns", ns.name)
        ns.add_address("mv0", address)
        ns.ip("addr", "add", address_v6, "dev", "mv0", "nodad")
        ns.set_up("mv0")
        return ns, mac_of(ns, "mv0")

    def send(self, ns: Netns, frame: bytes) -> None:
        with PacketSocket.open("eth0", ARP_FILTER, ns.name) as sock:
            sock.send(frame)


def mac_of(ns: Netns, link: str) -> str:
    found = ns.link(link)
    assert found is not None, f"{link} is missing in {ns.name}"
    return str(found["address"])


@pytest.fixture
def lan(netns_lab: NetnsLab) -> Lan:
    require_root()
    host = netns_lab.netns("host")
    switch = netns_lab.switch("sw")
    switch.netns.add_address("br0", "192.0.2.1/24")
    switch.attach(host, "lab0")
    return Lan(netns_lab, host, switch)


@pytest.fixture
async def watching() -> AsyncIterator[list[ClaimWatcher]]:
    """Watchers a test starts; stopped afterwards, also when it fails."""
    started: list[ClaimWatcher] = []
    yield started
    for watcher in started:
        await watcher.stop()


async def wait_for(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def tagged(frame: bytes, vid: int) -> bytes:
    return frame[:12] + b"\x81\x00" + struct.pack("!H", vid) + frame[12:]


async def test_foreign_claims_are_reported_and_the_owners_own_frames_are_not(
    lan: Lan, watching: list[ClaimWatcher]
) -> None:
    container, container_mac = lan.container("c1", "192.0.2.60/24", "2001:db8::60/64")
    owner, owner_mac = lan.device("owner", "192.0.2.61/24")
    rogue, rogue_mac = lan.device("rogue", "192.0.2.60/24")
    ours: dict[V4 | V6, str] = {
        V4("192.0.2.60"): container_mac,
        V6("2001:db8::60"): container_mac,
        V4("192.0.2.61"): owner_mac.upper(),  # the record's spelling does not matter
    }
    called: list[Claim] = []
    watcher = ClaimWatcher("lab0", ours.get, netns=lan.host.name, on_claim=called.append)
    watching.append(watcher)
    with capture_logs() as logs:
        watcher.start()
        await asyncio.sleep(0.2)  # the socket is open before the first frame is sent
        # The owners' own traffic: the container's ARP (out through the parent), the LAN
        # device's ARP for its own address, its announcement.
        assert container.ping("192.0.2.1")
        assert owner.ping("192.0.2.1")
        lan.send(owner, announce.gratuitous_arp(owner_mac, V4("192.0.2.61")))
        # A device configured with the container's address talks on the LAN: its ARP says so.
        assert rogue.ping("192.0.2.1")
        # Another announces it, for IPv4 and IPv6.
        lan.send(rogue, announce.gratuitous_arp(FAKE, V4("192.0.2.60")))
        lan.send(rogue, announce.unsolicited_na(FAKE, V6("2001:db8::60")))
        # Tagged for VLAN 30: another LAN's business, not this one's.
        lan.send(rogue, tagged(announce.gratuitous_arp("02:00:00:00:00:30", V4("192.0.2.60")), 30))
        await wait_for(lambda: len(watcher.record.recent) >= 3)
        await asyncio.sleep(0.3)  # time for anything that should not be there to show up

    seen = [(c.address, c.expected_mac, c.foreign_mac, c.link) for c in watcher.record.recent]
    assert seen == [
        (V4("192.0.2.60"), container_mac, rogue_mac, "lab0"),
        (V4("192.0.2.60"), container_mac, FAKE, "lab0"),
        (V6("2001:db8::60"), container_mac, FAKE, "lab0"),
    ]
    assert called == list(watcher.record.recent)
    warnings = [
        (e["address"], e["container_mac"], e["foreign_mac"])
        for e in logs
        if e["log_level"] == "warning"
    ]
    assert warnings == [
        ("192.0.2.60", container_mac, rogue_mac),
        ("192.0.2.60", container_mac, FAKE),
        ("2001:db8::60", container_mac, FAKE),
    ]
    # The rogue keeps talking (each ping ARPs anew after a neighbour flush): counted, not logged.
    rogue.ip("neigh", "flush", "dev", "eth0")
    assert rogue.ping("192.0.2.1")
    await wait_for(lambda: watcher.record.total >= 4)
    assert len(watcher.record.recent) == 3


async def test_the_watcher_outlives_its_link_and_leaves_nothing_open(
    lan: Lan, watching: list[ClaimWatcher]
) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    rogue, _ = lan.device("rogue")
    ours: dict[V4 | V6, str] = {V4("192.0.2.60"): "02:00:00:00:00:60"}
    watcher = ClaimWatcher(
        "lab0",
        ours.get,
        netns=lan.host.name,
        retry_first=0.1,
        retry_max=0.4,
    )
    watching.append(watcher)
    with capture_logs() as logs:
        watcher.start()
        await asyncio.sleep(0.2)
        lan.host.ip("link", "del", "lab0")  # the NIC is gone (its peer on the switch with it)
        cpu_before = time.process_time()
        await asyncio.sleep(2.0)
        cpu_spent = time.process_time() - cpu_before
        assert watcher.running
        lan.switch.attach(lan.host, "lab0")  # plugged in again
        await wait_for(lambda: any(e["event"] == WATCHING_AGAIN for e in logs))
        lan.send(rogue, announce.gratuitous_arp(FAKE, V4("192.0.2.60")))
        await wait_for(lambda: len(watcher.record.recent) == 1)
    assert cpu_spent < 0.5, "the watcher spun while its link was gone"
    # One line while it was gone (however many attempts), one when it was back; info only: a
    # missing link is reported where it matters (its containers are cut off).
    lines = [(e["log_level"], e["event"]) for e in logs if e["event"] != CLAIM_LINE]
    assert lines == [
        ("info", "cannot watch the link for address claims; trying again"),
        ("info", WATCHING_AGAIN),
    ]
    assert logs[0]["error"] == "the link is down"
    assert watcher.record.recent[0].foreign_mac == FAKE
    await watcher.stop()
    assert not watcher.running
    assert len(os.listdir("/proc/self/fd")) == fds_before


# -- inside the daemon ---------------------------------------------------------------------------

NET = "c1" * 32


def test_the_daemon_reports_a_claim_on_a_joined_container_until_it_leaves(
    lan: Lan, plugin_daemons: PluginDaemons
) -> None:
    daemon = plugin_daemons.spawn("node1", netns=lan.host, env={"PYMACVLAN_ANNOUNCE_COUNT": "0"})
    rogue, _ = lan.device("rogue")
    assert create_network(daemon, NET, parent="lab0")["_status"] == 200
    container = run_container(
        daemon, lan.host, lan.lab.netns("c1"), NET, "e1" * 32, "192.0.2.10/24"
    )
    assert container.mac

    def claim_lines() -> list[str]:
        return [line for line in daemon.log().splitlines() if CLAIM_LINE in line]

    deadline = time.monotonic() + 5
    while not claim_lines():
        assert time.monotonic() < deadline, "no claim in the daemon's log:\n" + daemon.log()[-3000:]
        lan.send(rogue, announce.gratuitous_arp(FAKE, V4("192.0.2.10")))
        time.sleep(0.2)
    line = claim_lines()[0]
    assert "192.0.2.10" in line
    assert container.mac in line
    assert FAKE in line

    ok(daemon, "NetworkDriver.Leave", {"NetworkID": NET, "EndpointID": container.endpoint_id})
    other = "02:00:00:00:0b:ae"
    for _ in range(5):
        lan.send(rogue, announce.gratuitous_arp(other, V4("192.0.2.10")))
        time.sleep(0.1)
    assert not any(other in line for line in claim_lines()), "still watching after Leave"
