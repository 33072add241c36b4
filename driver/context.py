"""What every lifecycle stage works with: the link layer, the store, the state and the settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from driver.links import Links
from driver.state import State
from driver.store import SqliteDriverStore

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class DriverSettings:
    # Gratuitous ARP / unsolicited NA sent for a new endpoint (0: none), and their spacing.
    announce_count: int = 3
    announce_interval: float = 1.0


@dataclass
class Context:
    links: Links
    store: SqliteDriverStore
    settings: DriverSettings = field(default_factory=DriverSettings)
    state: State = field(default_factory=State)
    # Background announcements per endpoint, cancelled when the endpoint goes.
    announcements: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    async def commit(self, write: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store write on a worker thread: SQLite's fsync must not stall the event loop.

        Callers hold the driver lock, so writes never overlap."""
        return await asyncio.to_thread(write, *args, **kwargs)
