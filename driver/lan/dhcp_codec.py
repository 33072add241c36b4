"""DHCPv4 messages as whole Ethernet frames: build what the client sends, parse what it receives.

Pure: no sockets, no clock, no randomness. The client (driver/lan/dhcp_client.py) sends and
receives raw frames on a packet tap, so this module owns every layer of them: Ethernet II, IPv4
(header checksum), UDP (checksum over the pseudo header), BOOTP (RFC 951/2131) and its options
(RFC 2132: pad, end, a value of at most 255 bytes; RFC 3396: an option that appears several times
is one value, the parts concatenated; RFC 2131 §4.1: option 52 "overload" puts more options in
the ``file`` and then the ``sname`` field).

The rule: parsing is total. Any bytes give a `DhcpFrame` or raise `MalformedFrame` (a
ValueError) with a short reason made of our own words and numbers, never of bytes from the
wire; no other exception escapes. The typed option readers below (``address_option`` ...) hold
the same rule for the values.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from ipaddress import IPv4Address

from driver.lan.frames import ETH_P_IP, ETHERNET_HEADER, internet_checksum

IPPROTO_UDP = 17
CLIENT_PORT = 68
SERVER_PORT = 67
BOOTREQUEST = 1
BOOTREPLY = 2
HTYPE_ETHERNET = 1
FLAG_BROADCAST = 0x8000  # RFC 2131 §2: "please answer by broadcast, I cannot take unicast yet"
MAGIC_COOKIE = b"\x63\x82\x53\x63"  # RFC 2131 §3: 99.130.83.99 opens the options field
BROADCAST_MAC = b"\xff" * 6
UNSPECIFIED = IPv4Address(0)
LIMITED_BROADCAST = IPv4Address("255.255.255.255")

IPV4_HEADER = 20
UDP_HEADER = 8
BOOTP_FIXED = 236  # op .. file, before the magic cookie
SNAME_OFFSET, SNAME_SIZE = 44, 64
FILE_OFFSET, FILE_SIZE = 108, 128
# RFC 1542 §2.1: a BOOTP message is at least 300 bytes; relays and old servers drop shorter ones.
MIN_BOOTP = 300
MAX_CHADDR = 16
MAX_OPTION_VALUE = 255
IP_TTL = 64
IP_MORE_FRAGMENTS = 0x2000
IP_FRAGMENT_OFFSET = 0x1FFF
# op htype hlen hops xid secs flags ciaddr yiaddr siaddr giaddr chaddr (RFC 2131 §2, Figure 1)
_FIXED = struct.Struct("!BBBBIHH4s4s4s4s16s")


class MalformedFrame(ValueError):
    """These bytes are not a DHCP message we can read; the text says why, in bounded words."""


class MessageType(IntEnum):
    """Option 53 (RFC 2132 §9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Option(IntEnum):
    """The options the client sends or reads (RFC 2132)."""

    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    DNS = 6
    HOST_NAME = 12
    REQUESTED_ADDRESS = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETER_LIST = 55
    MESSAGE = 56
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    CLIENT_ID = 61
    END = 255


@dataclass(frozen=True)
class DhcpMessage:
    """One BOOTP/DHCP message. ``options`` holds (code, value) pairs, each code once, in the
    order they came; the ``sname`` and ``file`` fields are not kept (the client uses neither)
    except as option space when option 52 says so."""

    op: int
    xid: int
    chaddr: bytes
    options: tuple[tuple[int, bytes], ...] = ()
    secs: int = 0
    flags: int = 0
    ciaddr: IPv4Address = UNSPECIFIED
    yiaddr: IPv4Address = UNSPECIFIED
    siaddr: IPv4Address = UNSPECIFIED
    giaddr: IPv4Address = UNSPECIFIED
    hops: int = 0
    htype: int = HTYPE_ETHERNET

    def option(self, code: int) -> bytes | None:
        for key, value in self.options:
            if key == code:
                return value
        return None


@dataclass(frozen=True)
class DhcpFrame:
    """A DHCP message with the Ethernet, IPv4 and UDP headers it travels in."""

    eth_dst: bytes
    eth_src: bytes
    ip_src: IPv4Address
    ip_dst: IPv4Address
    message: DhcpMessage
    src_port: int = CLIENT_PORT
    dst_port: int = SERVER_PORT
    # Set by parse_frame: the UDP checksum was zero ("not computed") or not checked.
    checksum_unchecked: bool = field(default=False, compare=False)


# --- building -------------------------------------------------------------------------------


def build_frame(frame: DhcpFrame) -> bytes:
    """The bytes of ``frame`` on the wire; ``ValueError`` for a field that does not fit."""
    if len(frame.eth_dst) != 6 or len(frame.eth_src) != 6:
        raise ValueError("an Ethernet address is 6 bytes")
    payload = build_message(frame.message)
    udp_length = UDP_HEADER + len(payload)
    udp = struct.pack("!HHHH", frame.src_port, frame.dst_port, udp_length, 0) + payload
    checksum = _udp_checksum(frame.ip_src, frame.ip_dst, udp) or 0xFFFF  # 0 means "none"
    udp = udp[:6] + struct.pack("!H", checksum) + udp[8:]
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,  # version 4, header of 5 words
        0,
        IPV4_HEADER + udp_length,
        0,
        0,
        IP_TTL,
        IPPROTO_UDP,
        0,
        frame.ip_src.packed,
        frame.ip_dst.packed,
    )
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return frame.eth_dst + frame.eth_src + struct.pack("!H", ETH_P_IP) + ip + udp


def build_message(message: DhcpMessage) -> bytes:
    if len(message.chaddr) > MAX_CHADDR:
        raise ValueError(f"chaddr is {len(message.chaddr)} bytes; at most {MAX_CHADDR}")
    try:
        fixed = _FIXED.pack(
            message.op,
            message.htype,
            len(message.chaddr),
            message.hops,
            message.xid,
            message.secs,
            message.flags,
            message.ciaddr.packed,
            message.yiaddr.packed,
            message.siaddr.packed,
            message.giaddr.packed,
            message.chaddr,
        )
    except struct.error as exc:  # a number out of its field's range
        raise ValueError(f"a BOOTP field does not fit: {exc}") from None
    body = bytearray(fixed + bytes(SNAME_SIZE + FILE_SIZE) + MAGIC_COOKIE)
    seen: set[int] = set()
    for code, value in message.options:
        if code in (Option.PAD, Option.END, Option.OVERLOAD) or not 0 <= code <= 255:
            raise ValueError(f"option {code} cannot be sent as a value")
        if code in seen:
            raise ValueError(f"option {code} is given twice")
        if len(value) > MAX_OPTION_VALUE:
            raise ValueError(f"option {code} is {len(value)} bytes; at most {MAX_OPTION_VALUE}")
        seen.add(code)
        body += bytes((code, len(value))) + value
    body.append(Option.END)
    if len(body) < MIN_BOOTP:
        body += bytes(MIN_BOOTP - len(body))
    return bytes(body)


_checksum = internet_checksum


def _udp_checksum(src: IPv4Address, dst: IPv4Address, udp: bytes) -> int:
    pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, IPPROTO_UDP, len(udp))
    return _checksum(pseudo + udp)


# --- parsing --------------------------------------------------------------------------------


def parse_frame(data: bytes, *, verify_udp_checksum: bool = True) -> DhcpFrame:
    """The DHCP message in an Ethernet frame, or `MalformedFrame` saying why there is none.

    ``verify_udp_checksum=False`` is for a frame whose UDP checksum the sender's kernel left to
    the hardware and that never crossed a wire (a veth peer on this host: the packet socket
    reports it as "checksum not ready"); the IPv4 header checksum is always checked.
    """
    if len(data) < ETHERNET_HEADER + IPV4_HEADER + UDP_HEADER:
        raise MalformedFrame(f"frame of {len(data)} bytes is too short for IPv4 and UDP")
    (ethertype,) = struct.unpack_from("!H", data, 12)
    if ethertype != ETH_P_IP:
        raise MalformedFrame(f"EtherType 0x{ethertype:04x} is not IPv4")
    ip = data[ETHERNET_HEADER:]
    version, header_words = ip[0] >> 4, ip[0] & 0x0F
    header = header_words * 4
    if version != 4 or header < IPV4_HEADER:
        raise MalformedFrame(f"IP version {version}, header {header} bytes: not IPv4")
    (total, fragment, protocol) = struct.unpack_from("!2xH2xHxB", ip)
    if not header + UDP_HEADER <= total <= len(ip):
        raise MalformedFrame(f"IPv4 total length {total} does not fit the frame")
    if _checksum(ip[:header]) != 0:
        raise MalformedFrame("IPv4 header checksum is wrong")
    if fragment & (IP_MORE_FRAGMENTS | IP_FRAGMENT_OFFSET):
        raise MalformedFrame("an IPv4 fragment")
    if protocol != IPPROTO_UDP:
        raise MalformedFrame(f"IP protocol {protocol} is not UDP")
    ip_src, ip_dst = IPv4Address(ip[12:16]), IPv4Address(ip[16:20])
    udp = ip[header:total]
    src_port, dst_port, udp_length, checksum = struct.unpack_from("!HHHH", udp)
    if not UDP_HEADER <= udp_length <= len(udp):
        raise MalformedFrame(f"UDP length {udp_length} does not fit the IPv4 packet")
    udp = udp[:udp_length]
    checked = verify_udp_checksum and checksum != 0
    if checked and _udp_checksum(ip_src, ip_dst, udp) != 0:
        raise MalformedFrame("UDP checksum is wrong")
    return DhcpFrame(
        eth_dst=data[0:6],
        eth_src=data[6:12],
        ip_src=ip_src,
        ip_dst=ip_dst,
        message=parse_message(udp[UDP_HEADER:]),
        src_port=src_port,
        dst_port=dst_port,
        checksum_unchecked=not checked,
    )


def parse_message(data: bytes) -> DhcpMessage:
    """A BOOTP message with DHCP options, or `MalformedFrame`."""
    if len(data) < BOOTP_FIXED + len(MAGIC_COOKIE):
        raise MalformedFrame(f"BOOTP message of {len(data)} bytes is too short")
    op, htype, hlen, hops, xid, secs, flags = struct.unpack_from("!BBBBIHH", data)
    if hlen > MAX_CHADDR:
        raise MalformedFrame(f"hardware address length {hlen} is over {MAX_CHADDR}")
    if data[BOOTP_FIXED : BOOTP_FIXED + 4] != MAGIC_COOKIE:
        raise MalformedFrame("no DHCP magic cookie: a plain BOOTP message")
    values: dict[int, bytearray] = {}
    _parse_options(data[BOOTP_FIXED + 4 :], values, "options")
    overload = values.get(Option.OVERLOAD)
    if overload is not None:
        if len(overload) != 1 or overload[0] not in (1, 2, 3):
            raise MalformedFrame("option 52 (overload) is not 1, 2 or 3")
        # RFC 2131 §4.1: the options field first, then file, then sname.
        if overload[0] & 1:
            _parse_options(data[FILE_OFFSET : FILE_OFFSET + FILE_SIZE], values, "file")
        if overload[0] & 2:
            _parse_options(data[SNAME_OFFSET : SNAME_OFFSET + SNAME_SIZE], values, "sname")
    return DhcpMessage(
        op=op,
        xid=xid,
        chaddr=data[28 : 28 + hlen],
        options=tuple((code, bytes(value)) for code, value in values.items()),
        secs=secs,
        flags=flags,
        ciaddr=IPv4Address(data[12:16]),
        yiaddr=IPv4Address(data[16:20]),
        siaddr=IPv4Address(data[20:24]),
        giaddr=IPv4Address(data[24:28]),
        hops=hops,
        htype=htype,
    )


def _parse_options(data: bytes, into: dict[int, bytearray], where: str) -> None:
    """Add the options in ``data`` to ``into`` (RFC 3396: a repeated code continues its value).
    A missing END is accepted (the field simply ends); an option cut off by the end is not."""
    i = 0
    while i < len(data):
        code = data[i]
        if code == Option.END:
            return
        if code == Option.PAD:
            i += 1
            continue
        if i + 1 >= len(data):
            raise MalformedFrame(f"option {code} in {where} has no length")
        end = i + 2 + data[i + 1]
        if end > len(data):
            raise MalformedFrame(f"option {code} in {where} runs past the end")
        into.setdefault(code, bytearray()).extend(data[i + 2 : end])
        i = end


# --- typed option values --------------------------------------------------------------------


def message_type(message: DhcpMessage) -> MessageType | None:
    """Option 53; None when absent (a plain BOOTP answer); `MalformedFrame` when unknown."""
    value = message.option(Option.MESSAGE_TYPE)
    if value is None:
        return None
    try:
        if len(value) != 1:
            raise ValueError
        return MessageType(value[0])
    except ValueError:
        raise MalformedFrame("option 53 (message type) is not a known type") from None


def address_option(message: DhcpMessage, code: int) -> IPv4Address | None:
    """An option holding one IPv4 address (50, 54); None when absent."""
    value = message.option(code)
    if value is None:
        return None
    if len(value) != 4:
        raise MalformedFrame(f"option {code} is {len(value)} bytes, not one IPv4 address")
    return IPv4Address(value)


def addresses_option(message: DhcpMessage, code: int) -> tuple[IPv4Address, ...] | None:
    """An option holding a list of IPv4 addresses (3 routers, 6 name servers)."""
    value = message.option(code)
    if value is None:
        return None
    if not value or len(value) % 4:
        raise MalformedFrame(f"option {code} is {len(value)} bytes, not a list of IPv4 addresses")
    return tuple(IPv4Address(value[i : i + 4]) for i in range(0, len(value), 4))


def seconds_option(message: DhcpMessage, code: int) -> int | None:
    """An option holding a 32-bit count of seconds (51, 58, 59)."""
    value = message.option(code)
    if value is None:
        return None
    if len(value) != 4:
        raise MalformedFrame(f"option {code} is {len(value)} bytes, not 32-bit seconds")
    seconds: int = struct.unpack("!I", value)[0]
    return seconds


def prefix_option(message: DhcpMessage) -> int | None:
    """Option 1 (subnet mask) as a prefix length; a mask with holes is refused."""
    value = message.option(Option.SUBNET_MASK)
    if value is None:
        return None
    if len(value) != 4:
        raise MalformedFrame(f"option 1 (subnet mask) is {len(value)} bytes, not 4")
    mask = int.from_bytes(value, "big")
    prefix = bin(mask).count("1")
    if mask != (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF:
        raise MalformedFrame("option 1 (subnet mask) is not a contiguous mask")
    return prefix
