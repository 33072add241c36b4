"""Option parsing for CreateNetwork: Docker's built-in spellings, precise refusals."""

from __future__ import annotations

from typing import Any

import pytest

from driver.config import NetworkConfig, Parent, PoolData, parse_network
from driver.errors import InvalidOption

NET = "0123456789abcdef" * 4


def parse(
    ipv4: tuple[PoolData, ...] = (PoolData("192.0.2.0/24"),), /, **opts: Any
) -> NetworkConfig:
    return parse_network(NET, {"com.docker.network.generic": opts}, ipv4, node_name="node1")


@pytest.mark.parametrize(
    ("opts", "kind", "parent", "mode"),
    [
        ({"parent": "eth1"}, "macvlan", Parent("eth1"), "macvlan bridge"),
        ({"parent": "eth1", "macvlan_mode": "vepa"}, "macvlan", Parent("eth1"), "macvlan vepa"),
        ({"parent": "eth1", "type": "ipvlan"}, "ipvlan", Parent("eth1"), "ipvlan l2/bridge"),
        ({"parent": "eth1", "ipvlan_mode": "l3"}, "ipvlan", Parent("eth1"), "ipvlan l3/bridge"),
        (
            {"parent": "eth1", "ipvlan_flag": "private"},
            "ipvlan",
            Parent("eth1"),
            "ipvlan l2/private",
        ),
        ({"parent": "eth1.10"}, "macvlan", Parent("eth1.10", "eth1", 10), "macvlan bridge"),
        ({"parent": "br.lan"}, "macvlan", Parent("br.lan"), "macvlan bridge"),
        (
            {"parent": "eth1", "vlan": "4094"},
            "macvlan",
            Parent("eth1.4094", "eth1", 4094),
            "macvlan bridge",
        ),
        ({}, "macvlan", Parent(f"dm-{NET[:12]}", dummy=True), "macvlan bridge"),
    ],
)
def test_valid_options(opts: dict[str, str], kind: str, parent: Parent, mode: str) -> None:
    config = parse(**opts)
    assert (config.kind, config.parent, config.mode) == (kind, parent, mode)


def test_no_parent_means_internal() -> None:
    assert parse().internal
    assert not parse(parent="eth1").internal


def test_long_parent_with_vlan_option_gets_a_short_stable_name() -> None:
    first = parse(parent="enp0s31f6u1u2", vlan="4000").parent
    assert first.vlan_base == "enp0s31f6u1u2"
    assert first.vlan_id == 4000
    assert len(first.name) <= 15
    assert first == parse(parent="enp0s31f6u1u2", vlan="4000").parent


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (
            {"parent": "eth1", "macvlan_mod": "x"},
            "unknown driver option 'macvlan_mod'; pymacvlan knows",
        ),
        ({"parent": "eth1", "type": "vxlan"}, "type 'vxlan' is not one of macvlan, ipvlan"),
        ({"parent": "eth1", "macvlan_mode": "fast"}, "macvlan_mode 'fast' is not one of"),
        ({"parent": "eth1", "ipvlan_flag": "open"}, "ipvlan_flag 'open' is not one of"),
        ({"parent": "eth1", "type": "macvlan", "ipvlan_mode": "l3"}, "are for ipvlan networks"),
        ({"parent": "eth1", "type": "ipvlan", "macvlan_mode": "private"}, "is for macvlan"),
        ({"parent": "eth1.0"}, "VLAN id 0 is out of range"),
        ({"parent": "eth1.4095"}, "VLAN id 4095 is out of range"),
        ({"parent": "eth1", "vlan": "ten"}, "VLAN id 'ten' is not a number"),
        ({"parent": "eth1.10", "vlan": "20"}, "already names a VLAN"),
        ({"vlan": "10"}, "option vlan needs a parent"),
        ({"parent": "lo"}, "loopback"),
        ({"parent": "a" * 16}, "longer than 15 characters"),
        ({"parent": "eth/1"}, "character '/'"),
        ({"parent": "eth1", "com.docker.network.driver.mtu": "67"}, "out of range 68-65535"),
        ({"parent": "eth1", "com.docker.network.driver.mtu": "big"}, "is not a number"),
        ({"parent": "eth1", "host_address": "h"}, "must name an --aux-address"),
        ({"host_address": "h"}, "host_address needs a parent"),
    ],
)
def test_invalid_options_say_what_is_wrong(opts: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        parse(**opts)


def test_docker_own_options_pass_through_unknown_ones_do_not() -> None:
    parse(parent="eth1", **{"com.docker.network.advertise_addr_nmsgs": "1"})
    with pytest.raises(InvalidOption, match="unknown driver options 'a', 'b'"):
        parse(parent="eth1", a="1", b="2")


def test_non_string_option_values_are_refused() -> None:
    with pytest.raises(InvalidOption, match="must have a string value"):
        parse_network(NET, {"com.docker.network.generic": {"parent": 5}})


def test_ipam_data_becomes_subnets_with_gateway_and_aux() -> None:
    config = parse(
        (PoolData("192.0.2.0/24", "192.0.2.1/24", {"h": "192.0.2.2/24"}),),
        parent="eth1",
        host_address="h",
    )
    (subnet,) = config.ipv4
    assert str(subnet.pool) == "192.0.2.0/24"
    assert str(subnet.gateway) == "192.0.2.1"
    assert config.host_address == "h"


def test_host_address_at_node_resolves_to_this_nodes_aux_name() -> None:
    pools = (PoolData("192.0.2.0/24", aux_addresses={"node1": "192.0.2.3/24"}),)
    assert parse(pools, parent="eth1", host_address="@node").host_address == "node1"
    with pytest.raises(InvalidOption, match="node1"):
        parse((PoolData("192.0.2.0/24"),), parent="eth1", host_address="@node")


def test_host_address_is_refused_in_modes_that_isolate_siblings() -> None:
    pools = (PoolData("192.0.2.0/24", aux_addresses={"h": "192.0.2.3/24"}),)
    for opts in (
        {"macvlan_mode": "private"},
        {"macvlan_mode": "passthru"},
        {"ipvlan_flag": "private"},
    ):
        with pytest.raises(InvalidOption, match="shim link could not reach"):
            parse(pools, parent="eth1", host_address="h", **opts)


def test_a_pool_of_the_wrong_family_is_refused() -> None:
    with pytest.raises(InvalidOption, match="is not an IPv4 pool"):
        parse((PoolData("2001:db8::/64"),), parent="eth1")
