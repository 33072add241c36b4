"""Link names, stable MACs and the announcement frames, byte for byte."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given
from hypothesis import strategies as st

from driver import announce
from driver.ids import MAX_ID_LENGTH, check_id
from driver.lan import frames
from driver.linkinfo import check_link_name, normalize_mac
from driver.mac import stable_mac
from driver.names import (
    dummy_link_name,
    endpoint_alias,
    endpoint_link_name,
    is_endpoint_link_of,
    is_owned,
    owned_alias,
    shim_link_name,
    vlan_link_name,
)

IDS = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.",
    min_size=1,
    max_size=MAX_ID_LENGTH,
)


@given(IDS, st.sets(st.text(min_size=1, max_size=15), max_size=3), st.text(min_size=1))
def test_every_name_made_from_an_accepted_id_is_a_valid_interface_name(
    ident: str, taken: set[str], parent: str
) -> None:
    check_id("EndpointID", ident)
    for name in (endpoint_link_name(ident, taken), dummy_link_name(ident), shim_link_name(parent)):
        check_link_name(name)  # the kernel's rules, bytes counted
    assert endpoint_link_name(ident, taken) not in taken


def test_an_endpoint_whose_natural_name_is_taken_gets_one_of_its_own() -> None:
    a, b = "c0ffee000000" + "a" * 52, "c0ffee000000" + "b" * 52
    assert endpoint_link_name(a) == endpoint_link_name(b) == "pmvc0ffee000000"
    other = endpoint_link_name(b, {"pmvc0ffee000000"})
    assert other.startswith("pmv")
    assert other != "pmvc0ffee000000"
    assert other == endpoint_link_name(b, {"pmvc0ffee000000"})  # stable
    assert endpoint_link_name(b, {"pmvc0ffee000000", other}) not in {"pmvc0ffee000000", other}


def test_an_endpoint_link_belongs_to_the_endpoint_its_alias_names() -> None:
    a, b = "c0ffee000000" + "a" * 52, "c0ffee000000" + "b" * 52
    assert endpoint_alias(a) == f"pymacvlan:endpoint:{a}"
    assert is_endpoint_link_of(endpoint_alias(a), a)
    assert not is_endpoint_link_of(endpoint_alias(a), b)
    assert is_endpoint_link_of("pymacvlan:endpoint:c0ffee000000", a)  # made by 0.1
    assert not is_endpoint_link_of(None, a)
    assert not is_endpoint_link_of("pymacvlan:vlan:" + a, a)
    long_id = "x" * 300  # stored by a version that took any ID: still an alias that fits
    assert len(endpoint_alias(long_id)) <= 255
    assert is_endpoint_link_of(endpoint_alias(long_id), long_id)


@given(
    st.text(alphabet="abcdefghijklmnop0123456789é", min_size=1, max_size=15).filter(
        lambda base: len(base.encode()) <= 15
    ),
    st.integers(1, 4094),
)
def test_vlan_names_are_natural_when_they_fit_and_short_otherwise(base: str, vid: int) -> None:
    name = vlan_link_name(base, vid)
    check_link_name(name)  # 15 bytes at most, which is what the kernel counts
    if len(f"{base}.{vid}".encode()) <= 15:
        assert name == f"{base}.{vid}"


def test_ownership_aliases() -> None:
    alias = owned_alias("vlan", "eth1.10")
    assert alias == "pymacvlan:vlan:eth1.10"
    assert is_owned(alias)
    assert is_owned(alias, "vlan")
    assert not is_owned(alias, "dummy")
    assert not is_owned("my own vlan")
    assert not is_owned(None)


def test_stable_mac_is_local_unicast_and_depends_on_network_and_address() -> None:
    mac = stable_mac("n1", "192.0.2.10")
    first = int(mac[:2], 16)
    assert first & 0x02  # locally administered
    assert not first & 0x01  # unicast
    assert mac == stable_mac("n1", "192.0.2.10")
    assert mac != stable_mac("n2", "192.0.2.10")
    assert mac != stable_mac("n1", "192.0.2.11")
    assert normalize_mac(mac.upper().replace(":", "-")) == mac


def test_gratuitous_arp_frame() -> None:
    frame = announce.gratuitous_arp("02:42:c0:00:02:0a", ipaddress.IPv4Address("192.0.2.10"))
    src = bytes.fromhex("0242c000020a")
    assert frame[:6] == b"\xff" * 6
    assert frame[6:12] == src
    assert frame[12:14] == b"\x08\x06"
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 1)
    assert frame[22:28] == src
    assert frame[28:32] == frame[38:42] == bytes([192, 0, 2, 10])  # sender IP = target IP


def test_unsolicited_na_frame_and_its_checksum() -> None:
    address = ipaddress.IPv6Address("2001:db8::10")
    frame = announce.unsolicited_na("02:42:c0:00:02:0a", address)
    assert frame[:6] == bytes.fromhex("333300000001")
    assert frame[12:14] == b"\x86\xdd"
    ipv6 = frame[14:54]
    assert ipv6[6] == 58  # next header ICMPv6
    assert ipv6[7] == 255  # hop limit, or receivers drop it
    assert ipv6[8:24] == address.packed
    body = frame[54:]
    assert body[0] == 136  # Neighbor Advertisement
    assert struct.unpack("!I", body[4:8])[0] == 0x20000000  # Override
    assert body[8:24] == address.packed
    assert body[24:26] == b"\x02\x01"
    # A correct checksum makes the sum over pseudo-header and message come out as zero.
    pseudo = address.packed + frames.ALL_NODES.packed + struct.pack("!IxxxB", len(body), 58)
    data = pseudo + body
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    assert total == 0xFFFF


def test_link_local_v6_is_not_announced() -> None:
    frames = announce.frames(
        "02:00:00:00:00:01",
        [ipaddress.IPv4Address("192.0.2.1"), ipaddress.IPv6Address("fe80::1")],
    )
    assert len(frames) == 1
