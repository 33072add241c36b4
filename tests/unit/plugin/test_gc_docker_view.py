"""What `pymacvlan gc` makes of Docker's answers (plugin/admin/docker_view.py): which networks
are this plugin's, and every address in use on their subnets. The answers are shaped as
`GET /networks/ID` writes them (Docker 20.10 to 28); the real engine is tests/e2e's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plugin.admin.docker_view import addresses_in_use, ipam_names
from plugin.admin.engine import PluginInfo
from plugin.admin.locate import Target


def network(
    name: str,
    ipam: str,
    configs: list[dict[str, Any]],
    containers: dict[str, tuple[str, str]] | None = None,
    driver: str = "",
) -> dict[str, Any]:
    return {
        "Name": name,
        "Id": name * 8,
        "Driver": driver or ipam,
        "Scope": "local",
        "IPAM": {"Driver": ipam, "Options": {}, "Config": configs},
        "Containers": {
            f"{cname}-id": {
                "Name": cname,
                "EndpointID": f"{cname}-ep",
                "MacAddress": "02:42:cb:00:71:02",
                "IPv4Address": v4,
                "IPv6Address": v6,
            }
            for cname, (v4, v6) in (containers or {}).items()
        },
    }


NAMES = {"pmv-managed", "pmv-managed:latest"}


def test_addresses_of_this_plugins_networks_with_gateways_and_aux_addresses() -> None:
    lan = network(
        "lan",
        "pmv-managed:latest",
        [
            {
                "Subnet": "203.0.113.0/24",
                "Gateway": "203.0.113.254",
                "AuxiliaryAddresses": {"printer": "203.0.113.5"},
            },
            {"Subnet": "2001:db8::/64", "Gateway": "2001:db8::1"},
        ],
        {"web": ("203.0.113.2/24", "2001:db8::2/64"), "db": ("203.0.113.3/24", "")},
    )
    subnets, ours = addresses_in_use([lan], NAMES)
    assert ours == ["lan"]
    assert subnets == {
        "2001:db8::/64": ["2001:db8::1", "2001:db8::2"],
        "203.0.113.0/24": ["203.0.113.2", "203.0.113.254", "203.0.113.3", "203.0.113.5"],
    }


def test_other_networks_on_our_subnets_count_the_others_do_not() -> None:
    ours = network(
        "lan", "pmv-managed", [{"Subnet": "203.0.113.0/24"}], {"a": ("203.0.113.2/24", "")}
    )
    # Docker's own macvlan and IPAM on the same subnet: its containers use addresses there too.
    sharing = network(
        "builtin",
        "default",
        [{"Subnet": "203.0.113.0/24", "Gateway": "203.0.113.1"}],
        {"b": ("203.0.113.9/24", "")},
        driver="macvlan",
    )
    elsewhere = network(
        "bridge", "default", [{"Subnet": "198.19.240.0/20"}], {"c": ("198.19.240.2/20", "")}
    )
    subnets, names = addresses_in_use([ours, sharing, elsewhere], NAMES)
    assert names == ["lan"]
    assert subnets == {"203.0.113.0/24": ["203.0.113.1", "203.0.113.2", "203.0.113.9"]}


def test_no_network_of_ours_means_no_subnet_at_all() -> None:
    """Another engine (or a wrong --plugin): nothing it says makes anything certain."""
    other = network(
        "lan", "someone-else", [{"Subnet": "203.0.113.0/24"}], {"a": ("203.0.113.2/24", "")}
    )
    assert addresses_in_use([other], NAMES) == ({}, [])


def test_what_docker_writes_oddly_is_read_or_skipped() -> None:
    odd = network(
        "lan",
        "pmv-managed:latest",
        # Host bits in the subnet (canonical form used), a config without a subnet.
        [{"Subnet": "203.0.113.7/24"}, {"Gateway": "198.51.100.1"}],
        {"a": ("203.0.113.2/24", ""), "b": ("not an address", ""), "c": ("198.51.100.9/24", "")},
    )
    odd["Containers"]["x"] = {}
    assert addresses_in_use([odd], NAMES) == ({"203.0.113.0/24": ["203.0.113.2"]}, ["lan"])


def test_the_names_docker_knows_the_plugin_by() -> None:
    managed = Target(
        Path("/run/docker/plugins/abc/pymacvlan.sock"),
        Path("/var/lib/pymacvlan"),
        "managed plugin pmv-managed:latest (enabled)",
        plugin=PluginInfo("abc", "pmv-managed:latest", True, "pymacvlan.sock", None),
    )
    assert ipam_names(managed, "pmv-managed") == {"pmv-managed", "pmv-managed:latest"}
    by_hand = Target(
        Path("/run/docker/plugins/pymacvlan.sock"), Path("/var/lib/pymacvlan"), "socket ..."
    )
    assert ipam_names(by_hand, "pymacvlan") == {"pymacvlan", "pymacvlan:latest"}
    elsewhere = Target(Path("/run/docker/plugins/lan-ipam.sock"), Path("/x"), "socket ...")
    assert ipam_names(elsewhere, "pymacvlan") == {
        "pymacvlan",
        "pymacvlan:latest",
        "lan-ipam",
        "lan-ipam:latest",
    }
