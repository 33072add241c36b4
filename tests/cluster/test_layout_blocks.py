"""Unit tests (no etcd): the key layout and block carving of cluster mode."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipam.addresses import Family, Subnet, parse_subnet
from ipam.cluster.blocks import (
    block_count,
    claim_compares,
    free_blocks,
    grid_blocks_touched,
    start_index,
    taken_set,
)
from ipam.cluster.kv import Absent
from ipam.cluster.layout import Layout, Scope, describe_block, padded, prefix_end, unpadded
from ipam.errors import InvalidRequest
from ipam.options import PoolSpec, build_pool_spec, parse_pool_request

V4 = Scope("local", "default", Family.V4)
V6 = Scope("local", "default", Family.V6)
LAYOUT = Layout("/pymacvlan")


def net(text: str) -> Subnet:
    return parse_subnet(text)


# ------------------------------------------------------------------- layout


def test_block_keys_read_as_documented() -> None:
    assert (
        LAYOUT.block_key(V4, net("198.18.0.64/26"))
        == "/pymacvlan/v1/blocks/local/default/ipv4/198.018.000.064/26"
    )
    assert (
        LAYOUT.block_key(V6, net("2001:db8::40/122"))
        == "/pymacvlan/v1/blocks/local/default/ipv6/2001:0db8:0000:0000:0000:0000:0000:0040/122"
    )
    assert LAYOUT.node_key("node1") == "/pymacvlan/v1/nodes/node1"
    assert Layout("/a/b/").blocks_prefix == "/a/b/v1/blocks/"


@pytest.mark.parametrize("text", ["198.18.0.64/26", "192.0.2.7/32", "2001:db8::40/122", "::/32"])
def test_block_keys_round_trip(text: str) -> None:
    block = net(text)
    scope = V4 if block.family is Family.V4 else V6
    assert LAYOUT.parse_block_key(LAYOUT.block_key(scope, block)) == (scope, block)


@pytest.mark.parametrize(
    "key",
    [
        "/pymacvlan/v1/nodes/node1",
        "/pymacvlan/v1/blocks/local/default/ipv4/198.18.0.64/26",  # not padded
        "/pymacvlan/v1/blocks/local/default/ipv4/198.018.000.065/26",  # host bits set
        "/pymacvlan/v1/blocks/local/default/ipv5/198.018.000.064/26",
        "/pymacvlan/v1/blocks/local/default/ipv4/198.018.000.064/33",
        "/other/v1/blocks/local/default/ipv4/198.018.000.064/26",
    ],
)
def test_foreign_keys_are_ignored_not_misread(key: str) -> None:
    assert LAYOUT.parse_block_key(key) is None


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_padded_ipv4_sorts_like_the_numbers(a: int, b: int) -> None:
    assert (padded(Family.V4, a) < padded(Family.V4, b)) == (a < b)
    assert unpadded(Family.V4, padded(Family.V4, a)) == a


@given(st.integers(0, 2**128 - 1), st.integers(0, 2**128 - 1))
def test_padded_ipv6_sorts_like_the_numbers(a: int, b: int) -> None:
    assert (padded(Family.V6, a) < padded(Family.V6, b)) == (a < b)
    assert unpadded(Family.V6, padded(Family.V6, a)) == a


def test_key_ranges() -> None:
    assert prefix_end("/p/") == "/p0"
    start, end = LAYOUT.starting_within(V4, net("198.18.0.64/26").first, net("198.18.0.64/26").last)
    base = "/pymacvlan/v1/blocks/local/default/ipv4/"
    assert (start, end) == (base + "198.018.000.064", base + "198.018.000.128")
    # The last block of the address space has no "next address": the range runs to the end.
    top = net("255.255.255.192/26")
    assert LAYOUT.starting_within(V4, top.first, top.last)[1] == prefix_end(base)
    low, high = LAYOUT.starting_at_or_before(V4, net("198.18.0.70/32").first)
    assert low == base
    assert LAYOUT.block_key(V4, net("198.18.0.70/32")) < high
    assert LAYOUT.block_key(V4, net("198.18.0.71/32")) > high


def test_describe_block_drops_the_single_address_length() -> None:
    assert describe_block(net("198.18.0.7/32")) == "198.18.0.7"
    assert describe_block(net("198.18.0.0/26")) == "198.18.0.0/26"


# ----------------------------------------------------------------- carving


def test_free_blocks_start_at_the_hint_and_wrap() -> None:
    span = net("198.18.0.0/24")
    blocks = [str(b) for b in free_blocks(span, 26, taken_set([]), start=2)]
    assert blocks == ["198.18.0.128/26", "198.18.0.192/26", "198.18.0.0/26", "198.18.0.64/26"]


def test_free_blocks_skip_claimed_blocks_of_any_size() -> None:
    span = net("198.18.0.0/24")
    taken = taken_set([net("198.18.0.0/25"), net("198.18.0.200/32")])
    assert [str(b) for b in free_blocks(span, 26, taken, start=0)] == ["198.18.0.128/26"]
    # Smaller blocks fit around a single address.
    smaller = [str(b) for b in free_blocks(span, 29, taken, start=0)]
    assert "198.18.0.200/29" not in smaller
    assert smaller[0] == "198.18.0.128/29"
    assert len(smaller) == 16 - 1


def test_free_blocks_jump_runs_in_a_huge_ipv6_span() -> None:
    span = net("2001:db8::/64")
    taken = taken_set([net("2001:db8::/70")])  # 2**52 /122 blocks claimed in one run
    first = next(free_blocks(span, 122, taken, start=0))
    assert str(first) == "2001:db8:0:0:400::/122"


def test_start_index_is_stable_and_spreads_nodes() -> None:
    count = block_count(net("198.18.0.0/16"), 26)
    assert count == 1024
    assert start_index("node1", count) == start_index("node1", count)
    starts = {start_index(f"node{i}", count) for i in range(20)}
    assert len(starts) > 15


def test_claim_compares_cover_the_block_and_every_enclosing_block() -> None:
    block = net("198.18.0.64/26")
    compares = claim_compares(LAYOUT, V4, block)
    base = "/pymacvlan/v1/blocks/local/default/ipv4/"
    assert compares[0] == Absent(base + "198.018.000.064", base + "198.018.000.128")
    singles = {c.key for c in compares[1:]}
    # /8 ... /25: those starting at .64 are inside the range compare; the others are listed.
    assert base + "198.018.000.000/25" in singles
    assert base + "198.000.000.000/8" in singles
    assert base + "198.018.000.064/25" not in singles  # not aligned: no such block
    assert all(c.range_end == "" for c in compares[1:])
    assert len(compares) == 1 + sum(1 for p in range(8, 26) if block.first % (1 << (32 - p)))
    six = claim_compares(LAYOUT, V6, net("2001:db8::7/128"))
    assert len(six) <= 128  # etcd's default limit of compares per transaction


def test_grid_blocks_touched_counts_each_grid_block_once() -> None:
    subnet = net("198.18.0.0/24")
    blocks = [net("198.18.0.0/26"), net("198.18.0.65/32"), net("198.18.0.70/32"), net("10.0.0.0/8")]
    assert grid_blocks_touched(subnet, 26, blocks) == 2
    assert grid_blocks_touched(subnet, 26, [net("198.18.0.0/24")]) == 4


# ----------------------------------------------------------------- options


def spec(subnet: str, sub_pool: str = "", **options: str) -> PoolSpec:
    request = parse_pool_request(
        address_space="local", pool=subnet, sub_pool=sub_pool, options=options, v6=":" in subnet
    )
    assert request.subnet is not None
    return build_pool_spec(request, request.subnet)


def test_block_size_defaults_like_calico_and_shrinks_to_a_small_span() -> None:
    assert spec("198.18.0.0/16").block_prefixlen == 26
    assert spec("2001:db8::/64").block_prefixlen == 122
    assert spec("198.18.0.0/16", "198.18.4.0/28").block_prefixlen == 28
    assert spec("198.18.0.0/16", block_size="24").block_prefixlen == 24
    assert spec("2001:db8::/64", block_size6="/120").block_prefixlen == 120


def test_block_size_is_part_of_the_pool_identity_only_when_given() -> None:
    assert spec("198.18.0.0/16").pool_id == "local/default/198.18.0.0/16"
    assert spec("198.18.0.0/16", block_size="24").pool_id.startswith("local/default/198.18.0.0/16#")
    # The IPv4 option does not change the IPv6 pool of the same network.
    assert spec("2001:db8::/64", block_size="24").pool_id == "local/default/2001:db8::/64"


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        (
            ("198.18.0.0/16",),
            {"block_size": "x"},
            "invalid --ipam-opt block_size='x': expected an IPv4 prefix length such as 26 "
            "(blocks of 64 addresses)",
        ),
        (
            ("198.18.0.0/16",),
            {"block_size": "120"},
            "invalid --ipam-opt block_size=120: an IPv4 block size is a prefix length from 8 to "
            "32 (block_size6= sets the IPv6 blocks)",
        ),
        (
            ("198.18.0.0/16",),
            {"block_size": "15"},
            "invalid --ipam-opt block_size=15: a /15 block does not fit in pool 198.18.0.0/16; "
            "blocks are carved from it, so use /16 or longer",
        ),
        (
            ("198.18.0.0/16", "198.18.4.0/24"),
            {"block_size": "23"},
            "invalid --ipam-opt block_size=23: a /23 block does not fit in the ip-range "
            "198.18.4.0/24; blocks are carved from it, so use /24 or longer",
        ),
        (
            ("198.18.0.0/16",),
            {"block_size": "26", "nodes": "a,b"},
            "--ipam-opt block_size= cannot be combined with an address plan (nodes= or "
            "range.<node>=): with a plan each host has its own ranges and claims no blocks",
        ),
        (
            ("2001:db8::/64",),
            {"block_size6": "16"},
            "invalid --ipam-opt block_size6=16: an IPv6 block size is a prefix length from 32 "
            "to 128",
        ),
    ],
)
def test_bad_block_sizes_are_refused(
    args: tuple[str, ...], options: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        spec(*args, **options)
    assert str(caught.value) == message
