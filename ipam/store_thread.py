"""Blocking store calls, run on the store's own thread, with one error rule for both stores."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import TypeVar

from ipam.errors import IpamError, StoreError

T = TypeVar("T")


async def run_on(executor: Executor, what: str, fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)` on `executor` (a single thread: SQLite connections stay on theirs). Our own
    errors pass through; anything else (I/O, SQLite) becomes a StoreError naming `what`."""
    loop = asyncio.get_running_loop()
    try:
        future: Awaitable[T] = loop.run_in_executor(executor, fn, *args)
        return await future
    except IpamError:
        raise
    except Exception as exc:
        raise StoreError(f"cannot access {what}: {exc}") from exc
