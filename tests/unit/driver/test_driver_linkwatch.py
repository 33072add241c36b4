"""The watcher that restores owned links while the plugin runs (driver/linkwatch.py), over the
in-memory link layer taught to report its changes as the kernel does.

What a user would see: the links on the host (the shim back with its address and routes, the VLAN
link back on its base), the log lines, and that nothing happens for changes that are not ours or
for a link something keeps deleting. tests/kernel and tests/guest do the same on real links.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from driver.config import PoolData, parse_network
from driver.context import DriverSettings, WatchTiming
from driver.endpoint import EndpointRequest
from driver.errors import LinkError
from driver.linkinfo import LinkInfo
from driver.links import LinkChanges
from driver.linkwatch import RestoreLimiter, watched_names
from driver.names import is_owned, shim_link_name
from driver.parents import owned_record
from driver.service import NetworkDriver
from driver.shim import shim_record
from driver.state import State
from plugin.state_files import StateFiles
from tests.api.fake_links import FakeLinks

NET = "a1" * 32
NET2 = "b2" * 32
EP = "e1" * 32
SHIM = shim_link_name("lab0")
FAST = WatchTiming(settle=0.01, burst=3, window=0.6, retry=0.05)
WAIT = 3.0


class FakeChanges:
    """A subscription to the fake's changes: a bounded batch, as driver/netlink/events.py keeps."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.overrun = False
        self.ready = asyncio.Event()
        self.closed = False

    def tell(self, name: str | None = None, *, overrun: bool = False) -> None:
        if name is not None:
            self.names.add(name)
        self.overrun |= overrun
        self.ready.set()

    async def next(self) -> LinkChanges:
        await self.ready.wait()
        self.ready.clear()
        changes = LinkChanges(names=frozenset(self.names), overrun=self.overrun)
        self.names.clear()
        self.overrun = False
        return changes

    def close(self) -> None:
        self.closed = True


class WatchedLinks(FakeLinks):
    """FakeLinks that tells its subscribers about every link added or deleted."""

    def __init__(self) -> None:
        super().__init__()
        self.streams: list[FakeChanges] = []
        self.on_create: Callable[[str], None] = lambda name: None

    async def subscribe(self) -> FakeChanges:
        stream = FakeChanges()
        self.streams.append(stream)
        return stream

    def tell(self, name: str | None = None, *, overrun: bool = False) -> None:
        for stream in self.streams:
            if not stream.closed:
                stream.tell(name, overrun=overrun)

    def add_nic(self, name: str, **kw: Any) -> LinkInfo:
        link = super().add_nic(name, **kw)
        self.tell(name)
        return link

    async def delete_link(self, name: str) -> bool:
        gone = set(self.links)
        deleted = await super().delete_link(name)
        for each in gone - set(self.links):
            self.tell(each)
        return deleted

    async def set_up(self, name: str) -> None:
        await super().set_up(name)
        self.tell(name)
        self.on_create(name)

    def drop_silently(self, name: str) -> None:
        """A link gone without a notification (one the kernel's buffer could not hold)."""
        del self.links[name]


@pytest.fixture
async def links() -> WatchedLinks:
    fake = WatchedLinks()
    fake.add_nic("lab0")
    return fake


@pytest.fixture
async def driver(tmp_path: Path, links: WatchedLinks) -> AsyncIterator[NetworkDriver]:
    d = NetworkDriver.open(
        links, tmp_path, StateFiles(), DriverSettings(announce_count=0, link_watch=FAST)
    )
    await d.load()
    yield d
    await d.close()


def pool(subnet: str, **aux: str) -> PoolData:
    return PoolData(pool=subnet, aux_addresses=aux)


async def shim_network(driver: NetworkDriver, links: FakeLinks) -> None:
    await driver.create_network(
        NET,
        {"com.docker.network.generic": {"parent": "lab0", "host_address": "me"}},
        [pool("192.0.2.0/24", me="192.0.2.2/24")],
        [],
    )
    await driver.create_endpoint(EndpointRequest(NET, EP, address="192.0.2.10/24"))
    joined = await driver.join(NET, EP)
    links.take_into_container(joined.src_name)  # as Docker does


async def eventually(check: Callable[[], bool], what: str) -> None:
    """Polls: what is checked is the fake's links, which tell no one when they change."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"not within {WAIT} s: {what}")
        await asyncio.sleep(0.01)


def shim_complete(links: FakeLinks) -> bool:
    return (
        SHIM in links.links
        and links.links[SHIM].up
        and [str(a) for a in links.addresses.get(SHIM, [])] == ["192.0.2.2/32"]
        and ("192.0.2.10/32", SHIM) in links.routes
    )


async def test_a_deleted_shim_comes_back_with_its_address_and_routes(
    driver: NetworkDriver, links: WatchedLinks
) -> None:
    await shim_network(driver, links)
    assert shim_complete(links)
    with capture_logs() as logs:
        await links.delete_link(SHIM)  # someone: ip link del pmvh-...
        await eventually(lambda: shim_complete(links), "the shim back")
    restored = [e for e in logs if e["event"] == "restored the host shim, which had vanished"]
    assert [e["link"] for e in restored] == [SHIM]
    assert is_owned(links.links[SHIM].alias)


async def test_a_parent_that_comes_back_brings_its_vlan_link_and_shim_back(
    driver: NetworkDriver, links: WatchedLinks
) -> None:
    await driver.create_network(
        NET,
        {"com.docker.network.generic": {"parent": "lab0.30", "host_address": "me"}},
        [pool("198.51.100.0/24", me="198.51.100.2/24")],
        [],
    )
    shim = shim_link_name("lab0.30")
    assert {"lab0.30", shim} <= set(links.links)
    with capture_logs() as logs:
        await links.delete_link("lab0")  # unplugged: the VLAN link and the shim go with it
        await eventually(
            lambda: any(e["event"].startswith("a link of ours waits") for e in logs), "waiting"
        )
        assert not {"lab0.30", shim} & set(links.links)
        links.add_nic("lab0")  # plugged in again
        await eventually(lambda: {"lab0.30", shim} <= set(links.links), "both back")
    vlan = links.links["lab0.30"]
    assert (vlan.kind, vlan.vlan_id, vlan.parent_name, vlan.up) == ("vlan", 30, "lab0", True)
    assert links.links[shim].parent_name == "lab0.30"
    assert [str(a) for a in links.addresses[shim]] == ["198.51.100.2/32"]
    waiting = {e["link"]: e["needs"] for e in logs if e["event"].startswith("a link of ours")}
    assert waiting == {"lab0.30": "lab0", shim: "lab0.30"}


async def test_a_network_created_before_its_parent_gets_its_links_when_it_appears(
    driver: NetworkDriver, links: WatchedLinks
) -> None:
    await driver.create_network(
        NET,
        {"com.docker.network.generic": {"parent": "eth1.30", "host_address": "me"}},
        [pool("198.51.100.0/24", me="198.51.100.2/24")],
        [],
    )
    assert set(links.links) == {"lab0"}
    links.add_nic("eth1")
    shim = shim_link_name("eth1.30")
    await eventually(lambda: {"eth1.30", shim} <= set(links.links), "the links made")
    assert [str(a) for a in links.addresses[shim]] == ["198.51.100.2/32"]


async def test_changes_that_are_not_ours_cost_nothing_and_an_overrun_looks_at_all(
    driver: NetworkDriver, links: WatchedLinks
) -> None:
    await shim_network(driver, links)
    links.drop_silently(SHIM)
    links.tell("veth9")  # a change of somebody else's link
    await asyncio.sleep(FAST.settle * 20)
    assert SHIM not in links.links
    links.tell(overrun=True)  # notifications were lost: anything may have changed
    await eventually(lambda: shim_complete(links), "the shim back")


async def test_a_link_something_keeps_deleting_is_left_alone_for_a_while(
    driver: NetworkDriver, links: WatchedLinks
) -> None:
    await shim_network(driver, links)
    made: list[float] = []
    loop = asyncio.get_running_loop()

    def fight(name: str) -> None:
        if name == SHIM:  # a program that deletes every link it does not know, at once
            made.append(loop.time())
            loop.call_soon(lambda: asyncio.ensure_future(links.delete_link(SHIM)))

    links.on_create = fight
    with capture_logs() as logs:
        await links.delete_link(SHIM)
        await eventually(lambda: len(made) >= FAST.burst, "a burst of restores")
        await asyncio.sleep(FAST.window / 2)
        assert len(made) == FAST.burst  # held back, not restored in a loop
        held = [e for e in logs if e["event"].startswith("a link of ours keeps vanishing")]
        assert [e["link"] for e in held] == [SHIM]
        links.on_create = lambda name: None  # the fight is over
        await eventually(lambda: shim_complete(links), "restored after the window")
    assert made[-1] - made[0] < FAST.window


async def test_a_link_someone_replaced_is_never_touched(
    driver: NetworkDriver, links: WatchedLinks
) -> None:
    await driver.create_network(
        NET, {"com.docker.network.generic": {"parent": "lab0.30"}}, [pool("192.0.2.0/24")], []
    )
    links.drop_silently("lab0.30")
    await links.create_vlan("lab0.30", "lab0", 30)  # the user's own, without our alias
    links.tell("lab0.30")
    await asyncio.sleep(FAST.settle * 20)
    assert links.links["lab0.30"].alias is None
    await driver.delete_network(NET)
    assert "lab0.30" in links.links  # not ours any more: never deleted


async def test_the_watcher_stops_with_the_driver(tmp_path: Path, links: WatchedLinks) -> None:
    d = NetworkDriver.open(links, tmp_path, StateFiles(), DriverSettings(link_watch=FAST))
    await d.load()
    await eventually(lambda: bool(links.streams), "subscribed")
    await d.close()
    assert all(stream.closed for stream in links.streams)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "pymacvlan-link-watch"]


class FlakyLinks(WatchedLinks):
    """The first subscription fails (a netlink socket limit, say)."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def subscribe(self) -> FakeChanges:
        self.attempts += 1
        if self.attempts == 1:
            raise LinkError("cannot subscribe to the link changes of this network namespace")
        return await super().subscribe()


async def test_a_failed_subscription_is_tried_again(tmp_path: Path) -> None:
    links = FlakyLinks()
    links.add_nic("lab0")
    d = NetworkDriver.open(links, tmp_path, StateFiles(), DriverSettings(link_watch=FAST))
    with capture_logs() as logs:
        await d.load()
        await shim_network(d, links)
        await eventually(lambda: bool(links.streams), "subscribed the second time")
        await links.delete_link(SHIM)
        await eventually(lambda: shim_complete(links), "the shim back")
    await d.close()
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "cannot watch the host's links"
    ]


def test_the_limiter_allows_a_burst_per_window() -> None:
    limiter = RestoreLimiter(burst=3, window=10.0)
    limiter.record(["a", "b"], 0.0)
    limiter.record(["a"], 1.0)
    assert limiter.held(1.0) == set()
    limiter.record(["a"], 2.0)
    assert limiter.held(2.0) == {"a"}
    assert limiter.free_at("a") == 10.0
    assert limiter.held(10.0) == set()
    limiter.keep_only(["b"])
    assert limiter.free_at("a") == float("-inf")


def test_watched_names_are_our_links_and_what_they_hang_off() -> None:
    vlan = parse_network(
        NET,
        {"com.docker.network.generic": {"parent": "lab0.30", "host_address": "me"}},
        [pool("198.51.100.0/24", me="198.51.100.2/24")],
    )
    plain = parse_network(NET2, {"com.docker.network.generic": {"parent": "eth1"}})
    owned = [owned_record(vlan.parent), shim_record(vlan)]
    state = State(networks={NET: vlan, NET2: plain}, owned={link.name: link for link in owned})
    # eth1 is not watched: nothing of ours hangs off it.
    assert watched_names(state) == {"lab0", "lab0.30", shim_link_name("lab0.30")}
