"""A DHCP lease's timeline: what to do for it at a given time, and when to try again.

RFC 2131 §4.4.5: at T1 the client renews (RENEWING: a request unicast to the server that granted
the lease), at T2 it rebinds (REBINDING: broadcast, any server may answer), at the end of the
lease it has lost the address. A request that gets no answer is sent again after half the time
left until T2 (renewing) or until the lease ends (rebinding), but no sooner than a floor (60 s in
the RFC). Times count from when the lease was acquired (the request that got it was sent).

What the RFC leaves to us, because a container cannot be readdressed while it runs: after a NAK
("refused") or the end of the lease ("expired") the container keeps its address, the state says
so, and the plugin keeps asking the server for that same address again, every `floor` seconds.

Pure: times in, decisions out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from ipam.records import DhcpLeaseRecord

# `DhcpLeaseRecord.state`
BOUND: Final = "bound"  # granted or renewed; nothing to do before T1
RENEWING: Final = "renewing"  # past T1 and a renewal failed (the problem says how)
REBINDING: Final = "rebinding"  # past T2 and a rebinding failed
EXPIRED: Final = "expired"  # the lease ended without a renewal
REFUSED: Final = "refused"  # the server said no (a NAK)
LOST: Final = (EXPIRED, REFUSED)  # the address is held without a lease; asked for again

# A lease with no usable T1/T2 (zero, or past the end) gets the RFC's defaults: 0.5 and 0.875.
_T1_SHARE: Final = 0.5
_T2_SHARE: Final = 0.875


class Action(StrEnum):
    WAIT = "wait"  # not due yet
    RENEW = "renew"
    REBIND = "rebind"
    EXPIRE = "expire"  # the lease just ended: record it, then ask for the address again
    REACQUIRE = "reacquire"  # lost (expired or refused): ask for the same address again


@dataclass(frozen=True)
class LeaseTimes:
    renew_at: float  # T1
    rebind_at: float  # T2
    ends_at: float


def lease_times(record: DhcpLeaseRecord) -> LeaseTimes:
    length = max(record.lease_seconds, 1)
    t2 = record.rebind_seconds if 0 < record.rebind_seconds <= length else _T2_SHARE * length
    t1 = record.renew_seconds if 0 < record.renew_seconds <= t2 else min(_T1_SHARE * length, t2)
    start = record.acquired_at
    return LeaseTimes(start + t1, start + t2, start + length)


def action_at(record: DhcpLeaseRecord, now: float) -> Action:
    if record.state in LOST:
        return Action.REACQUIRE
    times = lease_times(record)
    if now >= times.ends_at:
        return Action.EXPIRE
    if now >= times.rebind_at:
        return Action.REBIND
    if now >= times.renew_at:
        return Action.RENEW
    return Action.WAIT


def first_due(record: DhcpLeaseRecord, now: float) -> float:
    """When to act on a lease just granted, renewed or loaded: at T1 (at once when overdue),
    at once when it is lost."""
    if record.state in LOST:
        return now
    return lease_times(record).renew_at


def due_after_failure(record: DhcpLeaseRecord, now: float, floor: float) -> float:
    """When to try again after an attempt at `now` that got no answer (see the docstring)."""
    if record.state in LOST:
        return now + floor
    times = lease_times(record)
    if now < times.renew_at:
        return times.renew_at
    if now < times.rebind_at:
        boundary = times.rebind_at
    elif now < times.ends_at:
        boundary = times.ends_at
    else:
        return now  # the lease has ended: record that now
    return min(boundary, now + max(floor, (boundary - now) / 2))
