"""Do frames from a MAC other than the parent's leave the host and come back?

The question behind most "my macvlan container cannot reach the LAN" reports: a hypervisor's
virtual switch (vSphere without forged transmits, Hyper-V without MAC address spoofing), a cloud
NIC, a switch port with port security, or a Wi-Fi access point passes only the MAC it knows for
the port, and drops every frame a macvlan container sends or is sent.

Asked directly: a short-lived macvlan link on the parent, with a fresh locally administered MAC
and a name of its own, asks the network's gateway for its MAC (the ARP probe of RFC 5227 or the
duplicate address detection solicitation of RFC 4862, driver/lan/probe.py: no neighbour learns
anything from either). The IPv4 answer comes back to the child's MAC, so both directions are
tested; an IPv6 answer goes to all nodes, so there only the way out is. Then, as the control, the
parent asks with its own MAC. The child goes first and is gone before the parent asks: the
parent's packet tap sees the frames of its children too, and an answer to one must not pass for
an answer to the other.

The link is made, used and deleted within about two seconds, also when the caller is cancelled
(the deletion is shielded). Its alias, ``pymacvlan:doctor:<unix time>``, lets a later run delete
one that a killed run left behind (`sweep_stale_children`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import time
from dataclasses import dataclass

from driver.errors import DriverError
from driver.lan.probe import probe_address
from driver.links import Links
from driver.names import ROLE_DOCTOR, is_owned, owned_alias

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CHILD_PREFIX = "pmvd-"  # + 8 hex digits: 13 characters, never an endpoint link's name (15)
STALE_AFTER = 600.0  # seconds: a test link lives for about two; one this old was left behind
# RFC 2863 operational states in which a link passes frames ("unknown": a driver that does not
# report one, common on virtual NICs); what the kernel's IFF_RUNNING means.
OPER_UP = ("up", "unknown")


@dataclass(frozen=True)
class Timing:
    up_within: float = 3.0  # for the child to come up (it follows the parent's carrier)
    wait: float = 1.0  # for the gateway's answer, per question
    attempts: int = 3  # questions sent within `wait`
    poll: float = 0.05


@dataclass(frozen=True)
class Asked:
    """One question to the gateway: from which link, with which MAC, and what came back."""

    link: str
    mac: str | None  # the MAC the question left with (None: it never left)
    answer: str | None = None  # the MAC that answered for the gateway; None: nobody did
    error: str | None = None  # why the question could not be asked

    @property
    def answered(self) -> bool:
        return self.answer is not None


@dataclass(frozen=True)
class ChildMacFacts:
    parent: str
    gateway: IPAddress
    child: Asked  # from the short-lived macvlan child, with its fresh MAC
    control: Asked  # from the parent, with the parent's own MAC
    left_behind: str | None = None  # the test link could not be deleted: why


def fresh_mac() -> str:
    """A random locally administered unicast MAC (IEEE 802: U/L bit set, I/G bit clear)."""
    octets = bytearray(os.urandom(6))
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join(f"{o:02x}" for o in octets)


def child_name() -> str:
    return CHILD_PREFIX + secrets.token_hex(4)


async def ask_gateway(
    links: Links,
    parent: str,
    gateway: IPAddress,
    *,
    netns: str | None = None,
    timing: Timing | None = None,
) -> ChildMacFacts:
    """Ask ``gateway`` from a short-lived macvlan child of ``parent``, then from ``parent``.

    ``links`` is the link layer of the namespace the parent is in; ``netns`` names that namespace
    for the packet sockets (None: this process's). Never raises for what the host refuses: that
    is the fact reported (`Asked.error`).
    """
    timing = timing or Timing()
    await sweep_stale_children(links)
    name, mac = child_name(), fresh_mac()
    child, left_behind = await _ask_from_child(links, parent, name, mac, gateway, netns, timing)
    control = await _ask(parent, await _mac_of(links, parent), gateway, netns, timing)
    return ChildMacFacts(parent, gateway, child, control, left_behind)


async def _ask_from_child(
    links: Links,
    parent: str,
    name: str,
    mac: str,
    gateway: IPAddress,
    netns: str | None,
    timing: Timing,
) -> tuple[Asked, str | None]:
    alias = owned_alias(ROLE_DOCTOR, str(int(time.time())))
    try:
        await links.create_macvlan(name, parent, "bridge", mac=mac, alias=alias)
    except DriverError as exc:
        return Asked(name, None, error=f"cannot make the test link: {exc}"), None
    try:
        asked = await _bring_up_and_ask(links, name, mac, gateway, netns, timing)
    finally:
        left_behind = await _delete(links, name)
    return asked, left_behind


async def _bring_up_and_ask(
    links: Links, name: str, mac: str, gateway: IPAddress, netns: str | None, timing: Timing
) -> Asked:
    try:
        await links.set_up(name)
        await _wait_until_up(links, name, timing)
    except DriverError as exc:
        return Asked(name, None, error=f"cannot bring the test link up: {exc}")
    return await _ask(name, mac, gateway, netns, timing)


async def _ask(
    link: str, mac: str | None, gateway: IPAddress, netns: str | None, timing: Timing
) -> Asked:
    try:
        answer = await probe_address(
            link, gateway, attempts=timing.attempts, wait=timing.wait, netns=netns
        )
    except DriverError as exc:
        return Asked(link, mac, error=str(exc))
    return Asked(link, mac, answer=answer)


async def _mac_of(links: Links, name: str) -> str | None:
    try:
        link = await links.get_link(name)
    except DriverError:
        return None
    return link.mac if link is not None else None


async def _wait_until_up(links: Links, name: str, timing: Timing) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timing.up_within
    while True:
        link = await links.get_link(name)
        if link is not None and link.up and link.oper_state in OPER_UP:
            return
        if loop.time() >= deadline:
            state = link.oper_state if link is not None else "gone"
            raise DriverError(
                f"the test link {name} did not come up within {timing.up_within:g} s "
                f"(operational state: {state}); does the parent have carrier?"
            )
        await asyncio.sleep(timing.poll)


async def _delete(links: Links, name: str) -> str | None:
    """Delete the test link, to the end even if the caller is cancelled meanwhile; None when it
    is gone, else why not."""
    deleting = asyncio.ensure_future(links.delete_link(name))
    try:
        await asyncio.shield(deleting)
    except asyncio.CancelledError:
        await asyncio.wait([deleting])
        raise
    except DriverError as exc:
        return f"the test link {name} could not be deleted: {exc}; remove it: ip link del {name}"
    return None


async def sweep_stale_children(links: Links, now: float | None = None) -> list[str]:
    """Delete the test links older than STALE_AFTER (left by a run that was killed); their
    names."""
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        found = await links.list_links()
    except DriverError:
        return removed
    for link in found:
        if not is_owned(link.alias, ROLE_DOCTOR) or link.alias is None:
            continue
        made = link.alias.split(":", 2)[2]
        if not made.isdigit() or now - int(made) < STALE_AFTER:
            continue
        try:
            if await links.delete_link(link.name):
                removed.append(link.name)
        except DriverError:
            continue
    return removed
