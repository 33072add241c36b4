"""Default pools: the setting's syntax, the per-node ULA, and which subnet comes next."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipam.addresses import Family, Subnet, parse_subnet
from ipam.defaults import (
    DOCKER_DEFAULT_POOLS_V4,
    DefaultPool,
    builtin_default_pools,
    choose_default_subnet,
    format_default_pools,
    parse_default_pools,
    ula_prefix,
)
from ipam.errors import InvalidRequest
from ipam.service import IpamSettings

DOCKER_TEXT = (
    "172.17.0.0/16:16,172.18.0.0/16:16,172.19.0.0/16:16,"
    "172.20.0.0/14:16,172.24.0.0/14:16,172.28.0.0/14:16,192.168.0.0/16:20"
)


def test_dockers_defaults_round_trip_through_the_setting_syntax() -> None:
    assert parse_default_pools(DOCKER_TEXT) == DOCKER_DEFAULT_POOLS_V4
    assert format_default_pools(DOCKER_DEFAULT_POOLS_V4) == DOCKER_TEXT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("192.0.2.0/24", ["192.0.2.0/24:24"]),
        (" 198.18.0.0/15:24 , 2001:db8::/48:64 ", ["198.18.0.0/15:24", "2001:db8::/48:64"]),
        ("2001:db8::/48", ["2001:db8::/48:48"]),
        ("ula", [f"{ula_prefix('hostA')}:64"]),
        ("ula:56", [f"{ula_prefix('hostA')}:56"]),
    ],
)
def test_default_pool_setting_syntax(text: str, expected: list[str]) -> None:
    assert [str(p) for p in parse_default_pools(text, node_name="hostA")] == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "192.0.2.0/24:16",
            "invalid default pool 192.0.2.0/24:16: the size must be between /24 and /32",
        ),
        (
            "192.0.2.0/24:x",
            "invalid default pool '192.0.2.0/24:x': the size after ':' must be a "
            "prefix length such as 24",
        ),
        (
            "192.0.2.1/24:28",
            "invalid default pool '192.0.2.1/24': host bits set; did you mean 192.0.2.0/24?",
        ),
        ("ula", "invalid default pool 'ula': 'ula' needs the node name"),
    ],
)
def test_bad_default_pools_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match="^" + re.escape(message) + "$"):
        parse_default_pools(text)


def test_the_ula_is_a_stable_rfc4193_prefix_per_node() -> None:
    a = ula_prefix("hostA")
    assert a == ula_prefix("hostA")
    assert a != ula_prefix("hostB")
    assert a.prefixlen == 48
    assert a.network >> 120 == 0xFD  # fc00::/7 with the L bit set
    assert builtin_default_pools("hostA")[-1] == DefaultPool(a, 64)


def held(*cidrs: str) -> list[Subnet]:
    return [parse_subnet(c) for c in cidrs]


@pytest.mark.parametrize(
    ("in_use", "prefixlen", "expected"),
    [
        ([], None, "172.17.0.0/16"),
        (["172.17.0.0/16"], None, "172.18.0.0/16"),
        (["172.17.5.0/24"], None, "172.18.0.0/16"),  # overlap, not equality, counts
        (["172.17.0.0/16", "172.18.0.0/16", "172.19.0.0/16"], None, "172.20.0.0/16"),
        (["172.16.0.0/12"], None, "192.168.0.0/20"),
        (["172.16.0.0/12", "192.168.0.0/20", "192.168.32.0/20"], None, "192.168.16.0/20"),
        (["172.16.0.0/12", "192.168.0.0/16"], None, None),
        ([], 24, "172.17.0.0/24"),
        (["172.17.0.0/24"], 24, "172.17.1.0/24"),
        ([], 12, None),  # no base is that big
        (["2001:db8::/32"], None, "172.17.0.0/16"),  # other family does not matter
    ],
)
def test_the_next_default_pool_skips_everything_in_use(
    in_use: list[str], prefixlen: int | None, expected: str | None
) -> None:
    chosen = choose_default_subnet(DOCKER_DEFAULT_POOLS_V4, Family.V4, held(*in_use), prefixlen)
    assert (str(chosen) if chosen else None) == expected


def test_ipv6_default_jumps_over_thousands_of_used_64s() -> None:
    pools = builtin_default_pools("hostA")
    ula = ula_prefix("hostA")
    used = [Subnet(Family.V6, ula.network, 52)]  # the first 4096 /64s, as one subnet
    chosen = choose_default_subnet(pools, Family.V6, used)
    assert chosen == Subnet(Family.V6, ula.network + (4096 << 64), 64)


@given(st.lists(st.tuples(st.integers(0, 63), st.integers(26, 30)), max_size=12))
def test_default_choice_matches_a_naive_scan(used: list[tuple[int, int]]) -> None:
    base = parse_subnet("198.18.0.0/24")
    pools = (DefaultPool(base, 28),)
    in_use = [
        Subnet(Family.V4, (base.network + block * 4) & ~((1 << (32 - plen)) - 1), plen)
        for block, plen in used
    ]
    naive = None
    for candidate in range(base.network, base.last + 1, 16):
        c = Subnet(Family.V4, candidate, 28)
        if not any(c.overlaps(u) for u in in_use):
            naive = c
            break
    assert choose_default_subnet(pools, Family.V4, in_use) == naive


def test_settings_for_a_node_use_dockers_pools_plus_its_ula_unless_told_otherwise() -> None:
    built_in = IpamSettings.for_node("hostA")
    assert built_in.default_pools == builtin_default_pools("hostA")
    assert built_in.quarantine_seconds == 300.0
    custom = IpamSettings.for_node(
        "hostA", default_pools="198.18.0.0/16:24,ula", quarantine_seconds=0
    )
    assert [str(p) for p in custom.default_pools] == [
        "198.18.0.0/16:24",
        f"{ula_prefix('hostA')}:64",
    ]
    with pytest.raises(InvalidRequest, match="node name must not be empty"):
        IpamSettings.for_node(" ")
