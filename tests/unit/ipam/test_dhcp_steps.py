"""A DHCP lease's timeline (RFC 2131 §4.4.5) and the one heap of due times."""

from __future__ import annotations

import pytest

from ipam.dhcp.due import DueQueue
from ipam.dhcp.timeline import (
    Action,
    action_at,
    due_after_failure,
    first_due,
    lease_times,
)
from ipam.records import DhcpLeaseRecord

T0 = 1_000_000.0


def lease(
    state: str = "bound", lease_s: int = 1000, t1: int = 500, t2: int = 875
) -> DhcpLeaseRecord:
    return DhcpLeaseRecord(
        pool_id="p",
        address="192.0.2.100",
        prefixlen=24,
        mac="02:00:00:00:00:01",
        client_id="0102000000000001",
        hostname=None,
        endpoint=None,
        server_id="192.0.2.2",
        server_mac="02:00:00:00:00:02",
        router=None,
        lease_seconds=lease_s,
        renew_seconds=t1,
        rebind_seconds=t2,
        acquired_at=T0,
        state=state,
        problem=None,
    )


@pytest.mark.parametrize(
    ("after", "action"),
    [
        (0, Action.WAIT),
        (499.9, Action.WAIT),
        (500, Action.RENEW),
        (874.9, Action.RENEW),
        (875, Action.REBIND),
        (999.9, Action.REBIND),
        (1000, Action.EXPIRE),
        (5000, Action.EXPIRE),
    ],
)
def test_the_action_follows_t1_t2_and_the_end(after: float, action: Action) -> None:
    assert action_at(lease(), T0 + after) is action


@pytest.mark.parametrize("state", ["expired", "refused"])
def test_a_lost_lease_is_asked_for_again_at_once_then_every_floor(state: str) -> None:
    record = lease(state)
    assert action_at(record, T0) is Action.REACQUIRE
    assert first_due(record, T0 + 7) == T0 + 7
    assert due_after_failure(record, T0 + 7, 60) == T0 + 67


def test_missing_or_nonsense_t1_t2_fall_back_to_the_rfc_shares() -> None:
    times = lease_times(lease(lease_s=1000, t1=0, t2=0))
    assert (times.renew_at, times.rebind_at, times.ends_at) == (T0 + 500, T0 + 875, T0 + 1000)
    times = lease_times(lease(lease_s=1000, t1=900, t2=800))  # T1 after T2
    assert (times.renew_at, times.rebind_at) == (T0 + 500, T0 + 800)
    times = lease_times(lease(lease_s=100, t1=50, t2=2000))  # T2 after the end
    assert (times.renew_at, times.rebind_at) == (T0 + 50, T0 + 87.5)


def test_retries_wait_half_the_time_left_but_at_least_the_floor_and_never_past_the_step() -> None:
    record = lease(lease_s=10_000, t1=5000, t2=8750)
    assert first_due(record, T0) == T0 + 5000
    # Renewing: half of the 3750 s left to T2.
    assert due_after_failure(record, T0 + 5000, 60) == T0 + 5000 + 1875
    # Close to T2: the floor, but never past T2 (rebinding starts there).
    assert due_after_failure(record, T0 + 8700, 60) == T0 + 8750
    assert due_after_failure(record, T0 + 8600, 60) == T0 + 8675
    # Rebinding: half of what is left of the lease, capped at its end.
    assert due_after_failure(record, T0 + 8750, 60) == T0 + 8750 + 625
    assert due_after_failure(record, T0 + 9990, 60) == T0 + 10_000
    # Past the end: at once (the expiry is recorded).
    assert due_after_failure(record, T0 + 10_001, 60) == T0 + 10_001
    # Before T1 (a failure that was not a renewal): T1.
    assert due_after_failure(record, T0 + 10, 60) == T0 + 5000


def test_the_due_queue_pops_in_time_order_and_a_put_replaces() -> None:
    queue: DueQueue[str] = DueQueue()
    queue.put("a", 30)
    queue.put("b", 10)
    queue.put("c", 20)
    queue.put("b", 40)  # rescheduled
    queue.remove("c")
    assert queue.next_due() == 30
    assert queue.pop_due(29) is None
    assert queue.pop_due(100) == "a"
    assert queue.pop_due(100) == "b"
    assert queue.pop_due(100) is None
    assert len(queue) == 0
    assert queue.next_due() is None


def test_the_due_queue_stays_bounded_by_the_leases_however_often_they_move() -> None:
    queue: DueQueue[int] = DueQueue()
    for key in range(10):
        queue.put(key, key)
    for round_ in range(10_000):
        queue.put(round_ % 10, 100.0 + round_)
        assert queue.entries <= 2 * len(queue) + 64
    assert len(queue) == 10
    assert [queue.pop_due(1e9) for _ in range(10)] == list(range(10))
