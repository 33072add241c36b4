"""Ethernet frames the plugin says and hears on the LAN: ARP and IPv6 neighbour discovery.

Pure: bytes in, bytes out, tested byte for byte. What is sent: the ARP probe of RFC 5227 §2.1.1
(sender IP 0.0.0.0, so no neighbour's cache learns anything from it), the duplicate address
detection solicitation of RFC 4862 §5.4.2, and (driver/announce.py) the announcements that follow
an address's hand-out. What is read: who an ARP packet says holds which address, and which MAC a
neighbour advertisement names for its target.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETHERNET_HEADER = 14
IPV6_HEADER = 40
BROADCAST = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
UNSPECIFIED_V4 = ipaddress.IPv4Address(0)
UNSPECIFIED_V6 = ipaddress.IPv6Address(0)

ARP_REQUEST = 1
ARP_REPLY = 2
ARP_HEADER = struct.Struct("!HHBBH")  # hardware type, protocol type, their lengths, operation
ARP_LENGTH = ARP_HEADER.size + 2 * (6 + 4)

ICMPV6 = 58
NEIGHBOUR_SOLICITATION = 135
NEIGHBOUR_ADVERTISEMENT = 136
ND_HOP_LIMIT = 255  # RFC 4861 §7.1.1: anything else may have crossed a router and is dropped
OPTION_SOURCE_LINK_ADDRESS = 1
OPTION_TARGET_LINK_ADDRESS = 2
OPTION_NONCE = 14  # RFC 3971 §5.3.2, used in DAD by RFC 7527 §4.1
NONCE_LENGTH = 6  # the nonce that fills one 8-byte option unit
# RFC 4291 §2.7.1: all nodes of the link, the group unsolicited advertisements and answers to
# duplicate address detection go to (RFC 4861 §7.2.6, §7.2.4).
ALL_NODES = ipaddress.IPv6Address("ff02::1")
# RFC 4291 §2.7.1: a unicast address's solicited-node group is ff02::1:ff00:0/104 + its low 24 bits.
SOLICITED_NODE_PREFIX = int(ipaddress.IPv6Address("ff02::1:ff00:0"))


class ArpPacket(NamedTuple):
    op: int  # ARP_REQUEST or ARP_REPLY (others exist, RARP's among them)
    sender_mac: str
    sender_ip: ipaddress.IPv4Address
    target_ip: ipaddress.IPv4Address


class NeighbourAdvert(NamedTuple):
    target: ipaddress.IPv6Address
    mac: str  # the target link-layer address option's, else the Ethernet source


def multicast_mac(group: ipaddress.IPv6Address) -> bytes:
    """33:33 and the group's low 32 bits (RFC 2464 §7)."""
    return b"\x33\x33" + group.packed[12:]


ALL_NODES_MAC = multicast_mac(ALL_NODES)


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def mac_text(raw: bytes) -> str:
    return ":".join(f"{byte:02x}" for byte in raw)


# -- ARP -----------------------------------------------------------------------------------------


def arp_frame(
    op: int,
    sender_mac: str,
    sender_ip: ipaddress.IPv4Address,
    target_ip: ipaddress.IPv4Address,
    *,
    target_mac: bytes = ZERO_MAC,
    destination: bytes = BROADCAST,
) -> bytes:
    """An Ethernet ARP packet for IPv4 (RFC 826)."""
    sender = mac_bytes(sender_mac)
    ethernet = destination + sender + struct.pack("!H", ETH_P_ARP)
    arp = ARP_HEADER.pack(1, ETH_P_IP, 6, 4, op) + sender + sender_ip.packed
    return ethernet + arp + target_mac + target_ip.packed


def arp_probe(mac: str, address: ipaddress.IPv4Address) -> bytes:
    """ "Who has ``address``?" asked without claiming anything (RFC 5227 §2.1.1): sender IP
    0.0.0.0, target MAC zero, broadcast. A holder answers with a reply to ``mac``."""
    return arp_frame(ARP_REQUEST, mac, UNSPECIFIED_V4, address)


def parse_arp(frame: bytes) -> ArpPacket | None:
    """What an Ethernet ARP frame for IPv4 says; None for anything else (short, another
    protocol, another hardware type)."""
    end = ETHERNET_HEADER + ARP_LENGTH
    if len(frame) < end or frame[12:14] != struct.pack("!H", ETH_P_ARP):
        return None
    htype, ptype, hlen, plen, op = ARP_HEADER.unpack_from(frame, ETHERNET_HEADER)
    if (htype, ptype, hlen, plen) != (1, ETH_P_IP, 6, 4):
        return None
    body = frame[ETHERNET_HEADER + ARP_HEADER.size : end]
    return ArpPacket(
        op=op,
        sender_mac=mac_text(body[0:6]),
        sender_ip=ipaddress.IPv4Address(body[6:10]),
        target_ip=ipaddress.IPv4Address(body[16:20]),
    )


# -- IPv6 neighbour discovery --------------------------------------------------------------------


def solicited_node_group(address: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(SOLICITED_NODE_PREFIX | (int(address) & 0xFFFFFF))


def internet_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\x00"
    words: tuple[int, ...] = struct.unpack(f"!{len(data) // 2}H", data)
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmpv6_checksum(src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address, body: bytes) -> int:
    """The ICMPv6 checksum over the pseudo-header and ``body`` (its checksum field zero)."""
    pseudo = src.packed + dst.packed + struct.pack("!IxxxB", len(body), ICMPV6)
    return internet_checksum(pseudo + body)


def icmpv6_frame(
    source_mac: str,
    destination_mac: bytes,
    src: ipaddress.IPv6Address,
    dst: ipaddress.IPv6Address,
    body: bytes,
) -> bytes:
    """An Ethernet frame with an IPv6 packet carrying the ICMPv6 message ``body`` (checksum field
    zero: it is filled in here), hop limit 255 as neighbour discovery requires."""
    checksum = icmpv6_checksum(src, dst, body)
    body = body[:2] + struct.pack("!H", checksum) + body[4:]
    ipv6 = struct.pack("!IHBB", 6 << 28, len(body), ICMPV6, ND_HOP_LIMIT) + src.packed + dst.packed
    return destination_mac + mac_bytes(source_mac) + struct.pack("!H", ETH_P_IPV6) + ipv6 + body


def dad_solicitation(mac: str, address: ipaddress.IPv6Address, nonce: bytes | None = None) -> bytes:
    """The neighbour solicitation of duplicate address detection (RFC 4862 §5.4.2): from the
    unspecified address (so it carries no source link-layer option, RFC 4861 §4.3) to the
    target's solicited-node group. A holder answers with an advertisement to all nodes.

    ``nonce`` (6 bytes, RFC 7527): lets a receiver tell its own looped-back solicitation apart.
    """
    group = solicited_node_group(address)
    body = struct.pack("!BBHI", NEIGHBOUR_SOLICITATION, 0, 0, 0) + address.packed
    if nonce is not None:
        if len(nonce) != NONCE_LENGTH:
            raise ValueError(f"a DAD nonce is {NONCE_LENGTH} bytes, not {len(nonce)}")
        body += struct.pack("!BB", OPTION_NONCE, 1) + nonce
    return icmpv6_frame(mac, multicast_mac(group), UNSPECIFIED_V6, group, body)


def parse_neighbour_advert(frame: bytes) -> NeighbourAdvert | None:
    """The target of an ICMPv6 neighbour advertisement (no extension headers) and the MAC it
    names: its target link-layer address option, else the frame's Ethernet source. None for
    anything else, and for one whose hop limit is not 255 (it came through a router)."""
    icmp = ETHERNET_HEADER + IPV6_HEADER
    options = icmp + 24  # type, code, checksum, flags, target
    if len(frame) < options or frame[12:14] != struct.pack("!H", ETH_P_IPV6):
        return None
    next_header, hop_limit = frame[ETHERNET_HEADER + 6], frame[ETHERNET_HEADER + 7]
    if next_header != ICMPV6 or hop_limit != ND_HOP_LIMIT:
        return None
    if frame[icmp] != NEIGHBOUR_ADVERTISEMENT or frame[icmp + 1] != 0:
        return None
    target = ipaddress.IPv6Address(frame[icmp + 8 : icmp + 24])
    mac = mac_text(frame[6:12])
    # The options end with the IPv6 payload; an Ethernet frame may carry padding after it.
    (payload,) = struct.unpack_from("!H", frame, ETHERNET_HEADER + 4)
    end = min(len(frame), icmp + payload)
    while options + 2 <= end:
        kind, units = frame[options], frame[options + 1]
        if units == 0:  # RFC 4861 §4.6: a zero length is invalid; the message is dropped
            return None
        if kind == OPTION_TARGET_LINK_ADDRESS and units == 1 and options + 8 <= end:
            mac = mac_text(frame[options + 2 : options + 8])
            break
        options += 8 * units
    return NeighbourAdvert(target=target, mac=mac)
