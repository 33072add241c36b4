"""What the checks look at: the request, what the daemon holds, and the host they run on.

Built once per run by the caller (the daemon's route, or the command line in-process) and read by
every check. The host's links are read in one dump (`Scene.links`), so that every check sees the
same moment.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from driver.diagnose.child_mac import Timing
from driver.diagnose.kernel_modules import KernelFiles
from driver.errors import InvalidOption, shown
from driver.linkinfo import LinkInfo, check_link_name
from driver.links import Links
from plugin.admin.report import EndpointStatus, NetworkStatus, StatusReport
from plugin.doctor.model import Where

T = TypeVar("T")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Exclusive(Protocol):
    """Runs `work` while no driver call changes links (the daemon's driver lock): doctor's test
    link must not meet a container's Join on the same parent."""

    async def __call__(self, work: Callable[[], Awaitable[T]]) -> T: ...


async def at_once(work: Callable[[], Awaitable[T]]) -> T:
    """`Exclusive` where no driver runs in this process (the command line in-process)."""
    return await work()


@dataclass(frozen=True)
class Request:
    parent: str | None = None  # check this parent (and the networks on it), before any network
    network: str | None = None  # an id; the report is already narrowed to it
    gateway: IPAddress | None = None  # the gateway to ask from the parent given


def parse_request(parent: str | None, network: str | None, gateway: str | None) -> Request:
    """What the caller asked, checked; `InvalidOption` (the caller's fault) for a parent name no
    link can have, a gateway that is not an address, a gateway without a parent."""
    if parent is not None:
        check_link_name(parent)
    address: IPAddress | None = None
    if gateway is not None:
        if parent is None:
            raise InvalidOption("--gateway goes with --parent: the networks name their own")
        try:
            address = ipaddress.ip_address(gateway)
        except ValueError:
            raise InvalidOption(
                f"gateway {shown(gateway)} is not an IPv4 or IPv6 address"
            ) from None
    if network is not None and not network:
        raise InvalidOption("network is empty: give a network's name or id")
    return Request(parent=parent, network=network, gateway=address)


@dataclass(frozen=True)
class Host:
    """Where the checks run: the link layer of that namespace, and what it allows."""

    links: Links
    # Frames can be sent on these links (packet sockets in the same namespace). False for a link
    # layer that is not the kernel's (the protocol tests' fake): those checks say skipped.
    on_kernel: bool
    netns: str | None = None  # the namespace of `links`, for packet sockets (None: this one)
    exclusive: Exclusive = at_once
    kernel_files: KernelFiles = field(default_factory=KernelFiles)
    timing: Timing = field(default_factory=Timing)


@dataclass(frozen=True)
class Inputs:
    where: Where
    report: StatusReport  # narrowed to `request.network` when one was given
    host: Host
    request: Request = Request()
    # Why the state could not be read at all (in-process), instead of a report.
    state_problem: str | None = None


@dataclass
class Scene:
    """The inputs and the host's links, read once."""

    inputs: Inputs
    links: dict[str, LinkInfo]
    links_problem: str | None  # why the links could not be read (every link check says so)
    # Link kinds the host shows it can make (a link of that kind exists, or doctor made one).
    kinds_seen: set[str] = field(default_factory=set)

    @property
    def report(self) -> StatusReport:
        return self.inputs.report

    @property
    def host(self) -> Host:
        return self.inputs.host

    def link(self, name: str) -> LinkInfo | None:
        return self.links.get(name)

    def by_index(self, index: int) -> LinkInfo | None:
        return next((link for link in self.links.values() if link.index == index), None)

    def networks_on(self, parent: str) -> list[NetworkStatus]:
        """The networks whose parent, or whose VLAN link, is `parent`."""
        return [n for n in self.report.networks if parent in (n.parent, n.link) and not n.dummy]

    def parents(self) -> list[str]:
        """The parents to check: the one asked for, else every network's, in order."""
        if self.inputs.request.parent is not None:
            return [self.inputs.request.parent]
        found: list[str] = []
        for network in self.report.networks:
            if not network.dummy and network.parent and network.parent not in found:
                found.append(network.parent)
        return found

    def networks(self) -> list[NetworkStatus]:
        """The networks to check: those on the parent asked for, else all of the report's."""
        parent = self.inputs.request.parent
        if parent is not None:
            return self.networks_on(parent)
        return list(self.report.networks)


async def read_scene(inputs: Inputs) -> Scene:
    try:
        found = await inputs.host.links.list_links()
    except Exception as exc:  # a check never raises: what failed is what is reported
        return Scene(inputs, {}, f"cannot read the host's links: {type(exc).__name__}: {exc}")
    return Scene(
        inputs,
        {link.name: link for link in found},
        None,
        {link.kind for link in found if link.kind},
    )


def short(network_id: str) -> str:
    return network_id[:12]


def network_subject(network: NetworkStatus) -> str:
    return f"network {network.name or short(network.id)}"


def ids(networks: Sequence[NetworkStatus]) -> list[str]:
    return [n.id for n in networks]


def who(endpoint: EndpointStatus) -> str:
    """A container as messages name it: its name where known, else its endpoint's id."""
    return endpoint.container or short(endpoint.id)
