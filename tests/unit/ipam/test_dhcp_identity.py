"""Who asks the LAN's DHCP server for an endpoint (ipam/dhcp/identity.py)."""

from __future__ import annotations

import pytest

from ipam.dhcp.identity import client_id_of, dhcp_identity, host_name, stable_mac


def never(n: int) -> bytes:
    raise AssertionError("no random MAC expected")


def test_the_mac_docker_sent_is_used_as_it_is() -> None:
    identity = dhcp_identity(
        lan="lan1",
        subnet="192.0.2.0/24",
        mac="aa:bb:cc:00:11:22",
        endpoint="web",
        random_bytes=never,
    )
    assert identity.mac == "aa:bb:cc:00:11:22"
    assert identity.client_id == bytes.fromhex("01aabbcc001122")
    assert identity.hostname == "web"


def test_a_named_endpoint_asks_with_the_same_locally_administered_mac_every_time() -> None:
    first = dhcp_identity(
        lan="lan1", subnet="192.0.2.0/24", mac=None, endpoint="web", random_bytes=never
    )
    again = dhcp_identity(
        lan="lan1", subnet="192.0.2.0/24", mac=None, endpoint="web", random_bytes=never
    )
    assert first == again
    octets = bytes.fromhex(first.mac.replace(":", ""))
    assert len(octets) == 6
    assert octets[0] == 0x02
    assert first.client_id == b"\x01" + octets
    # Another name, another subnet or another LAN: another MAC.
    assert stable_mac("lan1", "192.0.2.0/24", "db") != first.mac
    assert stable_mac("lan1", "198.51.100.0/24", "web") != first.mac
    assert stable_mac("lan2", "192.0.2.0/24", "web") != first.mac


def test_an_unnamed_endpoint_without_a_mac_gets_a_fresh_random_one() -> None:
    identity = dhcp_identity(
        lan="lan1",
        subnet="192.0.2.0/24",
        mac=None,
        endpoint=None,
        random_bytes=lambda n: bytes(range(0xA1, 0xA1 + n)),
    )
    assert identity.mac == "02:a1:a2:a3:a4:a5"
    assert identity.client_id == bytes.fromhex("0102a1a2a3a4a5")
    assert identity.hostname is None
    a = dhcp_identity(lan="l", subnet="192.0.2.0/24", mac=None, endpoint=None)
    b = dhcp_identity(lan="l", subnet="192.0.2.0/24", mac=None, endpoint=None)
    assert a.mac != b.mac
    assert a.mac.startswith("02:")


def test_client_id_is_hardware_type_one_and_the_mac() -> None:
    assert client_id_of("02:00:5e:10:00:01") == bytes.fromhex("0102005e100001")


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("web", "web"),
        ("Web-01", "Web-01"),
        ("my_app.1", "my-app-1"),
        ("/web", "web"),
        ("-x-", "x"),
        ("___", None),
        ("", None),
        (None, None),
        ("a" * 80, "a" * 63),
        ("a" * 62 + "_b", "a" * 62),  # the cut never leaves a trailing hyphen
        ("héllo", "h-llo"),
    ],
)
def test_host_name_is_one_valid_label(endpoint: str | None, expected: str | None) -> None:
    assert host_name(endpoint) == expected
