"""RequestPool parsing: --subnet, --ip-range, every --ipam-opt, the PoolID, every message."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest

from ipam.errors import InvalidRequest
from ipam.hostranges import StaticPlan
from ipam.options import PoolSpec, build_pool_spec, parse_pool_request


def spec(
    pool: str,
    sub_pool: str = "",
    options: Mapping[str, str] | None = None,
    *,
    v6: bool = False,
    space: str = "local",
) -> PoolSpec:
    request = parse_pool_request(
        address_space=space, pool=pool, sub_pool=sub_pool, options=options or {}, v6=v6
    )
    assert request.subnet is not None
    return build_pool_spec(request, request.subnet)


def refused(message: str) -> pytest.RaisesExc[InvalidRequest]:
    return pytest.raises(InvalidRequest, match="^" + re.escape(message) + "$")


# ------------------------------------------------------------------ pool IDs


@pytest.mark.parametrize(
    ("pool", "sub_pool", "options", "v6", "pool_id"),
    [
        ("192.0.2.0/24", "", {}, False, "local/default/192.0.2.0/24"),
        ("192.0.2.0/24", "192.0.2.128/25", {}, False, "local/default/192.0.2.0/24/192.0.2.128/25"),
        ("192.0.2.0/24", "192.0.2.0/24", {}, False, "local/default/192.0.2.0/24"),
        ("192.0.2.0/24", "", {"lan": "vlan30"}, False, "local/vlan30/192.0.2.0/24"),
        ("2001:db8::/64", "", {}, True, "local/default/2001:db8::/64"),
        # Docker's own keys are ignored, also for the identity.
        (
            "192.0.2.0/24",
            "",
            {"com.docker.network.ipam.serial": "true"},
            False,
            "local/default/192.0.2.0/24",
        ),
        # An option of the other family does not change this family's pool.
        ("192.0.2.0/24", "", {"exclude": "2001:db8::5"}, False, "local/default/192.0.2.0/24"),
    ],
)
def test_pool_ids_are_readable_and_deterministic(
    pool: str, sub_pool: str, options: dict[str, str], v6: bool, pool_id: str
) -> None:
    assert spec(pool, sub_pool, options, v6=v6).pool_id == pool_id


def test_options_add_a_short_hash_of_their_canonical_form() -> None:
    a = spec("192.0.2.0/24", options={"exclude": "192.0.2.5,192.0.2.6", "quarantine": "60"})
    b = spec("192.0.2.0/24", options={"quarantine": "60.0", "exclude": " 192.0.2.5-192.0.2.6 "})
    c = spec("192.0.2.0/24", options={"exclude": "192.0.2.5"})
    assert re.fullmatch(r"local/default/192\.0\.2\.0/24#[0-9a-f]{8}", a.pool_id)
    assert a.pool_id == b.pool_id
    assert a.pool_id != c.pool_id
    assert a.table_key == c.table_key == "local/default/192.0.2.0/24"


def test_global_space_is_a_different_table() -> None:
    assert spec("192.0.2.0/24", space="global").table_key == "global/default/192.0.2.0/24"


# ---------------------------------------------------------- request errors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"address_space": "default"},
            "unknown address space 'default': this plugin's address spaces are \"local\" and "
            '"global"',
        ),
        (
            {"pool": "192.0.2.1/24"},
            "invalid pool '192.0.2.1/24': host bits set; did you mean 192.0.2.0/24?",
        ),
        (
            {"pool": "", "sub_pool": "192.0.2.0/25"},
            "invalid ip-range '192.0.2.0/25': an ip-range needs a subnet (--subnet) to be "
            "inside of",
        ),
        (
            {"pool": "0.0.0.0/0", "sub_pool": "192.0.2.0/25"},
            "invalid ip-range '192.0.2.0/25': an ip-range needs a subnet (--subnet) to be "
            "inside of",
        ),
        (
            {"pool": "2001:db8::/64"},
            "invalid pool '2001:db8::/64': it is IPv6 but Docker asked for an IPv4 pool",
        ),
        (
            {"options": {"rnage.hostA": "192.0.2.0/26", "foo": "1"}},
            "unknown --ipam-opt 'foo', 'rnage.hostA': known options are lan, nodes, "
            "range.<node>, exclude, quarantine, block_size, block_size6, probe, probe_wait, "
            "lan_recheck, dhcp",
        ),
        (
            {"options": {"lan": "a/b"}},
            "invalid --ipam-opt lan='a/b': a LAN name is 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        ),
        (
            {"options": {"range.": "192.0.2.0/26"}},
            "invalid --ipam-opt range.<node>: '' is not a node name (letters, digits, '.', '_', "
            "'-'); name the node as in range.hostA=192.0.2.0/26",
        ),
        (
            {"options": {"range.host A": "192.0.2.0/26"}},
            "invalid --ipam-opt range.<node>: 'host A' is not a node name (letters, digits, '.', "
            "'_', '-'); name the node as in range.hostA=192.0.2.0/26",
        ),
        (
            {"options": {"range.hostA": "192.0.2.9-192.0.2.1"}},
            "invalid --ipam-opt range.hostA '192.0.2.9-192.0.2.1': its start is after its end",
        ),
        (
            {"options": {"nodes": "a,b", "range.a": "192.0.2.0/26"}},
            "--ipam-opt nodes=... cannot be combined with range.<node>=...: write the address "
            "plan one way (nodes= splits the range equally, range.<node>= gives each node its "
            "ranges)",
        ),
        (
            {"options": {"nodes": "a,b,a"}},
            "invalid --ipam-opt nodes='a,b,a': node 'a' is listed twice",
        ),
        (
            {"options": {"nodes": " , "}},
            "invalid --ipam-opt nodes=' , ': expected node names such as nodes=hostA,hostB",
        ),
        (
            {"options": {"quarantine": "-1"}},
            "invalid --ipam-opt quarantine='-1': expected a number of seconds >= 0 (0 turns the "
            "quarantine off)",
        ),
        (
            {"options": {"exclude": ""}},
            "invalid --ipam-opt exclude '': expected at least one range",
        ),
    ],
)
def test_bad_requests_are_refused_with_a_message_that_says_what_to_fix(
    kwargs: dict[str, object], message: str
) -> None:
    call: dict[str, object] = {
        "address_space": "local",
        "pool": "192.0.2.0/24",
        "sub_pool": "",
        "options": {},
        "v6": False,
    }
    call.update(kwargs)
    with refused(message):
        parse_pool_request(**call)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pool", "v6", "prefixlen"),
    [("", False, None), ("0.0.0.0/0", False, None), ("0.0.0.0/24", False, 24), ("::/64", True, 64)],
)
def test_unspecified_pools_ask_for_a_default_pool(
    pool: str, v6: bool, prefixlen: int | None
) -> None:
    request = parse_pool_request(address_space="local", pool=pool, sub_pool="", options={}, v6=v6)
    assert request.subnet is None
    assert request.default_prefixlen == prefixlen


# ------------------------------------------------------- validation vs subnet


@pytest.mark.parametrize(
    ("sub_pool", "options", "message"),
    [
        (
            "198.51.100.0/25",
            {},
            "invalid ip-range 198.51.100.0/25: it is not inside pool 192.0.2.0/24",
        ),
        ("192.0.0.0/16", {}, "invalid ip-range 192.0.0.0/16: it is not inside pool 192.0.2.0/24"),
        (
            "",
            {"range.hostA": "198.51.100.0/26"},
            "invalid --ipam-opt range.hostA: 198.51.100.0/26 is not inside pool 192.0.2.0/24",
        ),
        (
            "192.0.2.128/25",
            {"range.hostA": "192.0.2.64/26"},
            "invalid --ipam-opt range.hostA: 192.0.2.64/26 is not inside the ip-range "
            "192.0.2.128/25 (of pool 192.0.2.0/24)",
        ),
        (
            "",
            {"range.a": "192.0.2.0/26", "range.b": "192.0.2.32-192.0.2.80"},
            'invalid address plan: ranges of nodes "a" (192.0.2.0/26) and "b" '
            "(192.0.2.32-192.0.2.80) overlap",
        ),
        (
            "",
            {"range.a": "192.0.2.1,192.0.2.200", "range.b": "192.0.2.100-192.0.2.250"},
            'invalid address plan: ranges of nodes "b" (192.0.2.100-192.0.2.250) and "a" '
            "(192.0.2.200) overlap",
        ),
        (
            "",
            {"exclude": "192.0.2.5,198.51.100.1"},
            "invalid --ipam-opt exclude: 198.51.100.1 is not inside pool 192.0.2.0/24",
        ),
        (
            "192.0.2.0/30",
            {"nodes": "a,b,c,d,e"},
            "invalid --ipam-opt nodes=a,b,c,d,e: 192.0.2.0/30 has 4 usable addresses, fewer than "
            "the 5 nodes",
        ),
    ],
)
def test_plans_ranges_and_exclusions_must_fit_the_pool(
    sub_pool: str, options: dict[str, str], message: str
) -> None:
    with refused(message):
        spec("192.0.2.0/24", sub_pool, options)


def test_a_node_may_have_several_ranges_and_each_pool_takes_its_own_family() -> None:
    options = {
        "range.hostA": "192.0.2.10-192.0.2.19, 192.0.2.15-192.0.2.29, 2001:db8::100/120",
        "range.host.b.example": "192.0.2.30/31,2001:db8::200/120",
        "exclude": "192.0.2.12,2001:db8::105",
    }
    v4 = spec("192.0.2.0/24", options=options)
    assert v4.plan is not None
    assert [str(r) for r in v4.plan.ranges["hostA"]] == ["192.0.2.10-192.0.2.29"]
    assert [str(r) for r in v4.plan.ranges["host.b.example"]] == ["192.0.2.30/31"]
    assert [str(r) for r in v4.exclude] == ["192.0.2.12"]
    v6 = spec("2001:db8::/64", options=options, v6=True)
    assert v6.plan is not None
    assert [str(r) for r in v6.plan.ranges["hostA"]] == ["2001:db8::100/120"]
    assert [str(r) for r in v6.exclude] == ["2001:db8::105"]


def test_a_plan_of_the_other_family_only_means_no_plan_for_this_family() -> None:
    v4 = spec("192.0.2.0/24", options={"range.hostA": "2001:db8::100/120"})
    assert v4.plan is None


def test_nodes_split_the_subnet_minus_reserved_addresses_in_the_listed_order() -> None:
    s = spec("192.0.2.0/24", options={"nodes": "c,a,b"})
    assert s.plan is not None
    assert {n: [str(r) for r in rs] for n, rs in s.plan.ranges.items()} == {
        "c": ["192.0.2.1-192.0.2.84"],
        "a": ["192.0.2.85-192.0.2.168"],
        "b": ["192.0.2.169-192.0.2.254"],  # 254 = 3 * 84 + 2: the remainder goes to the last
    }


def test_nodes_split_the_ip_range_when_there_is_one() -> None:
    s = spec("192.0.2.0/24", "192.0.2.128/25", {"nodes": "a,b"})
    assert s.plan is not None
    assert [str(r) for r in s.plan.ranges["a"]] == ["192.0.2.128/26"]
    assert [str(r) for r in s.plan.ranges["b"]] == ["192.0.2.192/26"]


@pytest.mark.parametrize(
    ("options", "node", "message"),
    [
        (
            {"range.hostA": "192.0.2.0/26", "range.hostB": "192.0.2.64/26"},
            "hostC",
            'the address plan names nodes "hostA", "hostB" but not this host "hostC": add '
            "--ipam-opt range.hostC=... or set this plugin's node name (PYMACVLAN_NODE_NAME)",
        ),
        (
            {"nodes": "hostA,hostB"},
            "hostC",
            'the address plan names nodes "hostA", "hostB" but not this host "hostC": add hostC '
            "to --ipam-opt nodes=... or set this plugin's node name (PYMACVLAN_NODE_NAME)",
        ),
    ],
)
def test_a_plan_that_leaves_this_host_out_is_refused(
    options: dict[str, str], node: str, message: str
) -> None:
    with refused(message):
        StaticPlan(node).ranges_for(spec("192.0.2.0/24", options=options))


@pytest.mark.parametrize(
    ("sub_pool", "options", "ranges", "description"),
    [
        ("", {}, ["192.0.2.0/24"], ""),
        ("192.0.2.128/25", {}, ["192.0.2.128/25"], "ip-range 192.0.2.128/25"),
        (
            "",
            {"range.hostA": "192.0.2.10-192.0.2.19"},
            ["192.0.2.10-192.0.2.19"],
            'range 192.0.2.10-192.0.2.19 of node "hostA"',
        ),
        (
            "",
            {"range.hostA": "192.0.2.10,192.0.2.20"},
            ["192.0.2.10", "192.0.2.20"],
            'ranges 192.0.2.10, 192.0.2.20 of node "hostA"',
        ),
    ],
)
def test_this_hosts_ranges_come_from_plan_then_ip_range_then_subnet(
    sub_pool: str, options: dict[str, str], ranges: list[str], description: str
) -> None:
    host = StaticPlan("hostA").ranges_for(spec("192.0.2.0/24", sub_pool, options))
    assert [str(r) for r in host.ranges] == ranges
    assert host.description == description
