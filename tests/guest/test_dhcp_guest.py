"""The DHCP client over an 802.1Q VLAN, against a real dnsmasq, on Debian's full kernel in the
virtme-ng guest (this VM's kernel has no 8021q). By hand, as tests/guest/test_netlink_guest.py
says, with ``tests/guest/test_dhcp_guest.py``.

Topology, all in namespaces the test creates:

    ns "host":       lab0 (veth, the "physical" parent) ── lab0.30 (VLAN 30; the client runs here)
    ns "lan":        lan0 (its peer) ── lan0.30 (VLAN 30, 192.0.2.1/24; dnsmasq serves here)
    ns "container":  a macvlan child of lab0.30 with the client's MAC and the leased address
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from driver.lan import dhcp_client
from tests.harness.prereq import in_guest, kernel_supports, require, slow
from tests.kernel.dnsmasq import dnsmasq
from tests.kernel.nslab import Lab, cabled_lab, sh

pytestmark = [
    pytest.mark.guest,
    pytest.mark.skipif(not in_guest(), reason="runs inside the virtme-ng guest (tests/guest)"),
]

MAC = "02:00:5e:c0:00:1e"
CLIENT_ID = b"\x01" + bytes.fromhex("02005ec0001e")
HOSTNAME = "vlan-web"


@pytest.fixture
def lab() -> Iterator[Lab]:
    sh("modprobe", "8021q", check=False)
    require(kernel_supports("vlan"), "the guest kernel has no 802.1q")
    with cabled_lab() as lab:
        for ns, parent in ((lab.host, "lab0"), (lab.lan, "lan0")):
            sh("ip", "-n", ns, "link", "add", "link", parent, "name", f"{parent}.30", "type",
               "vlan", "id", "30")  # fmt: skip
            sh("ip", "-n", ns, "link", "set", f"{parent}.30", "up")
        sh("ip", "-n", lab.lan, "addr", "add", "192.0.2.1/24", "dev", "lan0.30")
        yield lab


async def test_a_lease_over_a_vlan_link_is_acquired_renewed_and_released(lab: Lab) -> None:
    with dnsmasq(lab.lan, "lan0.30") as server:
        lease = await dhcp_client.acquire(
            "lab0.30", mac=MAC, client_id=CLIENT_ID, hostname=HOSTNAME, timeout=slow(3),
            netns=lab.host,
        )  # fmt: skip
        assert str(lease.address.network) == "192.0.2.0/24"
        assert str(lease.router) == "192.0.2.1"
        server.wait_for("the lease is recorded", lambda: server.lease_of(MAC) is not None)
        recorded = server.lease_of(MAC)
        assert recorded is not None
        assert (recorded.address, recorded.hostname) == (str(lease.address.ip), HOSTNAME)
        assert f"DHCPACK(lan0.30) {lease.address.ip} {MAC}" in server.log

        # The container's link on the VLAN link: the server's unicast answer to it reaches the
        # tap on lab0.30.
        ns = lab.namespace("container")
        sh("ip", "-n", lab.host, "link", "add", "link", "lab0.30", "name", "c0", "address", MAC,
           "type", "macvlan", "mode", "bridge")  # fmt: skip
        sh("ip", "-n", lab.host, "link", "set", "c0", "netns", ns)
        sh("ip", "-n", ns, "addr", "add", str(lease.address), "dev", "c0")
        sh("ip", "-n", ns, "link", "set", "c0", "up")
        expiry = recorded.expiry
        await asyncio.sleep(1.1)  # dnsmasq counts in whole seconds
        renewed = await dhcp_client.renew(
            "lab0.30", lease, mac=MAC, client_id=CLIENT_ID, hostname=HOSTNAME, rebinding=False,
            timeout=slow(3), netns=lab.host,
        )  # fmt: skip
        assert renewed.address == lease.address
        server.wait_for("the expiry moves", lambda: server.lease_of(MAC).expiry > expiry)  # type: ignore[union-attr]

        await dhcp_client.release("lab0.30", renewed, mac=MAC, client_id=CLIENT_ID, netns=lab.host)
        server.wait_for("the release", lambda: server.lease_of(MAC) is None)
