"""The DHCP client (driver/lan/dhcp_client.py) against a real dnsmasq, on this host's kernel.

Topology (cabled_lab with a switch), every name the test's own:

    ns "host":       lab0 (veth, the "physical" parent; the client runs here)
    ns "lan":        lan0 (veth peer) ── br0 (the switch, 192.0.2.1/24; dnsmasq serves here)
    ns "container":  a macvlan child of lab0 with the client's MAC and leased address, made only
                     where a test needs the container to exist (renewals are answered unicast)

The client's MAC exists on no interface while it acquires: the answers are broadcast and the tap
on lab0 reads them. What the tests read back: the lease returned, dnsmasq's lease file (what the
server believes), and the frames the switch received (a tap in the "lan" namespace).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from ipaddress import IPv4Address, IPv4Interface

import pytest

from driver.errors import InvalidOption
from driver.lan import dhcp_client
from driver.lan.dhcp_client import DhcpError, DhcpLease, DhcpNak, DhcpTimeout
from driver.lan.dhcp_codec import (
    FLAG_BROADCAST,
    DhcpFrame,
    MessageType,
    Option,
    message_type,
    parse_frame,
)
from driver.lan.frames import mac_bytes
from driver.lan.packet_socket import DHCP_CLIENT_FILTER, JEQ_K, PacketSocket
from tests.harness.prereq import require_command, require_root
from tests.kernel.dnsmasq import Dnsmasq, dnsmasq
from tests.kernel.nslab import Lab, cabled_lab, sh

MAC = "02:00:5e:c0:00:0a"
OTHER_MAC = "02:00:5e:c0:00:0b"
CLIENT_ID = b"\xff\x00\x00\x00\x01" + bytes.fromhex("000400c0ffee")  # type 255, IAID, DUID
OTHER_CLIENT_ID = b"\x01" + mac_bytes(OTHER_MAC)  # type 1: the hardware address
HOSTNAME = "web-1"
SERVER = IPv4Address("192.0.2.1")
IN_RANGE = [IPv4Address("192.0.2.100") + n for n in range(51)]
# The DHCP client's filter with the server's port: what the switch hears from clients.
SERVER_FILTER = tuple(
    (code, jt, jf, 67 if (code, k) == (JEQ_K, 68) else k) for code, jt, jf, k in DHCP_CLIENT_FILTER
)


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_root()
    require_command("ip")
    with cabled_lab(switch=True) as lab:
        yield lab


@pytest.fixture
def server(lab: Lab) -> Iterator[Dnsmasq]:
    with dnsmasq(lab.lan, "br0") as server:
        yield server


class Switch:
    """What the LAN's switch receives from the clients: a tap on lan0 in the "lan" namespace."""

    def __init__(self, sock: PacketSocket) -> None:
        self.sock = sock

    async def requests(self, seconds: float = 0.5) -> list[DhcpFrame]:
        frames = []
        while (received := await self.sock.receive_frame(seconds)) is not None:
            frames.append(parse_frame(received.data, verify_udp_checksum=False))
        return frames


@pytest.fixture
async def switch(lab: Lab) -> AsyncIterator[Switch]:
    with PacketSocket.open("lan0", SERVER_FILTER, lab.lan) as sock:
        yield Switch(sock)


def mac_of(ns: str, link: str) -> str:
    address: str = json.loads(sh("ip", "-n", ns, "-j", "link", "show", "dev", link).stdout)[0][
        "address"
    ]
    return address


async def acquire(lab: Lab, mac: str = MAC, **kwargs: object) -> DhcpLease:
    options: dict[str, object] = {"client_id": CLIENT_ID, "hostname": HOSTNAME, **kwargs}
    return await dhcp_client.acquire("lab0", mac=mac, netns=lab.host, **options)  # type: ignore[arg-type]


def container(lab: Lab, lease: DhcpLease, mac: str = MAC) -> str:
    """A "container": a macvlan child of lab0 with ``mac`` and the leased address, in its own
    namespace, as the driver makes it when the container joins."""
    ns = lab.namespace("container")
    sh("ip", "-n", lab.host, "link", "add", "link", "lab0", "name", "c0", "address", mac, "type",
       "macvlan", "mode", "bridge")  # fmt: skip
    sh("ip", "-n", lab.host, "link", "set", "c0", "netns", ns)
    sh("ip", "-n", ns, "addr", "add", str(lease.address), "dev", "c0")
    sh("ip", "-n", ns, "link", "set", "c0", "up")
    return ns


async def test_acquire_gets_a_lease_that_the_server_records(lab: Lab, switch: Switch) -> None:
    # dnsmasq as it ships: it pings a new address before offering it (~3 s), so the OFFER
    # comes only after the DISCOVER was sent again.
    with dnsmasq(lab.lan, "br0", ping=True) as server:
        before = time.time()
        lease = await acquire(lab)
        after = time.time()
        assert lease.address.ip in IN_RANGE
        assert lease.address.network.prefixlen == 24
        assert lease.router == SERVER
        assert lease.server_id == SERVER
        assert lease.server_mac == mac_of(lab.lan, "br0")
        assert (lease.lease_seconds, lease.renew_seconds, lease.rebind_seconds) == (120, 60, 105)
        assert before <= lease.acquired_at <= after
        server.wait_for("the lease is recorded", lambda: server.lease_of(MAC) is not None)
        recorded = server.lease_of(MAC)
        assert recorded is not None
        assert recorded.address == str(lease.address.ip)
        assert recorded.hostname == HOSTNAME
        assert recorded.client_id == CLIENT_ID.hex(":")
    # What the switch saw: DISCOVERs (sent again while the server pinged), then a REQUEST for the
    # offered address, all from the container's MAC, broadcast, asking for broadcast answers.
    sent = await switch.requests()
    kinds = [message_type(frame.message) for frame in sent]
    assert kinds[-1] == MessageType.REQUEST
    assert kinds.count(MessageType.DISCOVER) >= 2
    for frame in sent:
        assert frame.eth_src == frame.message.chaddr == mac_bytes(MAC)
        assert frame.eth_dst == b"\xff" * 6
        assert str(frame.ip_src) == "0.0.0.0"
        assert frame.message.flags & FLAG_BROADCAST
        assert frame.message.option(Option.CLIENT_ID) == CLIENT_ID
        assert frame.message.option(Option.HOST_NAME) == HOSTNAME.encode()
    assert sent[-1].message.option(Option.REQUESTED_ADDRESS) == lease.address.ip.packed
    assert sent[-1].message.option(Option.SERVER_ID) == SERVER.packed


async def test_the_same_client_gets_the_same_address_again_also_after_release(
    lab: Lab, server: Dnsmasq
) -> None:
    first = await acquire(lab)
    again = await acquire(lab)
    assert again.address == first.address
    await dhcp_client.release("lab0", again, mac=MAC, client_id=CLIENT_ID, netns=lab.host)
    server.wait_for("the release", lambda: server.lease_of(MAC) is None)
    after_release = await acquire(lab)
    assert after_release.address == first.address


async def test_a_requested_address_is_offered_when_free(lab: Lab, server: Dnsmasq) -> None:
    natural = await acquire(lab)
    wanted = next(a for a in reversed(IN_RANGE) if a != natural.address.ip)
    lease = await acquire(lab, OTHER_MAC, client_id=OTHER_CLIENT_ID, requested=wanted)
    assert lease.address.ip == wanted
    assert server.lease_of(OTHER_MAC) is not None


async def test_release_removes_the_lease_from_the_server(lab: Lab, server: Dnsmasq) -> None:
    lease = await acquire(lab)
    server.wait_for("the lease is recorded", lambda: server.lease_of(MAC) is not None)
    await dhcp_client.release("lab0", lease, mac=MAC, client_id=CLIENT_ID, netns=lab.host)
    server.wait_for("the release", lambda: server.lease_of(MAC) is None)
    assert "DHCPRELEASE(br0) " + str(lease.address.ip) in server.log


async def test_renewing_is_unicast_to_the_server_and_extends_the_lease(
    lab: Lab, server: Dnsmasq, switch: Switch
) -> None:
    lease = await acquire(lab)
    container(lab, lease)
    await switch.requests(0.1)  # the acquisition's frames
    server.wait_for("the lease is recorded", lambda: server.lease_of(MAC) is not None)
    expiry = server.lease_of(MAC).expiry  # type: ignore[union-attr]
    await asyncio.sleep(1.1)  # dnsmasq counts in whole seconds

    renewed = await dhcp_client.renew(
        "lab0", lease, mac=MAC, client_id=CLIENT_ID, hostname=HOSTNAME, rebinding=False,
        netns=lab.host,
    )  # fmt: skip

    assert renewed.address == lease.address
    assert renewed.acquired_at > lease.acquired_at
    assert renewed.server_id == SERVER
    assert renewed.router == SERVER
    assert 0 < renewed.renew_seconds <= renewed.rebind_seconds <= renewed.lease_seconds == 120
    server.wait_for("the expiry moves", lambda: server.lease_of(MAC).expiry > expiry)  # type: ignore[union-attr]
    (request,) = await switch.requests()
    assert request.eth_dst == mac_bytes(lease.server_mac)
    assert (request.ip_src, request.ip_dst) == (lease.address.ip, SERVER)
    assert request.message.ciaddr == lease.address.ip
    assert not request.message.flags & FLAG_BROADCAST
    assert request.message.option(Option.SERVER_ID) is None
    assert request.message.option(Option.REQUESTED_ADDRESS) is None


async def test_rebinding_is_broadcast_and_extends_the_lease(
    lab: Lab, server: Dnsmasq, switch: Switch
) -> None:
    lease = await acquire(lab)
    container(lab, lease)
    await switch.requests(0.1)
    server.wait_for("the lease is recorded", lambda: server.lease_of(MAC) is not None)
    expiry = server.lease_of(MAC).expiry  # type: ignore[union-attr]
    await asyncio.sleep(1.1)

    rebound = await dhcp_client.renew(
        "lab0", lease, mac=MAC, client_id=CLIENT_ID, hostname=HOSTNAME, rebinding=True,
        netns=lab.host,
    )  # fmt: skip

    assert rebound.address == lease.address
    assert rebound.server_id == SERVER
    server.wait_for("the expiry moves", lambda: server.lease_of(MAC).expiry > expiry)  # type: ignore[union-attr]
    (request,) = await switch.requests()
    assert request.eth_dst == b"\xff" * 6
    assert (request.ip_src, str(request.ip_dst)) == (lease.address.ip, "255.255.255.255")
    assert request.message.ciaddr == lease.address.ip


async def test_renewing_an_address_the_server_does_not_know_is_refused_with_its_reason(
    lab: Lab, server: Dnsmasq
) -> None:
    lease = await acquire(lab)
    foreign = dataclasses.replace(lease, address=IPv4Interface("198.51.100.7/24"))
    with pytest.raises(DhcpNak) as refused:
        await dhcp_client.renew(
            "lab0", foreign, mac=MAC, client_id=CLIENT_ID, hostname=HOSTNAME, rebinding=False,
            timeout=3, netns=lab.host,
        )  # fmt: skip
    assert refused.value.reason == "lease not found"
    assert refused.value.server == SERVER
    assert str(refused.value) == (
        f"DHCP on link 'lab0' for MAC {MAC}: the DHCP server 192.0.2.1 refused the renewal of "
        "198.51.100.7 (NAK): 'lease not found'"
    )


async def test_renewing_without_the_container_gets_no_answer_in_time(
    lab: Lab, server: Dnsmasq
) -> None:
    """The server answers a renewal unicast, after an ARP for the address that only the
    container's link answers: without it nothing comes back."""
    lease = await acquire(lab)
    with pytest.raises(DhcpTimeout, match=r"no ACK from a DHCP server within 1\.5 s"):
        await dhcp_client.renew(
            "lab0", lease, mac=MAC, client_id=CLIENT_ID, hostname=HOSTNAME, rebinding=False,
            timeout=1.5, netns=lab.host,
        )  # fmt: skip


async def test_no_server_means_a_timeout_within_the_timeout(lab: Lab) -> None:
    started = time.monotonic()
    with pytest.raises(DhcpTimeout) as timed_out:
        await acquire(lab, timeout=2.5)
    elapsed = time.monotonic() - started
    assert 2.5 <= elapsed < 3.0
    # Sent at 0 s and after ~1 s; the next try (~3 s) would be past the timeout.
    assert str(timed_out.value) == (
        f"DHCP on link 'lab0' for MAC {MAC}: no OFFER from a DHCP server within 2.5 s "
        "(DISCOVER sent 2 times)"
    )


async def test_clients_at_once_on_one_link_each_get_their_own_lease(
    lab: Lab, server: Dnsmasq, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answers are matched by xid and chaddr: even with the same xid (forced here), two
    containers acquiring at the same time on one parent never take each other's answer."""
    monkeypatch.setattr(secrets, "randbits", lambda bits: 0x5EED)
    mine, other = await asyncio.gather(
        acquire(lab), acquire(lab, OTHER_MAC, client_id=OTHER_CLIENT_ID)
    )
    assert mine.address != other.address
    assert server.lease_of(MAC).address == str(mine.address.ip)  # type: ignore[union-attr]
    assert server.lease_of(OTHER_MAC).address == str(other.address.ip)  # type: ignore[union-attr]


async def test_a_missing_or_down_link_is_said_at_once(lab: Lab) -> None:
    with pytest.raises(DhcpError, match=r"^DHCP on link 'nosuch0' for MAC .*: the link does not"):
        await dhcp_client.acquire(
            "nosuch0", mac=MAC, client_id=CLIENT_ID, hostname=None, netns=lab.host
        )
    sh("ip", "-n", lab.host, "link", "set", "lab0", "down")
    started = time.monotonic()
    with pytest.raises(DhcpError, match=r"cannot send the DISCOVER: the link is down$"):
        await acquire(lab)
    assert time.monotonic() - started < 0.5


async def test_arguments_that_cannot_be_sent_are_refused_before_sending(lab: Lab) -> None:
    with pytest.raises(InvalidOption, match="client identifier is 2 to 255 bytes, not 1"):
        await acquire(lab, client_id=b"\x01")
    with pytest.raises(InvalidOption, match=r"host name 'xxx.*is not 1 to 255 bytes"):
        await acquire(lab, hostname="x" * 256)
    with pytest.raises(InvalidOption, match="multicast"):
        await acquire(lab, "03:00:00:00:00:01")
