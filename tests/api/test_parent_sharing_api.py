"""The parent-sharing rule where a user meets it: CreateNetwork, and Join when the parent changed.

The fake link layer, like the real one, creates what it is asked to: the rule is the driver's
(driver/sharing.py), checked when a network is created and again before Join makes a link.
"""

from __future__ import annotations

import functools

import pytest

from plugin.services import open_services
from tests.api.conftest import Daemon, StartDaemon
from tests.api.fake_links import FakeLinks
from tests.api.test_driver_api import EP, EP2, NET, NET2, create, endpoint, join, refused

pytestmark = pytest.mark.asyncio

POOL2 = "198.51.100.0/24"


async def test_a_foreign_ipvlan_link_with_another_flag_refuses_the_network(
    d: Daemon, links: FakeLinks
) -> None:
    await links.create_ipvlan("iv0", "lab0", "l2", "private")  # made by hand: no alias of ours
    err = await refused(d.client, 500, parent="lab0", ipvlan_mode="l2", ipvlan_flag="bridge")
    assert err == (
        f"network {NET[:12]} (ipvlan l2/bridge) cannot use parent lab0: it already has link iv0 "
        "(ipvlan l2/private, not made by pymacvlan); ipvlan users of one parent must have the "
        "same ipvlan_mode and ipvlan_flag (the kernel keeps one per parent and would switch the "
        "others to the new one)"
    )
    await create(d.client, parent="lab0", ipvlan_mode="l2", ipvlan_flag="private")


async def test_join_refuses_a_parent_that_took_a_link_in_another_mode_since(
    d: Daemon, links: FakeLinks
) -> None:
    await create(d.client, parent="lab0", ipvlan_mode="l2")
    await endpoint(d.client)
    await links.create_ipvlan("iv0", "lab0", "l3", "bridge")
    answer = await d.client.call(
        "NetworkDriver.Join", {"NetworkID": NET, "EndpointID": EP, "SandboxKey": "/x"}
    )
    assert answer.status == 500
    assert answer.err == (
        f"network {NET[:12]} (ipvlan l2/bridge) cannot use parent lab0: it already has link iv0 "
        "(ipvlan l3/bridge, not made by pymacvlan); ipvlan users of one parent must have the "
        "same ipvlan_mode and ipvlan_flag (the kernel keeps one per parent and would switch the "
        "others to the new one)"
    )
    assert set(links.links) == {"lab0", "iv0"}  # no endpoint link made


async def test_join_refuses_next_to_a_passthru_link_made_since(d: Daemon, links: FakeLinks) -> None:
    await create(d.client, parent="lab0")
    await endpoint(d.client)
    await links.create_macvlan("pt0", "lab0", "passthru")
    answer = await d.client.call(
        "NetworkDriver.Join", {"NetworkID": NET, "EndpointID": EP, "SandboxKey": "/x"}
    )
    assert answer.status == 500
    assert answer.err == (
        f"network {NET[:12]} (macvlan bridge) cannot use parent lab0: it is taken by link pt0 "
        "(macvlan passthru, not made by pymacvlan), which allows no other link on it"
    )
    assert set(links.links) == {"lab0", "pt0"}


async def test_join_next_to_links_of_compatible_networks(d: Daemon, links: FakeLinks) -> None:
    await create(d.client, parent="lab0")
    await create(d.client, NET2, parent="lab0", macvlan_mode="vepa", ipv4=[{"Pool": POOL2}])
    await endpoint(d.client)
    await endpoint(d.client, EP2, NET2, address="198.51.100.10/24")
    first = (await join(d.client))["InterfaceName"]["SrcName"]
    second = (await join(d.client, EP2, NET2))["InterfaceName"]["SrcName"]
    assert {first, second} <= set(links.links)  # both still here: Docker has moved neither yet


async def test_the_host_shim_is_not_remade_next_to_a_link_in_another_mode(
    start_daemon: StartDaemon, links: FakeLinks
) -> None:
    factory = functools.partial(open_services, links=links)
    d = await start_daemon(factory)
    aux = {"myhost": "192.0.2.2/24"}
    await create(
        d.client,
        parent="lab0",
        type="ipvlan",
        host_address="myhost",
        ipv4=[{"Pool": "192.0.2.0/24", "AuxAddresses": aux}],
    )
    (shim,) = [name for name in links.links if name.startswith("pmvh-")]
    await links.delete_link(shim)  # a reboot; then someone adds a link in another mode
    await links.create_ipvlan("iv0", "lab0", "l3", "bridge")
    d = await start_daemon(factory)
    await d.client.ok("NetworkDriver.GetCapabilities")
    await endpoint(d.client)  # waits for the state load, which tried to restore the shim
    assert set(links.links) == {"lab0", "iv0"}
    assert links.links["iv0"].ipvlan_mode == "l3"
