"""The DHCP codec (driver/lan/dhcp_codec.py) and what answers grant (driver/lan/dhcp_lease.py).

Round trips of random messages, totality over random and mutated bytes (a parsed message or
`MalformedFrame`, never another exception), and real answers captured from dnsmasq.
"""

from __future__ import annotations

import contextlib
import struct
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from driver.lan.dhcp_codec import (
    BOOTREPLY,
    BOOTREQUEST,
    CLIENT_PORT,
    FLAG_BROADCAST,
    MIN_BOOTP,
    SERVER_PORT,
    DhcpFrame,
    DhcpMessage,
    MalformedFrame,
    MessageType,
    Option,
    address_option,
    addresses_option,
    build_frame,
    build_message,
    message_type,
    parse_frame,
    parse_message,
    prefix_option,
    seconds_option,
)
from driver.lan.dhcp_lease import (
    INFINITE,
    DhcpLease,
    UnusableAnswer,
    lease_from_ack,
    offer_from,
)

FIXTURES = Path(__file__).with_name("dhcp_frames_dnsmasq.txt")
CAPTURED = {
    name: bytes.fromhex(frame)
    for name, frame in (
        line.split() for line in FIXTURES.read_text().splitlines() if not line.startswith("#")
    )
}
SERVER = IPv4Address("192.0.2.1")
CLIENT_MAC = bytes.fromhex("0200 00aa bb01")
SERVER_MAC = bytes.fromhex("26c1 075a 20f1")

addresses = st.builds(IPv4Address, st.integers(0, 2**32 - 1))
macs = st.binary(min_size=6, max_size=6)
option_codes = st.integers(1, 254).filter(lambda code: code != Option.OVERLOAD)
messages = st.builds(
    DhcpMessage,
    op=st.sampled_from((BOOTREQUEST, BOOTREPLY)) | st.integers(0, 255),
    xid=st.integers(0, 2**32 - 1),
    chaddr=st.binary(max_size=16),
    options=st.dictionaries(option_codes, st.binary(max_size=255), max_size=12).map(
        lambda options: tuple(options.items())
    ),
    secs=st.integers(0, 0xFFFF),
    flags=st.integers(0, 0xFFFF),
    ciaddr=addresses,
    yiaddr=addresses,
    siaddr=addresses,
    giaddr=addresses,
    hops=st.integers(0, 255),
    htype=st.integers(0, 255),
)
frames = st.builds(
    DhcpFrame,
    eth_dst=macs,
    eth_src=macs,
    ip_src=addresses,
    ip_dst=addresses,
    message=messages,
    src_port=st.integers(0, 0xFFFF),
    dst_port=st.integers(0, 0xFFFF),
)


# --- round trips and totality ----------------------------------------------------------------


@given(frames)
def test_a_built_frame_parses_back_to_itself(frame: DhcpFrame) -> None:
    assert parse_frame(build_frame(frame)) == frame


@given(messages)
def test_a_built_message_is_at_least_the_bootp_minimum_and_parses_back(
    message: DhcpMessage,
) -> None:
    data = build_message(message)
    assert len(data) >= MIN_BOOTP
    assert parse_message(data) == message


def read_everything(data: bytes) -> None:
    """Parse ``data`` and read every typed value a client reads: only MalformedFrame may come."""
    frame = parse_frame(data)
    message = frame.message
    message_type(message)
    for code in (Option.REQUESTED_ADDRESS, Option.SERVER_ID):
        address_option(message, code)
    for code in (Option.ROUTER, Option.DNS):
        addresses_option(message, code)
    for code in (Option.LEASE_TIME, Option.RENEWAL_TIME, Option.REBINDING_TIME):
        seconds_option(message, code)
    prefix_option(message)


@given(st.binary(max_size=1600))
@example(b"")
@example(CAPTURED["ACK"][:-300])
def test_any_bytes_give_a_message_or_a_malformed_frame(data: bytes) -> None:
    reason = ""
    try:
        read_everything(data)
    except MalformedFrame as refused:
        reason = str(refused)
    assert len(reason) < 100  # our words, never the bytes


def with_valid_headers(bootp: bytes) -> bytes:
    """``bootp`` as the payload of a frame whose Ethernet, IPv4 and UDP layers are right: so
    that random bytes reach the BOOTP and options parser instead of failing a checksum."""
    udp = struct.pack("!HHHH", SERVER_PORT, CLIENT_PORT, 8 + len(bootp), 0) + bootp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes(4), bytes(4))
    total = sum(struct.unpack("!10H", ip))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    ip = ip[:10] + struct.pack("!H", ~total & 0xFFFF) + ip[12:]
    return bytes(12) + b"\x08\x00" + ip + udp


@given(st.binary(max_size=236), st.binary(max_size=400))
def test_any_bootp_body_gives_a_message_or_a_malformed_frame(fixed: bytes, rest: bytes) -> None:
    body = fixed.ljust(236, b"\x00") + b"\x63\x82\x53\x63" + rest
    with contextlib.suppress(MalformedFrame):
        read_everything(with_valid_headers(body))


@settings(max_examples=300)
@given(st.sampled_from(sorted(CAPTURED)), st.data())
def test_damaged_captures_give_a_message_or_a_malformed_frame(
    name: str, data: st.DataObject
) -> None:
    frame = bytearray(CAPTURED[name])
    for _ in range(data.draw(st.integers(1, 8))):
        frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    for damaged in (bytes(frame), bytes(frame[:cut])):
        for verify in (True, False):
            with contextlib.suppress(MalformedFrame):
                parse_frame(damaged, verify_udp_checksum=verify)


# --- what is refused, and why ------------------------------------------------------------------


def offer_frame(**message: object) -> DhcpFrame:
    fields: dict[str, object] = {
        "op": BOOTREPLY,
        "xid": 0x1234,
        "chaddr": CLIENT_MAC,
        "yiaddr": IPv4Address("192.0.2.128"),
        "options": ((Option.MESSAGE_TYPE, b"\x02"),),
        **message,
    }
    return DhcpFrame(
        b"\xff" * 6,
        SERVER_MAC,
        SERVER,
        IPv4Address("255.255.255.255"),
        DhcpMessage(**fields),  # type: ignore[arg-type]
        src_port=SERVER_PORT,
        dst_port=CLIENT_PORT,
    )


def refusal(data: bytes, **kwargs: bool) -> str:
    with pytest.raises(MalformedFrame) as refused:
        parse_frame(data, **kwargs)
    return str(refused.value)


def test_broken_layers_are_refused_with_the_reason() -> None:
    good = build_frame(offer_frame())
    ip, udp = 14, 34
    assert refusal(good[:40]) == "frame of 40 bytes is too short for IPv4 and UDP"
    vlan = good[:12] + b"\x81\x00\x00\x1e" + good[12:]
    assert refusal(vlan) == "EtherType 0x8100 is not IPv4"
    wrong_checksum = bytearray(good)
    wrong_checksum[ip + 8] ^= 1  # the TTL, under the header checksum
    assert refusal(bytes(wrong_checksum)) == "IPv4 header checksum is wrong"
    payload = bytearray(good)
    payload[-1] ^= 1
    assert refusal(bytes(payload)) == "UDP checksum is wrong"
    assert parse_frame(bytes(payload), verify_udp_checksum=False).checksum_unchecked
    no_checksum = good[: udp + 6] + b"\x00\x00" + good[udp + 8 :]
    assert parse_frame(no_checksum).checksum_unchecked  # 0: the sender computed none
    assert not parse_frame(good).checksum_unchecked
    assert refusal(good[:-1]) == "IPv4 total length 328 does not fit the frame"


def test_fragments_and_other_protocols_are_refused() -> None:
    good = bytearray(build_frame(offer_frame()))

    def with_ip(offset: int, value: bytes) -> bytes:
        frame = bytearray(good)
        frame[14 + offset : 14 + offset + len(value)] = value
        frame[24:26] = b"\x00\x00"
        words = struct.unpack("!10H", bytes(frame[14:34]))
        total = sum(words)
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        frame[24:26] = struct.pack("!H", ~total & 0xFFFF)
        return bytes(frame)

    assert refusal(with_ip(6, b"\x20\x00")) == "an IPv4 fragment"
    assert refusal(with_ip(6, b"\x00\x10")) == "an IPv4 fragment"
    assert refusal(with_ip(9, b"\x06")) == "IP protocol 6 is not UDP"
    assert refusal(with_ip(0, b"\x65")) == "IP version 6, header 20 bytes: not IPv4"


def test_broken_bootp_and_options_are_refused_with_the_reason() -> None:
    body = bytearray(build_message(offer_frame().message))

    def refused(data: bytes) -> str:
        with pytest.raises(MalformedFrame) as error:
            parse_message(data)
        return str(error.value)

    assert refused(bytes(body[:239])) == "BOOTP message of 239 bytes is too short"
    assert refused(bytes(body[:2]) + b"\x11" + bytes(body[3:])) == (
        "hardware address length 17 is over 16"
    )
    assert refused(bytes(body[:236]) + b"\x63\x82\x53\x64" + bytes(body[240:])) == (
        "no DHCP magic cookie: a plain BOOTP message"
    )
    cookie = bytes(body[:240])
    assert refused(cookie + b"\x03\x08\xc0\x00\x02\x01") == "option 3 in options runs past the end"
    assert refused(cookie + b"\x00\x00\x03") == "option 3 in options has no length"
    # A missing END is accepted: the field simply ends.
    assert parse_message(cookie + b"\x35\x01\x05").option(Option.MESSAGE_TYPE) == b"\x05"


def test_a_repeated_option_is_one_value_and_padding_is_skipped() -> None:
    """RFC 3396: an option split into several parts is their concatenation, in order."""
    cookie = build_message(offer_frame(options=()).message)[:240]
    data = cookie + b"\x06\x04\xc0\x00\x02\x01\x00\x00\x35\x01\x05\x06\x04\xc0\x00\x02\x02\xff"
    message = parse_message(data + b"\x06\x04garbage after the end")
    assert message.options == ((6, bytes.fromhex("c0000201c0000202")), (53, b"\x05"))
    assert addresses_option(message, Option.DNS) == (SERVER, IPv4Address("192.0.2.2"))


def test_overloaded_file_and_sname_fields_carry_more_options() -> None:
    """RFC 2131 §4.1: option 52 says file (1), sname (2) or both (3) hold options; they are
    read after the options field, file before sname."""
    body = bytearray(build_message(offer_frame(options=()).message))
    body[108:114] = b"\x36\x04\xc0\x00\x02\x01"  # file: the server identifier
    body[114] = 0xFF
    body[44:51] = b"\x33\x04\x00\x00\x00\x78\xff"  # sname: the lease time
    options = b"\x35\x01\x05\x34\x01\x03\xff"
    message = parse_message(bytes(body[:240]) + options)
    assert address_option(message, Option.SERVER_ID) == SERVER
    assert seconds_option(message, Option.LEASE_TIME) == 120
    assert [code for code, _ in message.options] == [53, 52, 54, 51]
    only_file = parse_message(bytes(body[:240]) + options.replace(b"\x34\x01\x03", b"\x34\x01\x01"))
    assert seconds_option(only_file, Option.LEASE_TIME) is None
    with pytest.raises(MalformedFrame, match="option 52"):
        parse_message(bytes(body[:240]) + b"\x34\x01\x04\xff")


def test_typed_values_of_the_wrong_size_are_refused() -> None:
    def message(code: int, value: bytes) -> DhcpMessage:
        return DhcpMessage(op=BOOTREPLY, xid=1, chaddr=b"", options=((code, value),))

    with pytest.raises(MalformedFrame, match="option 53"):
        message_type(message(Option.MESSAGE_TYPE, b"\x09"))
    with pytest.raises(MalformedFrame, match="option 53"):
        message_type(message(Option.MESSAGE_TYPE, b""))
    with pytest.raises(MalformedFrame, match="option 54 is 3 bytes"):
        address_option(message(Option.SERVER_ID, b"\x01\x02\x03"), Option.SERVER_ID)
    with pytest.raises(MalformedFrame, match="option 3 is 0 bytes"):
        addresses_option(message(Option.ROUTER, b""), Option.ROUTER)
    with pytest.raises(MalformedFrame, match="option 51 is 2 bytes"):
        seconds_option(message(Option.LEASE_TIME, b"\x00\x01"), Option.LEASE_TIME)
    with pytest.raises(MalformedFrame, match="not a contiguous mask"):
        prefix_option(message(Option.SUBNET_MASK, b"\xff\x00\xff\x00"))
    assert prefix_option(message(Option.SUBNET_MASK, b"\xff\xff\xfe\x00")) == 23
    assert prefix_option(message(Option.SUBNET_MASK, b"\x00\x00\x00\x00")) == 0


def test_what_cannot_be_sent_is_refused_when_building() -> None:
    base = offer_frame().message
    for options, reason in [
        (((Option.OVERLOAD, b"\x01"),), "option 52 cannot be sent"),
        (((Option.END, b""),), "option 255 cannot be sent"),
        (((12, b"a"), (12, b"b")), "option 12 is given twice"),
        (((12, bytes(256)),), "option 12 is 256 bytes; at most 255"),
    ]:
        with pytest.raises(ValueError, match=reason):
            build_message(DhcpMessage(op=1, xid=1, chaddr=b"", options=options))
    with pytest.raises(ValueError, match="a BOOTP field does not fit"):
        build_message(DhcpMessage(op=1, xid=2**32, chaddr=b""))
    with pytest.raises(ValueError, match="chaddr is 17 bytes"):
        build_message(DhcpMessage(op=1, xid=1, chaddr=bytes(17)))
    with pytest.raises(ValueError, match="an Ethernet address is 6 bytes"):
        build_frame(DhcpFrame(b"", SERVER_MAC, SERVER, SERVER, base))


# --- real answers from dnsmasq ---------------------------------------------------------------


def test_dnsmasq_answers_decode() -> None:
    offer, ack, nak = (parse_frame(CAPTURED[name]) for name in ("OFFER", "ACK", "NAK"))
    for frame in (offer, ack, nak):
        assert not frame.checksum_unchecked  # complete checksums, verified
        assert (frame.eth_src, frame.eth_dst) == (SERVER_MAC, b"\xff" * 6)
        assert (frame.ip_src, str(frame.ip_dst)) == (SERVER, "255.255.255.255")
        assert (frame.src_port, frame.dst_port) == (SERVER_PORT, CLIENT_PORT)
        assert frame.message.op == BOOTREPLY
        assert frame.message.chaddr == CLIENT_MAC
        assert frame.message.flags == FLAG_BROADCAST
        assert address_option(frame.message, Option.SERVER_ID) == SERVER
    assert offer.message.xid == ack.message.xid == 0x0500E521
    assert message_type(offer.message) is MessageType.OFFER
    assert message_type(ack.message) is MessageType.ACK
    assert message_type(nak.message) is MessageType.NAK
    assert ack.message.yiaddr == IPv4Address("192.0.2.128")
    assert seconds_option(ack.message, Option.LEASE_TIME) == 120
    assert seconds_option(ack.message, Option.RENEWAL_TIME) == 60
    assert seconds_option(ack.message, Option.REBINDING_TIME) == 105
    assert prefix_option(ack.message) == 24
    assert addresses_option(ack.message, Option.ROUTER) == (SERVER,)
    assert nak.message.option(Option.MESSAGE) == b"lease not found"


def test_a_dnsmasq_offer_and_ack_grant_a_lease() -> None:
    offer = offer_from(parse_frame(CAPTURED["OFFER"]))
    assert (offer.address, offer.server) == (IPv4Address("192.0.2.128"), SERVER)
    lease = lease_from_ack(
        parse_frame(CAPTURED["ACK"]), server=SERVER, acquired_at=1000.0, previous=None
    )
    assert lease == DhcpLease(
        address=IPv4Interface("192.0.2.128/24"),
        router=SERVER,
        dns=(),
        server_id=SERVER,
        server_mac="26:c1:07:5a:20:f1",
        lease_seconds=120,
        renew_seconds=60,
        rebind_seconds=105,
        acquired_at=1000.0,
    )


# --- what an ACK grants ------------------------------------------------------------------------


def ack(*options: tuple[int, bytes], yiaddr: str = "192.0.2.128") -> DhcpFrame:
    return offer_frame(
        yiaddr=IPv4Address(yiaddr), options=((Option.MESSAGE_TYPE, b"\x05"), *options)
    )


def seconds(code: int, value: int) -> tuple[int, bytes]:
    return (code, struct.pack("!I", value))


def grant(frame: DhcpFrame, previous: DhcpLease | None = None) -> DhcpLease:
    return lease_from_ack(frame, server=SERVER, acquired_at=0.0, previous=previous)


def test_t1_and_t2_default_to_half_and_seven_eighths_and_stay_in_order() -> None:
    lease = grant(ack(seconds(Option.LEASE_TIME, 3600)))
    assert (lease.renew_seconds, lease.rebind_seconds) == (1800, 3150)
    # A server's T1 past its T2, or T2 past the lease, is clamped: T1 <= T2 <= lease.
    odd = grant(
        ack(
            seconds(Option.LEASE_TIME, 100),
            seconds(Option.RENEWAL_TIME, 500),
            seconds(Option.REBINDING_TIME, 200),
        )
    )
    assert (odd.renew_seconds, odd.rebind_seconds, odd.lease_seconds) == (100, 100, 100)
    forever = grant(ack(seconds(Option.LEASE_TIME, INFINITE)))
    assert forever.renew_seconds == forever.rebind_seconds == forever.lease_seconds == INFINITE


def test_an_ack_without_mask_gets_the_class_mask_or_keeps_the_previous_one() -> None:
    first = grant(ack(seconds(Option.LEASE_TIME, 60), (Option.DNS, SERVER.packed)))
    assert first.address == IPv4Interface("192.0.2.128/24")  # class C
    assert (
        grant(ack(seconds(Option.LEASE_TIME, 60), yiaddr="10.1.2.3")).address.network.prefixlen == 8
    )
    previous = grant(
        ack(
            seconds(Option.LEASE_TIME, 60),
            (Option.SUBNET_MASK, b"\xff\xff\xfe\x00"),
            (Option.ROUTER, SERVER.packed),
            (Option.DNS, SERVER.packed),
        )
    )
    renewed = grant(ack(seconds(Option.LEASE_TIME, 60)), previous)
    assert renewed.address == IPv4Interface("192.0.2.128/23")
    assert (renewed.router, renewed.dns) == (SERVER, (SERVER,))
    assert (first.router, first.dns) == (None, (SERVER,))


@pytest.mark.parametrize(
    ("yiaddr", "reason"),
    [
        ("0.0.0.0", "an ACK of 0.0.0.0, which no host can have"),
        ("224.0.0.1", "an ACK of 224.0.0.1, which no host can have"),
        ("127.0.0.1", "an ACK of 127.0.0.1, which no host can have"),
        ("240.0.0.1", "an ACK of 240.0.0.1, which no host can have"),
        ("255.255.255.255", "an ACK of 255.255.255.255, which no host can have"),
        ("192.0.2.255", "an ACK of 192.0.2.255, the network or broadcast address of 192.0.2.0/24"),
        ("192.0.2.0", "an ACK of 192.0.2.0, the network or broadcast address of 192.0.2.0/24"),
    ],
)
def test_an_ack_of_an_address_no_container_can_have_is_refused(yiaddr: str, reason: str) -> None:
    with pytest.raises(UnusableAnswer) as refused:
        grant(ack(seconds(Option.LEASE_TIME, 60), yiaddr=yiaddr))
    assert str(refused.value) == reason


def test_an_ack_without_a_lease_time_is_refused() -> None:
    with pytest.raises(UnusableAnswer) as refused:
        grant(ack((Option.SUBNET_MASK, b"\xff\xff\xff\x00")))
    assert str(refused.value) == "an ACK without a lease time (option 51)"


def test_a_slash_31_has_no_network_or_broadcast_address() -> None:
    lease = grant(
        ack(
            seconds(Option.LEASE_TIME, 60),
            (Option.SUBNET_MASK, b"\xff\xff\xff\xfe"),
            yiaddr="198.51.100.0",
        )
    )
    assert lease.address == IPv4Interface("198.51.100.0/31")


def test_an_offer_without_a_server_identifier_cannot_be_requested() -> None:
    with pytest.raises(UnusableAnswer, match="an OFFER without a server identifier"):
        offer_from(offer_frame())
