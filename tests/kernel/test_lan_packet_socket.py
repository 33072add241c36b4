"""The packet tap (driver/lan/packet_socket.py) on this host's kernel: which frames it hands over.

A tap on lab0 in the "host" namespace; frames sent from lan0 (its veth peer, in the "lan"
namespace) by another tap, or by the kernel's own UDP stack there.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from driver.lan.dhcp_codec import (
    BOOTREPLY,
    CLIENT_PORT,
    SERVER_PORT,
    DhcpFrame,
    DhcpMessage,
    build_frame,
    parse_frame,
)
from driver.lan.packet_socket import ARP_FILTER, DHCP_CLIENT_FILTER, PacketSocket
from tests.harness.prereq import require_command, require_root
from tests.kernel.nslab import Lab, cabled_lab, ns_sh, sh

TPID_8021Q = b"\x81\x00"


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_root()
    require_command("ip")
    with cabled_lab() as lab:
        yield lab


def answer(xid: int) -> bytes:
    """A DHCP answer to a client (UDP 67 -> 68), broadcast."""
    message = DhcpMessage(op=BOOTREPLY, xid=xid, chaddr=b"\x02\x00\x00\x00\x00\x01")
    frame = DhcpFrame(
        b"\xff" * 6,
        b"\x02\x00\x00\x00\x00\xfe",
        IPv4Address("192.0.2.1"),
        IPv4Address("255.255.255.255"),
        message,
        src_port=SERVER_PORT,
        dst_port=CLIENT_PORT,
    )
    return build_frame(frame)


def tagged(frame: bytes, vid: int) -> bytes:
    """``frame`` with an 802.1Q tag for VLAN ``vid`` after the MAC addresses."""
    return frame[:12] + TPID_8021Q + struct.pack("!H", vid) + frame[12:]


async def test_a_tap_on_a_parent_hears_its_own_lan_and_not_its_vlans(lab: Lab) -> None:
    """The kernel strips an 802.1Q tag into metadata before taps run (this kernel has no 8021q
    module, and does it anyway), so without the filter's VLAN check a DHCP answer on VLAN 30
    would look like one on the parent's untagged LAN."""
    with (
        PacketSocket.open("lab0", DHCP_CLIENT_FILTER, lab.host) as tap,
        PacketSocket.open("lan0", ARP_FILTER, lab.lan) as sender,
    ):
        sender.send(tagged(answer(30), 30))
        sender.send(answer(1))
        sender.send(tagged(answer(0), 0))  # priority-tagged: the untagged LAN's (802.1Q §9.6)
        sender.send(tagged(answer(4094), 4094))
        heard = []
        while (received := await tap.receive_frame(0.5)) is not None:
            heard.append(parse_frame(received.data).message.xid)
    assert heard == [1, 0]


async def test_a_frame_whose_checksum_the_sender_left_to_offload_is_marked(lab: Lab) -> None:
    """A UDP socket's datagram over a veth keeps the partial checksum of CHECKSUM_PARTIAL: it
    cannot be verified (and never crossed a wire); a complete frame is not marked."""
    sh("ip", "-n", lab.lan, "addr", "add", "192.0.2.1/24", "dev", "lan0")
    send_udp = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1); "
        "s.sendto(bytes(300), ('192.0.2.255', 68))"
    )
    with (
        PacketSocket.open("lab0", DHCP_CLIENT_FILTER, lab.host) as tap,
        PacketSocket.open("lan0", ARP_FILTER, lab.lan) as sender,
    ):
        ns_sh(lab.lan, sys.executable, "-c", send_udp)
        from_stack = await tap.receive_frame(2.0)
        sender.send(answer(7))
        complete = await tap.receive_frame(2.0)
    assert from_stack is not None
    assert from_stack.checksum_pending
    assert complete is not None
    assert not complete.checksum_pending
    assert parse_frame(complete.data).message.xid == 7
