"""The link layer's subscription to the kernel's link changes (driver/netlink/events.py), on this
host's kernel in throwaway namespaces: what it reports, and that it stays bounded and says so when
notifications were lost (the reader then looks at every link again)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from driver.errors import LinkError
from driver.links import LinkChanges, LinkChangeSource, LinkChangeStream
from driver.netlink import LinkEvents, LinkLayer
from tests.harness.prereq import require_command, require_root
from tests.kernel.nslab import Lab, cabled_lab, sh

WAIT = 5.0


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_root()
    require_command("ip")
    with cabled_lab() as lab:
        yield lab


@pytest.fixture
async def events(lab: Lab) -> AsyncIterator[LinkEvents]:
    subscription = await LinkEvents.open(lab.host)
    try:
        yield subscription
    finally:
        subscription.close()  # before the namespace goes: a socket would keep it alive


async def changes_until(events: LinkChangeStream, name: str) -> LinkChanges:
    """Batches until one names ``name`` (or reports an overrun)."""
    async with asyncio.timeout(WAIT):
        while True:
            changes = await events.next()
            if name in changes.names or changes.overrun:
                return changes


def ip(lab: Lab, *args: str) -> None:
    """Runs to the end before the loop runs again: what it changes waits in the socket."""
    sh("ip", "-n", lab.host, *args)


def ip_batch(lab: Lab, commands: list[str]) -> None:
    script = "".join(f"{command}\n" for command in commands)
    subprocess.run(["ip", "-n", lab.host, "-batch", "-"], input=script, text=True, check=True)


async def test_added_changed_and_deleted_links_are_reported(lab: Lab, events: LinkEvents) -> None:
    ip(lab, "link", "add", "mv0", "link", "lab0", "type", "macvlan")
    added = await changes_until(events, "mv0")
    assert not added.overrun
    ip(lab, "link", "set", "lab0", "down")  # a change of the parent
    assert "lab0" in (await changes_until(events, "lab0")).names
    ip(lab, "link", "del", "mv0")
    deleted = await changes_until(events, "mv0")
    assert not deleted.overrun
    # A rename shows the new name only; the index is what ties it to the old one.
    ip(lab, "link", "set", "lab0", "name", "lab9")
    renamed = await changes_until(events, "lab9")
    assert renamed.indices


async def test_the_link_layer_subscribes_in_its_own_namespace(lab: Lab) -> None:
    async with await LinkLayer.open(netns=lab.host) as links:
        assert isinstance(links, LinkChangeSource)
        stream = await links.subscribe()
        try:
            sh("ip", "-n", lab.lan, "link", "add", "other0", "link", "lan0", "type", "macvlan")
            ip(lab, "link", "add", "mv1", "link", "lab0", "type", "macvlan")
            changes = await changes_until(stream, "mv1")
            assert "other0" not in changes.names  # another namespace's links are not ours
        finally:
            stream.close()


async def test_an_overflowing_kernel_buffer_is_reported_as_an_overrun(lab: Lab) -> None:
    # A small buffer and a busy loop: the kernel drops notifications and says ENOBUFS.
    events = await LinkEvents.open(lab.host, rcvbuf=4096)
    try:
        # The loop does not run while the test adds links: nothing reads the socket meanwhile.
        for n in range(40):
            ip(lab, "link", "add", f"mv{n}", "link", "lab0", "type", "macvlan")
        async with asyncio.timeout(WAIT):
            changes = await events.next()
        assert changes.overrun
        assert events.overruns >= 1
        # The socket goes on: the next change is seen again.
        ip(lab, "link", "del", "mv0")
        assert "mv0" in (await changes_until(events, "mv0")).names
    finally:
        events.close()


async def test_a_batch_is_bounded_and_says_when_it_was_full(lab: Lab) -> None:
    events = await LinkEvents.open(lab.host, max_pending=8)
    try:
        ip_batch(lab, [f"link add mv{n} link lab0 type macvlan" for n in range(20)])
        async with asyncio.timeout(WAIT):
            changes = await events.next()
        assert changes.overrun
        assert len(changes.names) + len(changes.indices) <= 8
    finally:
        events.close()


async def test_a_closed_subscription_says_so(lab: Lab) -> None:
    events = await LinkEvents.open(lab.host)
    events.close()
    with pytest.raises(LinkError, match="closed"):
        await events.next()


async def test_a_missing_namespace_is_an_error_not_a_new_namespace() -> None:
    require_root()
    with pytest.raises(LinkError, match="cannot subscribe to the link changes"):
        await LinkEvents.open("pmv-no-such-namespace")
    assert not Path("/run/netns/pmv-no-such-namespace").exists()
