"""The NetworkDriver protocol over the socket, with an in-memory link layer.

What Docker sends and what the user would see: answers, error texts and the links left on the host.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from driver.names import is_owned
from plugin.services import open_services
from tests.api.conftest import Daemon, PluginClient, StartDaemon
from tests.api.fake_links import FakeLinks

pytestmark = pytest.mark.asyncio

NET = "n" * 64
NET2 = "m" * 64
EP = "e" * 64
EP2 = "f" * 64


def create_body(
    network_id: str = NET,
    internal: bool = False,
    ipv4: list[dict[str, Any]] | None = None,
    ipv6: list[dict[str, Any]] | None = None,
    **opts: Any,
) -> dict[str, Any]:
    return {
        "NetworkID": network_id,
        "Options": {
            "com.docker.network.generic": opts,
            "com.docker.network.enable_ipv6": bool(ipv6),
            "com.docker.network.internal": internal,
        },
        "IPv4Data": ipv4
        if ipv4 is not None
        else [{"AddressSpace": "local", "Pool": "192.0.2.0/24", "Gateway": "192.0.2.1/24"}],
        "IPv6Data": ipv6 or [],
    }


async def create(client: PluginClient, network_id: str = NET, **kw: Any) -> dict[str, Any]:
    return await client.ok("NetworkDriver.CreateNetwork", create_body(network_id, **kw))


async def refused(client: PluginClient, status: int = 400, /, **kw: Any) -> str:
    answer = await client.call("NetworkDriver.CreateNetwork", create_body(**kw))
    assert answer.status == status, answer
    return answer.err


async def endpoint(
    client: PluginClient, ep: str = EP, net: str = NET, address: str = "192.0.2.10/24", **iface: str
) -> dict[str, Any]:
    body = {"NetworkID": net, "EndpointID": ep, "Interface": {"Address": address, **iface}}
    return await client.ok("NetworkDriver.CreateEndpoint", body)


async def join(client: PluginClient, ep: str = EP, net: str = NET) -> dict[str, Any]:
    body = {"NetworkID": net, "EndpointID": ep, "SandboxKey": "/var/run/docker/netns/x"}
    return await client.ok("NetworkDriver.Join", body)


async def test_capabilities_and_gateway_check(d: Daemon) -> None:
    caps = await d.client.ok("NetworkDriver.GetCapabilities")
    assert caps["Scope"] == "local"
    assert caps["GwAllocChecker"] is True
    skip = await d.client.ok("NetworkDriver.GwAllocCheck", {"Options": {}})
    assert skip == {"SkipIPv4": True, "SkipIPv6": True}


async def test_create_join_leave_delete_on_a_plain_parent(d: Daemon, links: FakeLinks) -> None:
    await create(d.client, parent="lab0")
    answer = await endpoint(d.client)
    mac = answer["Interface"]["MacAddress"]
    assert mac.startswith("02:")
    joined = await join(d.client)
    src = joined["InterfaceName"]["SrcName"]
    assert joined["InterfaceName"]["DstPrefix"] == "eth"
    assert joined["Gateway"] == "192.0.2.1"
    assert joined["DisableGatewayService"] is True
    link = links.links[src]
    assert (link.kind, link.parent_name, link.macvlan_mode, link.mac) == (
        "macvlan",
        "lab0",
        "bridge",
        mac,
    )
    await d.client.ok("NetworkDriver.Leave", {"NetworkID": NET, "EndpointID": EP})
    assert src not in links.links
    await d.client.ok("NetworkDriver.DeleteEndpoint", {"NetworkID": NET, "EndpointID": EP})
    await d.client.ok("NetworkDriver.DeleteEndpoint", {"NetworkID": NET, "EndpointID": EP})
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert set(links.links) == {"lab0"}


async def test_mac_is_stable_for_the_same_address_and_never_echoed(d: Daemon) -> None:
    await create(d.client, parent="lab0")
    first = await endpoint(d.client, EP, address="192.0.2.10/24")
    await d.client.ok("NetworkDriver.DeleteEndpoint", {"NetworkID": NET, "EndpointID": EP})
    again = await endpoint(d.client, EP2, address="192.0.2.10/24")
    assert first["Interface"]["MacAddress"] == again["Interface"]["MacAddress"]
    supplied = await endpoint(
        d.client, "g" * 64, address="192.0.2.11/24", MacAddress="02:42:c0:00:02:0b"
    )
    assert supplied.get("Interface") is None


async def test_repeated_requests_get_the_same_answer(d: Daemon) -> None:
    await create(d.client, parent="lab0")
    await create(d.client, parent="lab0")
    first = await endpoint(d.client)
    assert await endpoint(d.client) == first
    err = await refused(d.client, parent="lab0", macvlan_mode="private")
    assert "already exists" in err


async def test_unknown_option_lists_the_known_ones(d: Daemon) -> None:
    err = await refused(d.client, parent="lab0", macvlan_mod="private")
    assert "unknown driver option 'macvlan_mod'" in err
    assert "macvlan_mode" in err
    assert "ipvlan_flag" in err


async def test_docker_own_options_are_accepted(d: Daemon) -> None:
    body = create_body(parent="lab0")
    body["Options"]["com.docker.network.generic"]["com.docker.network.advertise_addr_nmsgs"] = "2"
    await d.client.ok("NetworkDriver.CreateNetwork", body)


@pytest.mark.parametrize(
    ("opts", "needle"),
    [
        ({"parent": "lab0", "macvlan_mode": "fast"}, "macvlan_mode 'fast' is not one of"),
        ({"parent": "lab0", "ipvlan_mode": "l4"}, "ipvlan_mode 'l4' is not one of"),
        ({"parent": "lab0", "type": "macvlan", "ipvlan_mode": "l2"}, "are for ipvlan"),
        ({"parent": "lab0.4095"}, "VLAN id 4095 is out of range"),
        ({"parent": "lab0", "vlan": "0"}, "VLAN id 0 is out of range"),
        ({"parent": "averyveryverylongname"}, "longer than 15 characters"),
        ({"parent": "lab0", "com.docker.network.driver.mtu": "9000"}, "larger than the MTU"),
        ({"parent": "lo"}, "loopback"),
    ],
)
async def test_bad_options_are_refused_with_a_reason(
    d: Daemon, links: FakeLinks, opts: dict[str, str], needle: str
) -> None:
    err = await refused(d.client, **opts)
    assert needle in err
    assert set(links.links) == {"lab0"}


async def test_parent_down_and_wifi_parents(d: Daemon, links: FakeLinks) -> None:
    links.add_nic("eth1", up=False)
    await create(d.client, NET2, parent="eth1")  # down is no refusal: test_parent_changes_api.py
    links.add_nic("wlan0", wireless=True)
    err = await refused(d.client, parent="wlan0")
    assert "Wi-Fi" in err
    assert "ipvlan" in err
    await create(d.client, parent="wlan0", type="ipvlan")


async def test_vlan_parent_is_created_shared_and_removed_with_the_last_network(
    d: Daemon, links: FakeLinks
) -> None:
    await create(d.client, NET, parent="lab0.10")
    vlan = links.links["lab0.10"]
    assert (vlan.kind, vlan.vlan_id, vlan.parent_name, vlan.up) == ("vlan", 10, "lab0", True)
    assert is_owned(vlan.alias)
    await create(d.client, NET2, parent="lab0.10", ipv4=[{"Pool": "198.51.100.0/24"}])
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert "lab0.10" in links.links
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET2})
    assert "lab0.10" not in links.links


async def test_explicit_vlan_option_for_long_parent_names(d: Daemon, links: FakeLinks) -> None:
    links.add_nic("enp0s31f6u1u2")
    await create(d.client, parent="enp0s31f6u1u2", vlan="4000")
    (vlan,) = [link for link in links.links.values() if link.kind == "vlan"]
    assert vlan.vlan_id == 4000
    assert vlan.parent_name == "enp0s31f6u1u2"
    assert len(vlan.name) <= 15


async def test_a_user_made_vlan_link_is_left_alone(d: Daemon, links: FakeLinks) -> None:
    links.add_nic("lab0.20", kind="vlan")
    await create(d.client, parent="lab0.20")
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert links.links["lab0.20"].alias is None


async def test_kernel_without_8021q_gets_a_clear_error_and_nothing_left(
    start_daemon: StartDaemon,
) -> None:
    fake = FakeLinks(kinds=("macvlan",))
    fake.add_nic("lab0")
    d = await start_daemon(functools.partial(open_services, links=fake))
    answer = await d.client.call("NetworkDriver.CreateNetwork", create_body(parent="lab0.10"))
    assert answer.status == 500
    assert "no vlan" in answer.err
    assert set(fake.links) == {"lab0"}


async def test_passthru_is_exclusive_both_ways(d: Daemon) -> None:
    await create(d.client, NET, parent="lab0", macvlan_mode="passthru")
    err = await refused(d.client, 500, network_id=NET2, parent="lab0")
    assert "passthru" in err
    assert NET[:12] in err
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    await create(d.client, NET2, parent="lab0")
    err = await refused(d.client, 500, network_id=NET, parent="lab0", macvlan_mode="passthru")
    assert "passthru" in err
    assert NET2[:12] in err


async def test_macvlan_and_ipvlan_on_one_parent_are_refused(d: Daemon) -> None:
    await create(d.client, NET, parent="lab0")
    err = await refused(d.client, 500, network_id=NET2, parent="lab0", type="ipvlan")
    assert "macvlan and ipvlan cannot share a parent" in err


async def test_ipvlan_networks_on_one_parent_need_the_same_mode(d: Daemon) -> None:
    await create(d.client, NET, parent="lab0", ipvlan_mode="l2")
    err = await refused(d.client, 500, network_id=NET2, parent="lab0", ipvlan_mode="l3")
    assert "same ipvlan_mode and ipvlan_flag" in err
    await create(
        d.client, NET2, parent="lab0", ipvlan_mode="l2", ipv4=[{"Pool": "198.51.100.0/24"}]
    )


async def test_ipvlan_l3_joins_with_connected_default_routes(d: Daemon) -> None:
    await create(
        d.client,
        parent="lab0",
        ipvlan_mode="l3",
        ipv6=[{"Pool": "2001:db8::/64"}],
    )
    await endpoint(d.client, AddressIPv6="2001:db8::10/64")
    joined = await join(d.client)
    assert joined["Gateway"] == ""
    assert {(r["Destination"], r["RouteType"]) for r in joined["StaticRoutes"]} == {
        ("0.0.0.0/0", 1),
        ("::/0", 1),
    }


async def test_internal_network_has_no_gateway(d: Daemon) -> None:
    await create(d.client, parent="lab0", internal=True)
    await endpoint(d.client)
    assert (await join(d.client))["Gateway"] == ""


async def test_no_parent_means_an_owned_dummy_and_no_gateway(d: Daemon, links: FakeLinks) -> None:
    await create(d.client)
    dummy = links.links[f"dm-{NET[:12]}"]
    assert dummy.kind == "dummy"
    assert is_owned(dummy.alias)
    await endpoint(d.client)
    assert (await join(d.client))["Gateway"] == ""
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert f"dm-{NET[:12]}" not in links.links


async def test_calls_for_unknown_networks_say_so(d: Daemon) -> None:
    answer = await d.client.call(
        "NetworkDriver.CreateEndpoint",
        {"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": "192.0.2.3/24"}},
    )
    assert answer.status == 500
    assert f"network {NET[:12]} is unknown to pymacvlan" in answer.err


async def test_failed_store_write_leaves_no_link(
    d: Daemon, links: FakeLinks, monkeypatch: pytest.MonkeyPatch
) -> None:
    from driver.store import SqliteDriverStore, StoreError

    def broken(*_: object) -> None:
        raise StoreError("cannot write the driver state: disk full")

    monkeypatch.setattr(SqliteDriverStore, "put_network", broken)
    answer = await d.client.call("NetworkDriver.CreateNetwork", create_body(parent="lab0.10"))
    assert answer.status == 500
    assert "disk full" in answer.err
    assert set(links.links) == {"lab0"}


async def test_everything_survives_a_plugin_restart(
    start_daemon: StartDaemon, links: FakeLinks
) -> None:
    factory = functools.partial(open_services, links=links)
    d = await start_daemon(factory)
    await create(d.client, parent="lab0.10")
    await endpoint(d.client)
    d = await start_daemon(factory)
    joined = await join(d.client)
    assert joined["Gateway"] == "192.0.2.1"
    links.take_into_container(joined["InterfaceName"]["SrcName"])
    await d.client.ok("NetworkDriver.Leave", {"NetworkID": NET, "EndpointID": EP})
    await d.client.ok("NetworkDriver.DeleteEndpoint", {"NetworkID": NET, "EndpointID": EP})
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert set(links.links) == {"lab0"}


async def test_owned_vlan_link_that_vanished_is_recreated_at_start(
    start_daemon: StartDaemon, links: FakeLinks
) -> None:
    factory = functools.partial(open_services, links=links)
    d = await start_daemon(factory)
    await create(d.client, parent="lab0.10")
    del links.links["lab0.10"]  # a reboot drops VLAN links
    d = await start_daemon(factory)
    await d.client.ok("Plugin.Activate")
    await d.client.ok("NetworkDriver.GetCapabilities")
    await endpoint(d.client)  # waits for the state load, which recreates the link
    assert links.links["lab0.10"].vlan_id == 10


def shim_body(network_id: str, pool: str, host: str, **opts: Any) -> dict[str, Any]:
    prefix = pool.split("/")[1]
    return create_body(
        network_id,
        ipv4=[{"Pool": pool, "AuxAddresses": {"myhost": f"{host}/{prefix}"}}],
        parent="lab0",
        host_address="myhost",
        **opts,
    )


async def test_host_shim_carries_the_host_address_and_routes_to_containers(
    d: Daemon, links: FakeLinks
) -> None:
    await d.client.ok("NetworkDriver.CreateNetwork", shim_body(NET, "192.0.2.0/24", "192.0.2.2"))
    (shim,) = [name for name in links.links if name.startswith("pmvh-")]
    assert links.links[shim].kind == "macvlan"
    assert links.links[shim].up
    assert [str(a) for a in links.addresses[shim]] == ["192.0.2.2/32"]
    await endpoint(d.client, address="192.0.2.10/24")
    await join(d.client)
    assert ("192.0.2.10/32", shim) in links.routes
    await d.client.ok("NetworkDriver.Leave", {"NetworkID": NET, "EndpointID": EP})
    assert ("192.0.2.10/32", shim) not in links.routes
    # A second network on the parent shares the shim with its own host address.
    await d.client.ok(
        "NetworkDriver.CreateNetwork", shim_body(NET2, "198.51.100.0/24", "198.51.100.2")
    )
    assert sorted(str(a) for a in links.addresses[shim]) == ["192.0.2.2/32", "198.51.100.2/32"]
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert [str(a) for a in links.addresses[shim]] == ["198.51.100.2/32"]
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET2})
    assert set(links.links) == {"lab0"}


async def test_host_shim_is_refused_where_it_could_not_work(d: Daemon) -> None:
    private = shim_body(NET, "192.0.2.0/24", "192.0.2.2", macvlan_mode="private")
    answer = await d.client.call("NetworkDriver.CreateNetwork", private)
    assert answer.status == 400
    assert "macvlan_mode bridge or vepa" in answer.err
    not_aux = create_body(parent="lab0", host_address="192.0.2.9")
    answer = await d.client.call("NetworkDriver.CreateNetwork", not_aux)
    assert answer.status == 400
    assert "must name an --aux-address" in answer.err


async def test_host_shim_and_routes_come_back_after_a_restart(
    start_daemon: StartDaemon, links: FakeLinks
) -> None:
    factory = functools.partial(open_services, links=links)
    d = await start_daemon(factory)
    await d.client.ok("NetworkDriver.CreateNetwork", shim_body(NET, "192.0.2.0/24", "192.0.2.2"))
    await endpoint(d.client, address="192.0.2.10/24")
    joined = await join(d.client)
    links.take_into_container(joined["InterfaceName"]["SrcName"])
    (shim,) = [name for name in links.links if name.startswith("pmvh-")]
    await links.delete_link(shim)  # a reboot
    d = await start_daemon(factory)
    await d.client.ok("NetworkDriver.EndpointOperInfo", {"NetworkID": NET, "EndpointID": EP})
    assert shim in links.links
    assert [str(a) for a in links.addresses[shim]] == ["192.0.2.2/32"]
    assert ("192.0.2.10/32", shim) in links.routes


async def test_host_address_at_node_picks_this_hosts_aux_address(
    d: Daemon, links: FakeLinks
) -> None:
    # One command for every host: each host's shim takes the aux address named after it.
    aux = {"node1": "192.0.2.3/24", "node2": "192.0.2.4/24"}
    body = create_body(
        ipv4=[{"Pool": "192.0.2.0/24", "AuxAddresses": aux}], parent="lab0", host_address="@node"
    )
    await d.client.ok("NetworkDriver.CreateNetwork", body)
    (shim,) = [name for name in links.links if name.startswith("pmvh-")]
    assert [str(a) for a in links.addresses[shim]] == ["192.0.2.3/32"]
