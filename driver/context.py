"""What every lifecycle stage works with: the link layer, the store, the state and the settings."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from driver.announce import Announced
from driver.lan.claims import ClaimRecord, ClaimWatcher
from driver.links import Links
from driver.state import State
from driver.store import SqliteDriverStore

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class WatchTiming:
    """How driver/linkwatch.py paces restoring owned links that vanish while the plugin runs."""

    # After a change that concerns us, wait this long for the rest of the burst (a replugged NIC
    # is a dozen notifications) and act once.
    settle: float = 0.3
    # A link made again this many times within `window` seconds is fought over (something keeps
    # deleting it): it is left alone until the window has passed, with one log line.
    burst: int = 5
    window: float = 60.0
    # After a restore or a subscription that failed, try again this much later.
    retry: float = 5.0


@dataclass(frozen=True)
class DriverSettings:
    # This host's name in address plans; host_address=@node names its aux address.
    node_name: str = ""
    # Gratuitous ARP / unsolicited NA sent for a new endpoint (0: none), and their spacing.
    announce_count: int = 3
    announce_interval: float = 1.0
    # Watch the links of joined endpoints for other devices claiming their addresses.
    watch_claims: bool = True
    link_watch: WatchTiming = WatchTiming()


@dataclass
class Context:
    links: Links
    store: SqliteDriverStore
    settings: DriverSettings = field(default_factory=DriverSettings)
    state: State = field(default_factory=State)
    # The MAC a DHCP lease was taken with, by (subnet, address): such an endpoint must get
    # exactly that MAC (the plugin wires the IPAM's leases here).
    lease_mac: Callable[[str, str], str | None] = lambda subnet, address: None
    # Background announcements per endpoint, cancelled when the endpoint goes; what they sent.
    announcements: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    announced: Announced = field(default_factory=Announced)
    # Claims of our addresses by other devices (driver/claimwatch.py): the endpoints joined
    # since this process started (all loaded ones count), one watcher per link carrying them,
    # the MAC each address should have per link, and what the watchers saw.
    joined: set[str] = field(default_factory=set)
    watchers: dict[str, ClaimWatcher] = field(default_factory=dict)
    claim_owners: dict[str, dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str]] = field(
        default_factory=dict
    )
    claims: ClaimRecord = field(default_factory=ClaimRecord)
    # One thread owns the SQLite connection: calls run in order, and closing it queues behind a
    # call still running (a cancelled caller does not stop its thread).
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="pymacvlan-driver-db")
    )

    async def commit(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store call on the store's thread: SQLite's fsync must not stall the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(call, *args, **kwargs))

    async def close_store(self) -> None:
        await self.commit(self.store.close)
        self.executor.shutdown(wait=True)
