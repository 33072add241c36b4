"""What the driver accepts from a request, table by table: interface names, IDs, numbers, MAC
addresses and Docker's IPAM data, each in one canonical ASCII form; and every refusal short."""

from __future__ import annotations

from typing import Any

import pytest

from driver.config import PoolData, parse_network
from driver.errors import InvalidOption, shown
from driver.ids import check_id
from driver.linkinfo import check_link_name, normalize_mac

NET = "0123456789abcdef" * 4
HUGE = "x" * 900_000


def parse(ipv4: tuple[PoolData, ...] = (PoolData("192.0.2.0/24"),), /, **opts: Any) -> Any:
    return parse_network(NET, {"com.docker.network.generic": opts}, ipv4)


def refusal(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(InvalidOption) as caught:
        call(*args, **kwargs)
    return str(caught.value)


@pytest.mark.parametrize(
    "name",
    ["eth0", "lab0.10", "enp0s31f6u1u2", "a", "x" * 15, "br-lan", "v4000_x", "...", "a..", "ethé"],
)
def test_names_the_kernel_allows(name: str) -> None:
    check_link_name(name)


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("", "empty"),
        (".", "'.' or '..'"),
        ("..", "'.' or '..'"),
        ("x" * 16, "longer than 15"),
        ("eth/0", "'/'"),
        ("eth:0", "':'"),
        ("eth 0", "' '"),
        ("eth\t0", "'\\t'"),
        ("eth0\x00x", "'\\x00'"),
        ("eth\x1b0", "'\\x1b'"),
        ("eth\x7f", "'\\x7f'"),
        ("eth\xa00", "'\\xa0'"),
        ("ethà", "U+00E0) is not allowed: its UTF-8 bytes include 0xA0"),  # C3 A0
        ("eth\u0660", "U+0660"),  # ARABIC-INDIC DIGIT ZERO: D9 A0
        ("eth\u200b0", "U+200B"),  # a zero-width space: eth0 to the eye
        ("eth\u2028", "U+2028"),
        ("ééééééé.10", "longer than 15"),  # 17 bytes
        ("eth%d", "'%'"),
    ],
)
def test_names_the_kernel_refuses_or_would_misread(name: str, needle: str) -> None:
    message = refusal(check_link_name, name)
    assert needle in message


def test_a_huge_name_is_not_echoed() -> None:
    assert len(refusal(check_link_name, HUGE)) < 200


@pytest.mark.parametrize("ident", ["ep1", "net1", "a" * 64, "0" * 128, "A-b_c.d", "."])
def test_ids_docker_or_our_tests_send(ident: str) -> None:
    check_id("EndpointID", ident)


@pytest.mark.parametrize(
    ("ident", "needle"),
    [
        ("", "empty"),
        ("a" * 129, "at most 128"),
        ("ab/c", "'/' (U+002F) at position 3"),
        ("ab\x00", "'\\x00' (U+0000) at position 3"),
        ("é", "'é' (U+00E9) at position 1"),
        ("a%b", "'%'"),
        ("a+b", "'+'"),
        (HUGE + "/", "at most 128"),
    ],
)
def test_ids_no_link_could_be_named_after(ident: str, needle: str) -> None:
    message = refusal(check_id, "EndpointID", ident)
    assert needle in message
    assert message.startswith("EndpointID")
    assert len(message) < 300


@pytest.mark.parametrize(
    ("opts", "needle"),
    [
        ({"com.docker.network.driver.mtu": "1_500"}, "MTU"),
        ({"com.docker.network.driver.mtu": "+1500"}, "MTU"),
        ({"com.docker.network.driver.mtu": "01500"}, "MTU"),
        ({"com.docker.network.driver.mtu": "\u0661\u0665\u0660\u0660"}, "MTU"),  # Arabic-Indic
        ({"com.docker.network.driver.mtu": "1500.0"}, "MTU"),
        ({"parent": "eth1", "vlan": "\u0661\u0660"}, "VLAN id"),
        ({"parent": "eth1", "vlan": "1_0"}, "VLAN id"),
        ({"parent": "eth1", "vlan": "+10"}, "VLAN id"),
        ({"parent": "eth1", "vlan": "010"}, "VLAN id"),
        ({"parent": "eth1", "vlan": "10 0"}, "VLAN id"),
        ({"parent": "eth1.\u0661\u0660"}, "U+0660"),
        ({"parent": "éééééé", "vlan": "10"}, None),  # a VLAN link with a short name of its own
        ({"parent": "eth1.1_0"}, None),  # not a VLAN suffix: a plain parent name
    ],
)
def test_numbers_are_plain_ascii_decimals(opts: dict[str, str], needle: str | None) -> None:
    if needle is None:
        config = parse(**opts)
        assert not config.parent.is_vlan or len(config.parent.name.encode()) <= 15
        return
    assert needle in refusal(parse, **opts)


@pytest.mark.parametrize(
    "opts",
    [
        {"parent": "eth1", "vlan": "9" * 5000},
        {"parent": "eth1." + "9" * 5000},  # refused as a name: 15 bytes at most
        {"com.docker.network.driver.mtu": "9" * 5000},
        {"com.docker.network.driver.mtu": "9" * 19},
    ],
)
def test_long_numbers_are_out_of_range_not_a_crash(opts: dict[str, str]) -> None:
    message = refusal(parse, **opts)
    assert "out of range" in message or "longer than 15" in message
    assert len(message) < 300


def test_numbers_that_are_fine() -> None:
    assert parse(**{"com.docker.network.driver.mtu": "1500"}).mtu == 1500
    assert parse(**{"com.docker.network.driver.mtu": " 1400 "}).mtu == 1400  # options are stripped
    assert parse(parent="eth1", vlan="10").parent.vlan_id == 10
    # vconfig's RAW_PLUS_VID names (eth1.0010) are names users have: the suffix is the VLAN id.
    assert parse(parent="eth1.0010").parent.vlan_id == 10


@pytest.mark.parametrize(
    ("mac", "normal"),
    [
        ("02:42:c0:00:02:0a", "02:42:c0:00:02:0a"),
        ("02:42:C0:00:02:0A", "02:42:c0:00:02:0a"),
        ("02-42-C0-00-02-0A", "02:42:c0:00:02:0a"),
    ],
)
def test_macs_in_their_usual_forms(mac: str, normal: str) -> None:
    assert normalize_mac(mac) == normal


@pytest.mark.parametrize(
    "mac",
    [
        "٠٢:42:c0:00:02:0a",  # Arabic-Indic digits: int(..., 16) takes them
        "+2:42:c0:00:02:0a",
        " 2:42:c0:00:02:0a",
        "02:42:c0:00:02:0a ",
        "02:42-c0:00:02:0a",  # mixed separators
        "2:42:c0:0:2:a",
        "0242.c000.020a",
        "02:42:c0:00:02",
        "02:42:c0:00:02:0a:00",
        "",
    ],
)
def test_macs_in_any_other_form_are_refused(mac: str) -> None:
    assert "MAC address" in refusal(normalize_mac, mac)


def test_a_huge_mac_is_not_echoed() -> None:
    assert len(refusal(normalize_mac, HUGE)) < 200


@pytest.mark.parametrize(
    "data",
    [
        PoolData("2001:db8::%eth0/64"),
        PoolData("2001:db8::/64", gateway="2001:db8::1%eth0/64"),
        PoolData("2001:db8::/64", aux_addresses={"h": "2001:db8::2%1/64"}),
        PoolData("192.0.2.0/255.255.255.0"),
        PoolData("192.0.2.0/024"),
        PoolData("192.0.2.0/٢٤"),
        PoolData("192.0.2.0/+24"),
        PoolData(" 192.0.2.0/24"),
    ],
)
def test_ipam_data_with_zone_indexes_or_odd_spellings_is_refused(data: PoolData) -> None:
    v6 = "2001" in data.pool
    message = refusal(parse_network, NET, {}, () if v6 else (data,), (data,) if v6 else ())
    assert "IPAM data" in message


def test_ipam_data_in_docker_s_spelling() -> None:
    data = PoolData("2001:db8::/64", gateway="2001:db8::1/64", aux_addresses={"h": "2001:db8::2"})
    config = parse_network(NET, {}, (), (data,))
    assert str(config.ipv6[0].gateway) == "2001:db8::1"


@pytest.mark.parametrize(
    "opts",
    [
        {"parent": HUGE},
        {"parent": "eth1", "vlan": HUGE},
        {"parent": "eth1", "com.docker.network.driver.mtu": HUGE},
        {"parent": "eth1", "macvlan_mode": HUGE},
        {"parent": "eth1", "type": HUGE},
        {"parent": "eth1", HUGE: "1"},
        {"parent": "eth1", **{f"{HUGE}{i}": "1" for i in range(20)}},
        {"parent": "eth1", "host_address": HUGE},
    ],
)
def test_refusals_of_huge_options_are_short(opts: dict[str, str]) -> None:
    assert len(refusal(parse, **opts)) < 600


def test_refusals_of_huge_ipam_data_are_short() -> None:
    for data in (
        PoolData(HUGE),
        PoolData("192.0.2.0/24", gateway=HUGE),
        PoolData("192.0.2.0/24", aux_addresses={"h": HUGE}),
        PoolData("192.0.2.0/" + "2" * 5000),
    ):
        assert len(refusal(parse_network, NET, {}, (data,))) < 400
    # Aux address names are Docker's to choose; a refusal that lists them lists a few, cut.
    aux = {f"{HUGE}{i}": f"192.0.2.{i}" for i in range(2, 40)}
    options = {"com.docker.network.generic": {"parent": "eth1", "host_address": "h"}}
    data = PoolData("192.0.2.0/24", aux_addresses=aux)
    assert len(refusal(parse_network, NET, options, (data,))) < 600


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("eth0", "'eth0'"),
        ("a\x00b", "'a\\x00b'"),
        ("x" * 64, repr("x" * 64)),
    ],
)
def test_shown_values_are_quoted_and_escaped(value: str, expected: str) -> None:
    assert shown(value) == expected


def test_shown_values_are_cut_with_their_length() -> None:
    text = shown("y" * 900_000)
    assert len(text) < 100
    assert "900000 characters" in text
