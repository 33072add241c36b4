"""A parent that is down, missing, or comes later: what Docker's calls answer (issue 9, part 3).

The decisions (docs/driver.md, "When the parent is down, missing or comes back"):

* a network is recorded whether its parent is there or not, up or down: at boot a NIC may come
  (or come up) after the daemon;
* a container on a parent that is down starts, and gets traffic when the parent comes up (as on
  Docker 28.0.2 and newer, moby#49593);
* a container on a parent that does not exist cannot start: Join says which link is missing.

The in-memory link layer (tests/api/fake_links.py); tests/kernel does the same on real links.
"""

from __future__ import annotations

import pytest

from driver.names import is_owned
from tests.api.conftest import Daemon
from tests.api.fake_links import FakeLinks
from tests.api.test_driver_api import EP, NET, create, create_body, endpoint, join

pytestmark = pytest.mark.asyncio

JOIN = {"NetworkID": NET, "EndpointID": EP, "SandboxKey": "/var/run/docker/netns/x"}


async def test_a_network_on_a_missing_parent_works_once_the_parent_appears(
    d: Daemon, links: FakeLinks
) -> None:
    await create(d.client, parent="eth1")
    await create(d.client, parent="eth1")  # sent again (a retry): the same answer
    await endpoint(d.client)
    answer = await d.client.call("NetworkDriver.Join", JOIN)
    assert answer.status == 500
    assert answer.err.startswith(
        f"parent interface eth1 of network {NET[:12]} does not exist on this host"
    )
    assert "ip link show eth1" in answer.err
    links.add_nic("eth1")
    joined = await join(d.client)
    assert links.links[joined["InterfaceName"]["SrcName"]].parent_name == "eth1"


async def test_a_vlan_network_on_a_missing_base_gets_its_vlan_link_when_the_base_appears(
    d: Daemon, links: FakeLinks
) -> None:
    await create(d.client, parent="eth1.30")
    assert "eth1.30" not in links.links
    await endpoint(d.client)
    answer = await d.client.call("NetworkDriver.Join", JOIN)
    assert answer.status == 500
    assert "its parent interface eth1 does not exist on this host" in answer.err
    assert "eth1.30" in answer.err
    links.add_nic("eth1")
    joined = await join(d.client)
    vlan = links.links["eth1.30"]
    assert (vlan.kind, vlan.vlan_id, vlan.parent_name, vlan.up) == ("vlan", 30, "eth1", True)
    assert is_owned(vlan.alias)
    assert links.links[joined["InterfaceName"]["SrcName"]].parent_name == "eth1.30"
    links.take_into_container(joined["InterfaceName"]["SrcName"])
    await d.client.ok("NetworkDriver.Leave", {"NetworkID": NET, "EndpointID": EP})
    await d.client.ok("NetworkDriver.DeleteEndpoint", {"NetworkID": NET, "EndpointID": EP})
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert set(links.links) == {"lab0", "eth1"}  # the VLAN link was ours: it goes


async def test_a_network_whose_parent_never_came_is_deleted_cleanly(
    d: Daemon, links: FakeLinks
) -> None:
    await create(d.client, parent="eth1.30")
    await d.client.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    links.add_nic("eth1")
    # Nothing of the deleted network is made later, and the name is free for a new one.
    await create(d.client, parent="eth1")
    assert set(links.links) == {"lab0", "eth1"}


async def test_networks_on_one_missing_parent_still_follow_the_sharing_rule(d: Daemon) -> None:
    await create(d.client, parent="eth1", macvlan_mode="passthru")
    answer = await d.client.call(
        "NetworkDriver.CreateNetwork", create_body("m" * 64, parent="eth1")
    )
    assert answer.status == 500
    assert "passthru" in answer.err


async def test_a_parent_that_is_down_is_accepted_and_containers_start_on_it(
    d: Daemon, links: FakeLinks
) -> None:
    links.add_nic("eth1", up=False)
    await create(d.client, parent="eth1")
    await create(d.client, "m" * 64, parent="eth1.40")  # a VLAN on a base that is down
    vlan = links.links["eth1.40"]
    assert (vlan.vlan_id, vlan.up) == (40, True)  # up itself: it carries traffic with its base
    await endpoint(d.client)
    joined = await join(d.client)
    assert links.links[joined["InterfaceName"]["SrcName"]].parent_name == "eth1"


async def test_what_needs_the_parent_is_checked_when_it_is_there(
    d: Daemon, links: FakeLinks
) -> None:
    await create(d.client, parent="eth1", **{"com.docker.network.driver.mtu": "9000"})
    await endpoint(d.client)
    links.add_nic("eth1", mtu=1500)
    answer = await d.client.call("NetworkDriver.Join", JOIN)
    assert answer.status == 400
    assert "MTU 9000 is larger than the MTU of parent eth1 (1500)" in answer.err
