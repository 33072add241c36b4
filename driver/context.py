"""What every lifecycle stage works with: the link layer, the store, the state and the settings."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from driver.links import Links
from driver.state import State
from driver.store import SqliteDriverStore

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class DriverSettings:
    # This host's name in address plans; host_address=@node names its aux address.
    node_name: str = ""
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
