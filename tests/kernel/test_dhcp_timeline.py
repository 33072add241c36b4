"""A DHCP lease's whole life (issue 9, part 2) through the real daemon, against a real dnsmasq.

    ns "host":       lab0 (veth, the "physical" parent); `pymacvlan serve` runs here
    ns "lan":        wire0 (its peer, 192.0.2.1/24, the LAN's router); dnsmasq serves here
    ns "container":  the endpoint's macvlan link with the leased address, put there as dockerd
                     does on Join (renewals are answered unicast to it)

dnsmasq's shortest lease (120 s) with T1 and T2 shortened to 4 s and 8 s, and the daemon's DHCP
retry spacing shortened to 2 s (`PYMACVLAN_DHCP_RETRY_SECONDS`; RFC 2131's 60 s otherwise), so
that one test sees, in about 140 s, what a user sees in the daemon's log and the server's lease
file: the renewals at every T1; the server gone for a while (a failed renewal) and back in time
for the rebinding at T2; the server gone for good (failed renewal and rebinding), the lease's end
(an ERROR line naming the address and the MAC); the server back (the same address leased again);
the release when the container stops. The server keeps its lease file across its restarts, as a
real one does. The lease's 120 s are the floor of this test's length.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from plugin.lan import ACQUIRE_TIMEOUT, RENEW_TIMEOUT
from tests.harness.netns import Netns, NetnsLab
from tests.harness.plugind import PluginDaemon, PluginDaemons
from tests.harness.prereq import require_root, slow
from tests.kernel.dnsmasq import LEASE_SECONDS, RANGE, ROUTER, Dnsmasq, ServerLease, dnsmasq
from tests.kernel.sandbox import ok, run_container, stop_container

NET = "d7" * 32
ENDPOINT = "e7" * 32
SUBNET = "192.0.2.0/24"
T1, T2 = 4, 8  # seconds: what dnsmasq is told to send (options 58 and 59)
RETRY = 2.0  # the daemon's DHCP retry spacing
# The daemon's renewal exchange waits this long for an answer; a failed one is logged when it
# ends.
RENEW_WAIT = RENEW_TIMEOUT
SHORT_TIMES = (f"--dhcp-option=option:T1,{T1}", f"--dhcp-option=option:T2,{T2}")


@dataclass
class Lab:
    host: Netns
    lan: Netns
    container: Netns
    daemon: PluginDaemon
    lease_file: Path  # dnsmasq's, kept across its restarts

    def events(self, event: str) -> list[dict[str, Any]]:
        """The daemon's log lines (JSON) of one event, in order."""
        found = []
        for line in self.daemon.log().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # not a log line of ours (an interpreter warning)
            if isinstance(entry, dict) and entry.get("event") == event:
                found.append(entry)
        return found

    def server(self) -> AbstractContextManager[Dnsmasq]:
        """dnsmasq on the LAN, handing out 120 s leases with T1 = 4 s and T2 = 8 s."""
        return dnsmasq(
            self.lan.name, "wire0", router=ROUTER, extra=SHORT_TIMES, lease_file=self.lease_file
        )


def eventually(check: Callable[[], bool], what: str, within: float) -> float:
    """Wait until `check()` holds; the seconds it took."""
    started = time.monotonic()
    deadline = started + slow(within)
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:g} s: {what}")
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.fixture
def lab(netns_lab: NetnsLab, plugin_daemons: PluginDaemons, tmp_path: Path) -> Lab:
    require_root()
    host = netns_lab.netns("host")
    lan = netns_lab.netns("lan")
    netns_lab.veth(host, "lab0", lan, "wire0")
    lan.add_address("wire0", f"{ROUTER}/24")
    daemon = plugin_daemons.spawn(
        "node1",
        netns=host,
        env={
            "PYMACVLAN_ANNOUNCE_COUNT": "0",
            "PYMACVLAN_LOG_FORMAT": "json",
            "PYMACVLAN_LOG_LEVEL": "debug",
            "PYMACVLAN_DHCP_RETRY_SECONDS": f"{RETRY:g}",
        },
    )
    return Lab(host, lan, netns_lab.netns("container"), daemon, tmp_path / "dnsmasq.leases")


def dhcp_network(daemon: PluginDaemon) -> str:
    """`docker network create -d P --ipam-driver P --subnet 192.0.2.0/24 --gateway 192.0.2.1
    --ipam-opt dhcp=on -o parent=lab0`, in dockerd's order; the pool ID."""
    pool_id = str(
        ok(
            daemon,
            "IpamDriver.RequestPool",
            {"AddressSpace": "local", "Pool": SUBNET, "Options": {"dhcp": "on"}, "V6": False},
        )["PoolID"]
    )
    gateway = ok(
        daemon,
        "IpamDriver.RequestAddress",
        {
            "PoolID": pool_id,
            "Address": ROUTER,
            "Options": {"RequestAddressType": "com.docker.network.gateway"},
        },
    )["Address"]
    ok(
        daemon,
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": NET,
            "Options": {"com.docker.network.generic": {"parent": "lab0"}},
            "IPv4Data": [{"AddressSpace": "local", "Pool": SUBNET, "Gateway": gateway}],
        },
    )
    return pool_id


def test_a_lease_is_renewed_rebound_expires_is_regained_and_released(lab: Lab) -> None:
    daemon = lab.daemon
    pool_id = dhcp_network(daemon)
    with lab.server() as server:
        # `docker run --name web --network office`: the address, then the endpoint and Join.
        address = ok(
            daemon,
            "IpamDriver.RequestAddress",
            {
                "PoolID": pool_id,
                "Address": "",
                "Options": {"com.docker.network.endpoint.name": "web"},
            },
        )["Address"]
        ip = address.split("/")[0]
        low, high = (IPv4Address(end) for end in RANGE)
        assert address.endswith("/24")
        assert low <= IPv4Address(ip) <= high, f"{address} is not from the server's range"
        container = run_container(daemon, lab.host, lab.container, NET, ENDPOINT, address)
        link = lab.container.link(container.ifname)
        assert link is not None
        mac = str(link["address"])
        first = lease_on(server, mac, ip)
        assert first.hostname == "web"
        # dnsmasq sent the shortened T1 and T2 with the lease (its --log-dhcp lines).
        assert f"option: 58 T1  {T1}s" in server.log
        assert f"option: 59 T2  {T2}s" in server.log

        # T1: the daemon renews by unicast; the server's lease end moves forward. Renewals go
        # on at every T1 (each one starts the timeline over).
        took = eventually(
            lambda: lease_on(server, mac, ip).expiry > first.expiry,
            "the lease is renewed at T1 (the server's lease file moves forward)",
            within=T1 + 3,
        )
        print(f"first renewal seen {took:.1f} s after Join")
        renewed = lease_on(server, mac, ip).expiry
        eventually(
            lambda: lease_on(server, mac, ip).expiry > renewed,
            "the lease is renewed again at the next T1",
            within=T1 + 3,
        )
        # Each routine renewal is a debug line (the daemon runs at debug level here), written
        # once the renewal is committed: just after the server's lease file.
        eventually(
            lambda: len(lab.events("DHCP lease renewed")) >= 2,
            "both renewals are logged",
            within=1,
        )
        renewals = lab.events("DHCP lease renewed")
        for line in renewals:
            assert (line["level"], line["address"], line["mac"]) == ("debug", ip, mac)
        assert lab.events("DHCP renewal failed") == []

    # The server is gone for a while: the renewal at the next T1 gets no answer (a warning)...
    gone = time.monotonic()
    eventually(
        lambda: len(lab.events("DHCP renewal failed")) == 1,
        "a failed renewal is logged",
        within=T1 + RENEW_WAIT + 3,
    )
    print(f"renewal failure logged {time.monotonic() - gone:.1f} s after the server stopped")
    (renewal,) = lab.events("DHCP renewal failed")
    assert (renewal["level"], renewal["address"], renewal["mac"]) == ("warning", ip, mac)
    assert "the DHCP server 192.0.2.1 did not answer" in renewal["problem"]
    with lab.server() as server:
        # ... and it is back (with its leases) for the rebinding at T2, which it answers.
        before = lease_on(server, mac, ip).expiry
        took = eventually(
            lambda: any(line["level"] == "info" for line in lab.events("DHCP lease renewed")),
            "the rebinding is answered and logged",
            within=RENEW_WAIT + 3,
        )
        print(f"rebinding answered {took:.1f} s after the server came back")
        (rebound,) = [line for line in lab.events("DHCP lease renewed") if line["level"] == "info"]
        assert (rebound["address"], rebound["mac"], rebound["state"]) == (ip, mac, "bound")
        assert rebound["after"] == renewal["problem"]
        server.wait_for("the rebinding moves the lease end", lambda: server_end(server) > before)
        assert lab.events("DHCP rebinding failed") == []

    # The server is gone for good: a failed renewal, then at T2 failed rebinding (warnings)...
    gone = time.monotonic()
    took = eventually(
        lambda: bool(lab.events("DHCP rebinding failed")),
        "a failed rebinding is logged after T2",
        within=T2 + RENEW_WAIT + 3,
    )
    print(f"rebinding failure logged {took:.1f} s after the server stopped")
    assert len(lab.events("DHCP renewal failed")) == 2
    (rebinding,) = lab.events("DHCP rebinding failed")
    assert (rebinding["level"], rebinding["address"], rebinding["mac"]) == ("warning", ip, mac)
    assert "no DHCP server answered" in rebinding["problem"]
    assert lab.events("DHCP lease expired") == []

    # ... and the lease ends (120 s after the last renewal): an ERROR naming address and MAC.
    eventually(
        lambda: bool(lab.events("DHCP lease expired")),
        "the lease's end is logged",
        within=LEASE_SECONDS + RENEW_WAIT + 3,
    )
    print(f"expiry logged {time.monotonic() - gone:.1f} s after the server stopped")
    (expired,) = lab.events("DHCP lease expired")
    assert expired["level"] == "error"
    assert (expired["address"], expired["mac"], expired["state"]) == (ip, mac, "expired")
    assert "no DHCP server answered" in expired["problem"]
    assert f"again every {RETRY:g} s" in expired["action"]
    # The container keeps its address meanwhile: Docker cannot readdress a running container.
    assert address in lab.container.addresses(container.ifname)

    with lab.server() as server:
        # The server is back: the daemon asks for the same address again and gets it.
        took = eventually(
            lambda: bool(lab.events("DHCP lease regained")),
            "the lease is regained once the server answers again",
            within=RETRY + ACQUIRE_TIMEOUT + 3,  # the spacing, and an acquire already waiting
        )
        print(f"lease regained {took:.1f} s after the server came back")
        (regained,) = lab.events("DHCP lease regained")
        assert (regained["address"], regained["mac"], regained["state"]) == (ip, mac, "bound")
        server.wait_for(
            "the lease is granted again",
            lambda: server_end(server) >= time.time() + LEASE_SECONDS - 5,
        )
        lease_on(server, mac, ip)

        # `docker stop`: Leave, DeleteEndpoint, ReleaseAddress; the lease goes back.
        stop_container(daemon, lab.host, container)
        ok(daemon, "IpamDriver.ReleaseAddress", {"PoolID": pool_id, "Address": ip})
        server.wait_for("the release", lambda: server.lease_of(mac) is None)
        assert f"DHCPRELEASE(wire0) {ip} {mac}" in server.log
    assert lab.events("DHCP release not sent") == []
    assert lab.events("DHCP lease upkeep crashed") == []


def lease_on(server: Dnsmasq, mac: str, ip: str) -> ServerLease:
    """dnsmasq's lease of `mac`, which must be for `ip`."""
    lease = server.lease_of(mac)
    assert lease is not None, f"dnsmasq holds no lease for {mac}: {server.leases()}"
    assert lease.address == ip, lease
    return lease


def server_end(server: Dnsmasq) -> int:
    """When dnsmasq's only lease ends (0: it holds none)."""
    leases = server.leases()
    return leases[0].expiry if len(leases) == 1 else 0
