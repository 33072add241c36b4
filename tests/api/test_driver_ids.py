"""IDs and interface names at the door, and links that belong to one endpoint only.

Docker's network and endpoint IDs are 64 lowercase hex digits; links are named after them
(``pmv`` + 12 characters, ``dm-`` + 12). An ID that makes a name the kernel cannot have must be
refused when it arrives, and a record written before that rule must still be deletable. Two
endpoints whose IDs share their first 12 characters must each keep their own link.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from driver.config import NetworkConfig, Parent
from driver.names import is_owned, owned_alias
from driver.records import EndpointRecord, OwnedLink
from driver.store import open_store
from plugin.services import ServicesFactory
from plugin.state_files import StateFiles
from tests.api.conftest import Daemon, StartDaemon
from tests.api.fake_links import FakeLinks
from tests.api.test_driver_api import EP, NET, NET2, create, create_body, endpoint, join

pytestmark = pytest.mark.asyncio

# Two endpoints as Docker could name them: 64 hex digits, the first 12 the same.
EP_A = "c0ffee000000" + "a" * 52
EP_B = "c0ffee000000" + "b" * 52


def ids(ep: str, net: str = NET) -> dict[str, str]:
    return {"NetworkID": net, "EndpointID": ep}


@pytest.mark.parametrize(
    ("endpoint_id", "needle"),
    [
        ("ab/cd" + "0" * 59, "'/'"),
        ("ab:cd" + "0" * 59, "':'"),
        ("ab cd" + "0" * 59, "' '"),
        ("ab\x00cd" + "0" * 59, "'\\x00'"),
        ("ab\ncd" + "0" * 59, "'\\n'"),
        ("é" * 64, "'é'"),  # pmv + 12 x 2 bytes: 27 bytes, no interface name
        ("\u0660" * 64, "U+0660"),  # Arabic-Indic zero: a digit to str.isdigit(), not to Docker
        ("a" * 129, "at most 128"),
    ],
)
async def test_create_endpoint_refuses_ids_no_link_can_be_named_after(
    d: Daemon, links: FakeLinks, endpoint_id: str, needle: str
) -> None:
    await create(d.client, parent="lab0")
    body = {"NetworkID": NET, "EndpointID": endpoint_id, "Interface": {"Address": "192.0.2.9/24"}}
    answer = await d.client.call("NetworkDriver.CreateEndpoint", body)
    assert answer.status == 400, answer
    assert "EndpointID" in answer.err
    assert needle in answer.err
    assert len(answer.err) < 400
    # Nothing was recorded: the network goes without a word.
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert set(links.links) == {"lab0"}


@pytest.mark.parametrize(
    ("network_id", "needle"),
    [
        ("ne/t" + "0" * 60, "'/'"),
        ("ne\x00t" + "0" * 60, "'\\x00'"),
        ("ü" * 64, "'ü'"),
        ("n" * 129, "at most 128"),
    ],
)
async def test_create_network_refuses_ids_no_dummy_parent_can_be_named_after(
    d: Daemon, links: FakeLinks, network_id: str, needle: str
) -> None:
    answer = await d.client.call("NetworkDriver.CreateNetwork", create_body(network_id))
    assert answer.status == 400, answer
    assert "NetworkID" in answer.err
    assert needle in answer.err
    assert set(links.links) == {"lab0"}


async def test_short_and_docker_ids_are_accepted(d: Daemon, links: FakeLinks) -> None:
    for net, ep in (("net1", "ep1"), ("Net_2.x-y", "Ep_2.x-y"), ("f" * 128, "0" * 128)):
        await create(d.client, net, ipv4=[{"Pool": "192.0.2.0/24"}])
        await endpoint(d.client, ep, net)
        await join(d.client, ep, net)
        await d.client.ok("NetworkDriver.Leave", {"NetworkID": net, "EndpointID": ep})
        await d.client.ok("NetworkDriver.DeleteEndpoint", {"NetworkID": net, "EndpointID": ep})
        await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": net})
    assert set(links.links) == {"lab0"}


def with_options(opts: dict[str, str], network_id: str = NET) -> dict[str, Any]:
    """A CreateNetwork body with exactly these ``-o`` options."""
    body = create_body(network_id)
    body["Options"]["com.docker.network.generic"] = opts
    return body


def write_endpoints(state_dir: Path, *records: EndpointRecord) -> None:
    """What an older pymacvlan stored for endpoint IDs it did not check."""
    store = open_store(state_dir, StateFiles())
    try:
        for record in records:
            store.put_endpoint(record)
    finally:
        store.close()


@pytest.mark.parametrize(
    "endpoint_id",
    ["ab/cd" + "0" * 59, "ab cd:" + "0" * 58, "ab\x00cd" + "0" * 59, "é" * 64],
)
async def test_a_stored_endpoint_whose_link_name_is_invalid_can_still_be_deleted(
    start_daemon: StartDaemon,
    factory: ServicesFactory,
    links: FakeLinks,
    endpoint_id: str,
) -> None:
    d = await start_daemon(factory)
    await d.client.ok("IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "192.0.2.0/24"})
    await create(d.client, NET2, parent="lab0", ipv4=[])
    other = "zz" + endpoint_id[2:]  # a second one, left for DeleteNetwork to forget
    write_endpoints(
        d.settings.state_dir,
        EndpointRecord(endpoint_id, NET2, "pmv" + endpoint_id[:12]),
        EndpointRecord(other, NET2, "pmv" + other[:12]),
    )
    d = await start_daemon(factory)  # the restart reads what an older version stored
    answer = await d.client.call("NetworkDriver.Join", {**ids(endpoint_id, NET2), "Options": {}})
    assert answer.status == 400
    assert "remove the container" in answer.err
    await d.client.ok("NetworkDriver.Leave", ids(endpoint_id, NET2))
    await d.client.ok("NetworkDriver.DeleteEndpoint", ids(endpoint_id, NET2))
    answer = await d.client.call("NetworkDriver.EndpointOperInfo", ids(endpoint_id, NET2))
    assert "unknown to pymacvlan" in answer.err  # forgotten
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET2})
    d = await start_daemon(factory)
    answer = await d.client.call("NetworkDriver.EndpointOperInfo", ids(other, NET2))
    assert "unknown to pymacvlan" in answer.err
    await create(d.client, NET2, parent="lab0")  # the ID is free again
    assert set(links.links) == {"lab0"}


async def test_stored_networks_with_names_no_link_can_have_can_still_be_deleted(
    start_daemon: StartDaemon, factory: ServicesFactory, links: FakeLinks
) -> None:
    # An older version took a NUL byte in a parent name and in a network ID (the kernel named
    # the dummy parent after the part before the NUL).
    d = await start_daemon(factory)
    await d.client.ok("IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "192.0.2.0/24"})
    nul_id = "ne\x00t" + "0" * 60
    dummy = "dm-" + nul_id[:12]
    links.add_nic("dm-ne", alias=owned_alias("dummy", "dm-ne"), kind="dummy")
    store = open_store(d.settings.state_dir, StateFiles())
    try:
        store.put_network(NetworkConfig(NET, "macvlan", Parent("lab0\x00x")))
        store.put_network(
            NetworkConfig(nul_id, "macvlan", Parent(dummy, dummy=True), internal=True),
            (OwnedLink(dummy, "dummy", owned_alias("dummy", dummy)),),
        )
    finally:
        store.close()
    d = await start_daemon(factory)  # the load forgets the dummy it cannot look up
    await endpoint(d.client)
    answer = await d.client.call("NetworkDriver.Join", {**ids(EP), "Options": {}})
    assert answer.status == 400
    assert "interface name 'lab0\\x00x' is not valid" in answer.err
    await d.client.ok("NetworkDriver.DeleteEndpoint", ids(EP))
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": nul_id})
    assert "lab0" in links.links


async def test_a_parent_with_a_nul_byte_cannot_slip_past_the_sharing_check(d: Daemon) -> None:
    await create(d.client, NET, parent="lab0")
    answer = await d.client.call(
        "NetworkDriver.CreateNetwork",
        create_body(
            NET2, ipv4=[{"Pool": "198.51.100.0/24"}], parent="lab0\x00x", macvlan_mode="passthru"
        ),
    )
    assert answer.status == 400, answer
    assert "parent" in answer.err
    assert "'\\x00'" in answer.err


@pytest.mark.parametrize(
    ("parent", "needle"),
    [
        ("lab0\x00x", "'\\x00'"),
        ("lab\x010", "'\\x01'"),
        ("lab\x7f0", "'\\x7f'"),
        ("lab\u00a00", "'\\xa0'"),  # the kernel's isspace() includes 0xA0
        ("lab0\u2028", "'\\u2028'"),
        ("làb0", "'à'"),  # UTF-8 C3 A0: the kernel's isspace() takes 0xA0
        ("lab%d", "'%'"),  # the kernel reads '%' as a name template
        ("lab/0", "'/'"),
        ("..", "'.' or '..'"),
        ("lab0" * 4, "longer than 15"),
    ],
)
async def test_parent_names_the_kernel_does_not_allow_are_refused(
    d: Daemon, links: FakeLinks, parent: str, needle: str
) -> None:
    for vlan in ("", "10"):
        opts = {"parent": parent, "vlan": vlan} if vlan else {"parent": parent}
        answer = await d.client.call("NetworkDriver.CreateNetwork", with_options(opts))
        assert answer.status == 400, (opts, answer)
        assert needle in answer.err, answer.err
    assert set(links.links) == {"lab0"}


# -- endpoints whose IDs share the first 12 characters -------------------------------------------


async def test_endpoints_sharing_an_id_prefix_each_keep_their_own_link(
    d: Daemon, links: FakeLinks
) -> None:
    await create(d.client, parent="lab0")
    await endpoint(d.client, EP_A, address="192.0.2.10/24")
    await endpoint(d.client, EP_B, address="192.0.2.11/24")
    src_a = (await join(d.client, EP_A))["InterfaceName"]["SrcName"]
    src_b = (await join(d.client, EP_B))["InterfaceName"]["SrcName"]
    assert src_a != src_b
    assert {src_a, src_b} <= set(links.links)  # Join B did not take A's link
    assert links.links[src_a].alias == owned_alias("endpoint", EP_A)
    assert links.links[src_b].alias == owned_alias("endpoint", EP_B)
    await d.client.ok("NetworkDriver.Leave", ids(EP_A))
    assert src_a not in links.links
    assert src_b in links.links  # Leave A left B's link alone
    await d.client.ok("NetworkDriver.DeleteEndpoint", ids(EP_A))
    assert src_b in links.links
    await d.client.ok("NetworkDriver.Leave", ids(EP_B))
    await d.client.ok("NetworkDriver.DeleteEndpoint", ids(EP_B))
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert set(links.links) == {"lab0"}


async def test_each_endpoint_keeps_its_link_name_across_restarts_and_repeats(
    start_daemon: StartDaemon, factory: ServicesFactory, links: FakeLinks
) -> None:
    d = await start_daemon(factory)
    await create(d.client, parent="lab0")
    await endpoint(d.client, EP_A, address="192.0.2.10/24")
    await endpoint(d.client, EP_B, address="192.0.2.11/24")
    src_a = (await join(d.client, EP_A))["InterfaceName"]["SrcName"]
    src_b = (await join(d.client, EP_B))["InterfaceName"]["SrcName"]
    d = await start_daemon(factory)  # the start-up sweep keeps both: each is its record's
    assert {src_a, src_b} <= set(links.links)
    await d.client.ok("NetworkDriver.DeleteEndpoint", ids(EP_A))
    # CreateEndpoint repeated for B now that A's name is free: the same answer, the same name.
    await endpoint(d.client, EP_B, address="192.0.2.11/24")
    assert (await join(d.client, EP_B))["InterfaceName"]["SrcName"] == src_b
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert set(links.links) == {"lab0"}


async def test_a_link_under_our_name_that_another_endpoint_owns_is_not_deleted(
    d: Daemon, links: FakeLinks
) -> None:
    await create(d.client, parent="lab0")
    await endpoint(d.client, EP_A, address="192.0.2.10/24")
    src_a = (await join(d.client, EP_A))["InterfaceName"]["SrcName"]
    # Someone else's link of the same kind sits where B's would go after A's is taken away.
    links.take_into_container(src_a)
    links.add_nic(src_a, alias=owned_alias("endpoint", EP_B), kind="macvlan")
    await d.client.ok("NetworkDriver.Leave", ids(EP_A))
    await d.client.ok("NetworkDriver.DeleteEndpoint", ids(EP_A))
    assert links.links[src_a].alias == owned_alias("endpoint", EP_B)
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert src_a in links.links


async def test_links_made_by_the_previous_version_are_still_deleted_by_their_endpoint(
    d: Daemon, links: FakeLinks
) -> None:
    await create(d.client, parent="lab0")
    await endpoint(d.client, EP_A, address="192.0.2.10/24")
    src_a = (await join(d.client, EP_A))["InterfaceName"]["SrcName"]
    # The alias the previous version gave an endpoint link: 12 characters of the ID.
    _with_alias(links, src_a, owned_alias("endpoint", EP_A[:12]))
    await d.client.ok("NetworkDriver.Leave", ids(EP_A))
    assert src_a not in links.links


async def test_start_up_sweep_removes_only_links_no_record_owns(
    start_daemon: StartDaemon, factory: ServicesFactory, links: FakeLinks
) -> None:
    d = await start_daemon(factory)
    await create(d.client, parent="lab0")
    await endpoint(d.client, EP_A, address="192.0.2.10/24")
    src_a = (await join(d.client, EP_A))["InterfaceName"]["SrcName"]
    # An endpoint link of ours, recorded under that name for A, but made for an endpoint that
    # is gone; and one under a name no record has.
    _with_alias(links, src_a, owned_alias("endpoint", "d" * 64))
    links.add_nic("pmvdddddddddddd", alias=owned_alias("endpoint", "d" * 64), kind="macvlan")
    links.add_nic("pmvuser", alias="my own", kind="macvlan")
    d = await start_daemon(factory)
    await d.client.ok("NetworkDriver.EndpointOperInfo", ids(EP_A))  # after the load
    assert src_a not in links.links
    assert "pmvdddddddddddd" not in links.links
    assert "pmvuser" in links.links
    assert not is_owned(links.links["pmvuser"].alias)


def _with_alias(links: FakeLinks, name: str, alias: str) -> None:
    links.links[name] = replace(links.links[name], alias=alias)
