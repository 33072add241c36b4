"""What the announcements count for the metrics: frames sent per round, a round that failed."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import pytest

from driver import announce
from driver.errors import LinkError

MAC = "02:42:c0:00:02:0a"
FRAMES = announce.frames(
    MAC, [ipaddress.IPv4Address("192.0.2.10"), ipaddress.IPv6Address("2001:db8::10")]
)


async def test_every_frame_of_every_round_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, int]] = []

    def send(parent: str, payloads: Iterable[bytes]) -> None:  # no packet leaves the test
        sent.append((parent, len(list(payloads))))

    monkeypatch.setattr(announce, "send_frames", send)
    counted = announce.Announced()
    await announce.announce("lab0", FRAMES, count=3, interval=0.001, counted=counted)
    assert sent == [("lab0", 2)] * 3
    assert counted == announce.Announced(frames=6, failures=0)
    # Counts add up over announcements.
    await announce.announce("lab0", FRAMES, count=1, interval=0.001, counted=counted)
    assert counted.frames == 8


async def test_a_round_that_cannot_be_sent_is_a_failure_and_the_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def send(parent: str, payloads: Iterable[bytes]) -> None:
        raise LinkError(f"cannot announce addresses on {parent}: No such device")

    monkeypatch.setattr(announce, "send_frames", send)
    counted = announce.Announced()
    await announce.announce("gone0", FRAMES, count=3, interval=0.001, counted=counted)
    assert counted == announce.Announced(frames=0, failures=1)
