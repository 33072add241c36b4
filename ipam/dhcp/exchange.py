"""One exchange with the LAN's DHCP server, bounded in time, and what became of it.

Rule: whatever the LAN side does, an exchange ends within `within` seconds and its outcome is a
value, not an exception: a grant, or a failure saying in one line what happened (the server's NAK
reason, no answer, the LAN could not be asked). The caller decides what a failure means (an error
for Docker, a state for a lease being renewed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from ipam.lan import DhcpGrant, DhcpNoAnswer, DhcpRefused, LanUnavailable

MAX_REASON: Final = 200  # characters of a server's NAK message (option 56) kept


class Failure(StrEnum):
    REFUSED = "refused"  # a NAK
    NO_ANSWER = "no answer"
    UNAVAILABLE = "unavailable"  # the LAN could not be asked (no link carries the subnet, ...)


@dataclass(frozen=True)
class Granted:
    grant: DhcpGrant
    started: float  # the IPAM's clock when the exchange began: lease times count from there


@dataclass(frozen=True)
class Failed:
    failure: Failure
    detail: str  # the server's reason, the LAN's message; for no answer: the seconds waited


async def exchange(
    call: Callable[[], Awaitable[DhcpGrant]], clock: Callable[[], float], within: float
) -> Granted | Failed:
    started = clock()
    began = time.monotonic()
    try:
        async with asyncio.timeout(within):
            grant = await call()
    except DhcpRefused as exc:
        return Failed(Failure.REFUSED, cut(str(exc) or "no reason given"))
    except (DhcpNoAnswer, TimeoutError):
        return Failed(Failure.NO_ANSWER, seconds(time.monotonic() - began))
    except (LanUnavailable, OSError) as exc:
        return Failed(Failure.UNAVAILABLE, cut(str(exc) or type(exc).__name__))
    return Granted(grant, started)


async def release(call: Callable[[], Awaitable[None]], within: float) -> str | None:
    """A DHCPRELEASE, best effort: None when it went out, else why not (for the log)."""
    try:
        async with asyncio.timeout(within):
            await call()
    except TimeoutError:
        return f"the LAN did not take the message within {seconds(within)} s"
    except (LanUnavailable, DhcpNoAnswer, DhcpRefused, OSError) as exc:
        return cut(str(exc) or type(exc).__name__)
    return None


def seconds(value: float) -> str:
    return f"{round(value, 1):g}"


def cut(text: str, limit: int = MAX_REASON) -> str:
    text = " ".join(text.split())  # one line, whatever the server put in
    return text if len(text) <= limit else f"{text[:limit]}..."
