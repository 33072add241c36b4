"""The LAN's frames byte for byte (ARP probe, DAD solicitation, their parsers), the packet
filters that pick the answers, and the bounded, throttled record of address claims."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence

import pytest
from structlog.testing import capture_logs

from driver import announce
from driver.lan import frames
from driver.lan.claims import Claim, ClaimRecord
from driver.lan.packet_socket import (
    ARP_FILTER,
    ARP_OR_NEIGHBOUR_ADVERT_FILTER,
    DHCP_CLIENT_FILTER,
    JEQ_K,
    JSET_K,
    LD_B_ABS,
    LD_H_ABS,
    LD_H_IND,
    LD_W_ABS,
    LDX_B_MSH,
    NEIGHBOUR_ADVERT_FILTER,
    RET_K,
    SKF_AD_VLAN_TAG,
    SKF_AD_VLAN_TAG_PRESENT,
    Instruction,
    arp_sender_filter,
    neighbour_advert_filter,
)

MAC = "02:42:c0:00:02:0a"
FOREIGN = "5a:5d:1f:d3:29:33"
V4 = ipaddress.IPv4Address("192.0.2.50")
V6 = ipaddress.IPv6Address("2001:db8::50")


def test_arp_probe_frame() -> None:
    assert frames.arp_probe(MAC, V4) == bytes.fromhex(
        "ffffffffffff"  # broadcast
        "0242c000020a"  # from the link's MAC
        "0806"  # ARP
        "0001" "0800" "06" "04" "0001"  # Ethernet, IPv4, lengths 6 and 4, request
        "0242c000020a" "00000000"  # sender MAC, sender IP 0.0.0.0 (RFC 5227 §2.1.1)
        "000000000000" "c0000232"  # target MAC zero, target IP 192.0.2.50
    )  # fmt: skip


def test_dad_solicitation_frame() -> None:
    frame = frames.dad_solicitation(MAC, V6, nonce=bytes([1, 2, 3, 4, 5, 6]))
    assert frame == bytes.fromhex(
        "3333ff000050"  # the solicited-node group's MAC
        "0242c000020a"
        "86dd"
        "60000000" "0020" "3a" "ff"  # IPv6, 32 bytes of ICMPv6, hop limit 255
        "00000000000000000000000000000000"  # from :: (RFC 4862 §5.4.2)
        "ff0200000000000000000001ff000050"  # to ff02::1:ff00:50
        "87" "00" "353a" "00000000"  # neighbour solicitation, checksum, reserved
        "20010db8000000000000000000000050"  # target
        "0e01" "010203040506"  # nonce option (RFC 7527)
    )  # fmt: skip
    assert _checksum_holds(frame)


def test_dad_solicitation_without_nonce_and_a_wrong_nonce() -> None:
    frame = frames.dad_solicitation(MAC, ipaddress.IPv6Address("2001:db8::abcd:ef12"))
    assert frame[:6] == bytes.fromhex("3333ffcdef12")
    assert len(frame) == 14 + 40 + 24  # no option: no source link-layer option from ::
    assert _checksum_holds(frame)
    with pytest.raises(ValueError, match="6 bytes"):
        frames.dad_solicitation(MAC, V6, nonce=b"\x01")


def _checksum_holds(frame: bytes) -> bool:
    src, dst, body = frame[22:38], frame[38:54], frame[54:]
    data = src + dst + struct.pack("!IxxxB", len(body), 58) + body
    words: tuple[int, ...] = struct.unpack(f"!{len(data) // 2}H", data)
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


ARP_REPLY = bytes.fromhex(
    "0242c000020a" "5a5d1fd32933" "0806"
    "0001" "0800" "06" "04" "0002"
    "5a5d1fd32933" "c0000232"  # 192.0.2.50 is at 5a:5d:1f:d3:29:33
    "0242c000020a" "00000000"
) + bytes(18)  # fmt: skip  # Ethernet padding to 60 bytes


def test_parse_arp() -> None:
    assert frames.parse_arp(ARP_REPLY) == (frames.ARP_REPLY, FOREIGN, V4, frames.UNSPECIFIED_V4)
    probe = frames.parse_arp(frames.arp_probe(MAC, V4))
    assert probe == frames.ArpPacket(frames.ARP_REQUEST, MAC, frames.UNSPECIFIED_V4, V4)
    announcement = frames.parse_arp(announce.gratuitous_arp(FOREIGN, V4))
    assert announcement == (frames.ARP_REQUEST, FOREIGN, V4, V4)


@pytest.mark.parametrize(
    "frame",
    [
        ARP_REPLY[:41],  # cut short
        ARP_REPLY[:12] + b"\x08\x00" + ARP_REPLY[14:],  # IPv4, not ARP
        ARP_REPLY[:14] + b"\x00\x06" + ARP_REPLY[16:],  # IEEE 802 hardware, not Ethernet
        ARP_REPLY[:16] + b"\x86\xdd" + ARP_REPLY[18:],  # not IPv4 addresses
        frames.dad_solicitation(MAC, V6),
    ],
)
def test_parse_arp_refuses_other_frames(frame: bytes) -> None:
    assert frames.parse_arp(frame) is None


def _advert(*, options: bytes = b"", hop_limit: int = 255, kind: int = 136) -> bytes:
    body = struct.pack("!BBHI", kind, 0, 0, 0x60000000) + V6.packed + options
    frame = frames.icmpv6_frame(FOREIGN, frames.ALL_NODES_MAC, V6, frames.ALL_NODES, body)
    return frame[:21] + bytes([hop_limit]) + frame[22:]


def test_parse_neighbour_advert() -> None:
    # The MAC of the target link-layer option, else the Ethernet source.
    option = struct.pack("!BB", 2, 1) + frames.mac_bytes("02:00:00:00:00:77")
    assert frames.parse_neighbour_advert(_advert(options=option)) == (V6, "02:00:00:00:00:77")
    assert frames.parse_neighbour_advert(_advert()) == (V6, FOREIGN)
    nonce_first = struct.pack("!BB", 14, 1) + bytes(6) + option
    assert frames.parse_neighbour_advert(_advert(options=nonce_first)) == (V6, "02:00:00:00:00:77")
    # Padding past the IPv6 payload is not an option.
    assert frames.parse_neighbour_advert(_advert() + option) == (V6, FOREIGN)
    assert frames.parse_neighbour_advert(announce.unsolicited_na(MAC, V6)) == (V6, MAC)


@pytest.mark.parametrize(
    "frame",
    [
        _advert(hop_limit=254),  # crossed a router
        _advert(kind=135),  # a solicitation
        _advert(options=b"\x02\x00" + bytes(6)),  # a zero-length option: invalid
        _advert()[:70],
        ARP_REPLY,
    ],
)
def test_parse_neighbour_advert_refuses_other_frames(frame: bytes) -> None:
    assert frames.parse_neighbour_advert(frame) is None


# -- the filters, run by a small classic BPF interpreter -----------------------------------------


def run_filter(program: Sequence[Instruction], frame: bytes, vlan_tci: int = 0) -> int:
    """What the kernel's classic BPF does with ``frame`` (only the opcodes the filters use): the
    bytes kept, 0 for a dropped frame. ``vlan_tci``: the tag the kernel took off the frame."""
    a = x = pc = 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code in (LD_W_ABS, LD_H_ABS, LD_B_ABS):
            if k == SKF_AD_VLAN_TAG:
                a = vlan_tci
                continue
            if k == SKF_AD_VLAN_TAG_PRESENT:
                a = int(vlan_tci != 0)
                continue
            size = {LD_W_ABS: 4, LD_H_ABS: 2, LD_B_ABS: 1}[code]
            if k + size > len(frame):
                return 0
            a = int.from_bytes(frame[k : k + size], "big")
        elif code == LDX_B_MSH:
            x = 4 * (frame[k] & 0x0F)
        elif code == LD_H_IND:
            if x + k + 2 > len(frame):
                return 0
            a = int.from_bytes(frame[x + k : x + k + 2], "big")
        elif code == JEQ_K:
            pc += jt if a == k else jf
        elif code == JSET_K:
            pc += jt if a & k else jf
        elif code == RET_K:
            return k
        else:
            raise AssertionError(f"opcode {code:#x} is not interpreted here")


GRATUITOUS = announce.gratuitous_arp(FOREIGN, V4)
ADVERT = announce.unsolicited_na(FOREIGN, V6)
OTHER_ADVERT = announce.unsolicited_na(FOREIGN, ipaddress.IPv6Address("2001:db8::51"))
SOLICITATION = frames.dad_solicitation(MAC, V6)


@pytest.mark.parametrize(
    ("program", "kept", "dropped"),
    [
        (ARP_FILTER, [GRATUITOUS, ARP_REPLY], [ADVERT]),
        (NEIGHBOUR_ADVERT_FILTER, [ADVERT, OTHER_ADVERT], [GRATUITOUS, SOLICITATION]),
        (
            ARP_OR_NEIGHBOUR_ADVERT_FILTER,
            [GRATUITOUS, ARP_REPLY, ADVERT],
            [SOLICITATION, _advert(kind=135)],
        ),
        (
            arp_sender_filter(V4),
            [GRATUITOUS, ARP_REPLY],
            [
                announce.gratuitous_arp(FOREIGN, ipaddress.IPv4Address("192.0.2.51")),
                frames.arp_probe(MAC, V4),  # sender 0.0.0.0: someone asking, not holding
                ADVERT,
            ],
        ),
        (neighbour_advert_filter(V6), [ADVERT], [OTHER_ADVERT, SOLICITATION, GRATUITOUS]),
        (DHCP_CLIENT_FILTER, [], [GRATUITOUS, ADVERT]),
    ],
)
def test_filters_keep_what_they_promise(
    program: Sequence[Instruction], kept: list[bytes], dropped: list[bytes]
) -> None:
    for frame in kept:
        assert run_filter(program, frame) > 0
        # A tag naming a VLAN: another LAN's frame. A priority tag (VLAN 0) is this LAN's.
        assert run_filter(program, frame, vlan_tci=30) == 0
        assert run_filter(program, frame, vlan_tci=0x6000) > 0
    for frame in dropped:
        assert run_filter(program, frame) == 0


def test_an_advert_differing_only_in_the_last_word_of_its_target_is_dropped() -> None:
    program = neighbour_advert_filter(ipaddress.IPv6Address("2001:db8:1:2:3:4:5:6"))
    for near in ("2001:db8:1:2:3:4:5:7", "2001:db9:1:2:3:4:5:6", "2001:db8:1:2:3:5:5:6"):
        frame = announce.unsolicited_na(FOREIGN, ipaddress.IPv6Address(near))
        assert run_filter(program, frame) == 0
    frame = announce.unsolicited_na(FOREIGN, ipaddress.IPv6Address("2001:db8:1:2:3:4:5:6"))
    assert run_filter(program, frame) > 0


# -- the record of claims ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def claim(address: str = "192.0.2.60", foreign: str = FOREIGN) -> Claim:
    return Claim(ipaddress.ip_address(address), MAC, foreign, "lab0", 0.0)


def test_a_repeated_claim_is_logged_once_a_minute_and_counted_every_time() -> None:
    clock = Clock()
    record = ClaimRecord(clock=clock)
    with capture_logs() as logs:
        assert record.report(claim())
        clock.now += 30
        assert not record.report(claim())
        assert record.report(claim(foreign="02:00:00:00:00:99"))  # another device: news
        assert record.report(claim("192.0.2.61"))  # another address: news
        clock.now += 31
        assert record.report(claim())
    assert record.total == 5
    assert len(record.recent) == 4
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert len(warnings) == 4
    assert warnings[0] == {
        "event": "another device claims a container's address",
        "log_level": "warning",
        "address": "192.0.2.60",
        "container_mac": MAC,
        "foreign_mac": FOREIGN,
        "link": "lab0",
    }


def test_the_record_and_the_throttle_are_bounded() -> None:
    clock = Clock()
    record = ClaimRecord(keep=3, throttle_entries=10, clock=clock)
    with capture_logs():
        for n in range(20):
            assert record.report(claim(f"192.0.2.{n + 1}"))
        # The throttle forgot the oldest claims: with room for 10, the first one is news again.
        assert record.report(claim("192.0.2.1"))
        assert not record.report(claim("192.0.2.20"))
    assert [str(c.address) for c in record.recent] == ["192.0.2.19", "192.0.2.20", "192.0.2.1"]
    assert record.total == 22
