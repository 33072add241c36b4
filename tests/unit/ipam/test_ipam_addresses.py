"""Parsing and formatting of addresses, subnets and ranges, with the messages users see."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipam.addresses import (
    AddressRange,
    Family,
    address_to_int,
    format_address,
    parse_address,
    parse_range,
    parse_range_list,
    parse_subnet,
)
from ipam.errors import InvalidRequest


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("192.0.2.0/24", "192.0.2.0/24"),
        (" 192.0.2.0/24 ", "192.0.2.0/24"),
        ("198.18.0.0/15", "198.18.0.0/15"),
        ("192.0.2.7/32", "192.0.2.7/32"),
        ("2001:db8::/64", "2001:db8::/64"),
        ("2001:0db8:0000::/48", "2001:db8::/48"),
    ],
)
def test_subnets_parse_to_their_canonical_form(text: str, canonical: str) -> None:
    assert str(parse_subnet(text)) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "192.0.2.5/24",
            "invalid subnet '192.0.2.5/24': host bits set; did you mean 192.0.2.0/24?",
        ),
        (
            "2001:db8::1/64",
            "invalid subnet '2001:db8::1/64': host bits set; did you mean 2001:db8::/64?",
        ),
        ("192.0.2.0", "invalid subnet '192.0.2.0': expected CIDR notation such as 192.0.2.0/24"),
        ("192.0.2.0/33", "invalid subnet '192.0.2.0/33': "),
        ("banana/24", "invalid subnet 'banana/24': "),
    ],
)
def test_bad_subnets_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_subnet(text)
    assert str(caught.value).startswith(message)
    assert caught.value.caller_fault


@pytest.mark.parametrize(
    ("text", "first", "last", "shown"),
    [
        ("192.0.2.64/26", "192.0.2.64", "192.0.2.127", "192.0.2.64/26"),
        ("192.0.2.10-192.0.2.49", "192.0.2.10", "192.0.2.49", "192.0.2.10-192.0.2.49"),
        ("192.0.2.7", "192.0.2.7", "192.0.2.7", "192.0.2.7"),
        ("192.0.2.0-192.0.2.63", "192.0.2.0", "192.0.2.63", "192.0.2.0/26"),
        ("2001:db8::10-2001:db8::1f", "2001:db8::10", "2001:db8::1f", "2001:db8::10/124"),
        ("2001:db8::/120", "2001:db8::", "2001:db8::ff", "2001:db8::/120"),
    ],
)
def test_ranges_accept_cidr_dash_and_single_address(
    text: str, first: str, last: str, shown: str
) -> None:
    r = parse_range(text)
    assert (r.first, r.last) == (parse_address(first)[1], parse_address(last)[1])
    assert str(r) == shown


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "192.0.2.50-192.0.2.10",
            "invalid range '192.0.2.50-192.0.2.10': its start is after its end",
        ),
        (
            "192.0.2.1-2001:db8::1",
            "invalid range '192.0.2.1-2001:db8::1': its ends are of different IP families",
        ),
        ("192.0.2.300", "invalid range '192.0.2.300': not an IPv4 or IPv6 address"),
        ("192.0.2.1/24", "invalid range '192.0.2.1/24': host bits set; did you mean 192.0.2.0/24?"),
        ("fe80::1%eth0", "invalid range 'fe80::1%eth0': a zone index (%...) is not allowed here"),
    ],
)
def test_bad_ranges_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match="^" + re.escape(message)):
        parse_range(text)


def test_range_lists_skip_blanks_and_refuse_empty() -> None:
    assert len(parse_range_list("192.0.2.1, 192.0.2.5-192.0.2.6,", what="x")) == 2
    with pytest.raises(InvalidRequest, match="expected at least one range"):
        parse_range_list(" , ", what="--ipam-opt exclude")


@pytest.mark.parametrize(
    ("subnet", "reserved"),
    [
        ("192.0.2.0/24", ["192.0.2.0", "192.0.2.255"]),
        ("192.0.2.0/30", ["192.0.2.0", "192.0.2.3"]),
        ("192.0.2.0/31", []),  # RFC 3021
        ("192.0.2.7/32", []),
        ("2001:db8::/64", ["2001:db8::"]),  # RFC 4291 Subnet-Router anycast
        ("2001:db8::/127", []),  # RFC 6164
        ("2001:db8::1/128", []),
    ],
)
def test_reserved_addresses_follow_the_rfcs(subnet: str, reserved: list[str]) -> None:
    s = parse_subnet(subnet)
    assert [format_address(s.family, v) for v in s.reserved_addresses()] == reserved
    span = s.usable_span()
    assert span.size == s.size - len(reserved)


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_ipv4_text_round_trips_through_the_fast_parser(value: int) -> None:
    assert address_to_int(Family.V4, format_address(Family.V4, value)) == value


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_ipv6_text_round_trips_through_the_fast_parser(value: int) -> None:
    assert address_to_int(Family.V6, format_address(Family.V6, value)) == value


@given(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=0, max_value=2**12))
def test_range_text_parses_back_to_the_same_range(first: int, length: int) -> None:
    last = min(first + length, 2**32 - 1)
    r = AddressRange(Family.V4, first, last)
    assert parse_range(str(r)) == r
