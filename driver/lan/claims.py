"""Notice when another device starts claiming a container's address.

A device on the LAN that was configured by hand with a container's address (or a DHCP server
that hands it out) says so in ARP: it announces it (gratuitous ARP), asks with it as its sender
address, answers for it. IPv6 says it with a neighbour advertisement. Either way the LAN's caches
start sending some of the container's traffic elsewhere, and the container's user sees a flaky
network. `ClaimWatcher` reads those frames on one link and reports every one whose address is a
container's and whose MAC is not that container's: a warning in the log with both MACs, and a
`Claim` in a `ClaimRecord` that ``doctor`` and the metrics read.

Bounded everywhere: the record keeps the latest claims only, the same (address, foreign MAC) is
logged at most once a minute (the throttle's memory is bounded too), and a watcher whose link is
down or gone logs once and tries again with a growing delay instead of spinning.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from driver.lan.frames import ARP_REPLY, ARP_REQUEST, parse_arp, parse_neighbour_advert
from driver.lan.packet_socket import ARP_OR_NEIGHBOUR_ADVERT_FILTER, IFF_UP, PacketSocket
from driver.logs import log

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# The MAC that should hold an address ("" for the watched link's own: ipvlan), None if the
# address is none of ours.
Owners = Callable[[IPAddress], str | None]

KEEP_CLAIMS = 100
QUIET_SECONDS = 60.0  # between two log lines about the same address and foreign MAC
THROTTLE_ENTRIES = 1024
RETRY_FIRST = 1.0
RETRY_MAX = 60.0
IDLE_RECEIVE = 3600.0  # a quiet link: wake up now and then anyway


@dataclass(frozen=True)
class Claim:
    address: IPAddress
    expected_mac: str  # the container's
    foreign_mac: str
    link: str
    seen_at: float  # seconds since the epoch


class ClaimRecord:
    """Claims seen on any link: the latest ``keep`` of them and how many in all.

    ``total`` counts every claiming frame; ``recent`` holds one entry per log line (the same
    address and foreign MAC at most once every ``quiet_seconds``), so a device that repeats
    its claim does not push the others out.
    """

    def __init__(
        self,
        *,
        keep: int = KEEP_CLAIMS,
        quiet_seconds: float = QUIET_SECONDS,
        throttle_entries: int = THROTTLE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recent: deque[Claim] = deque(maxlen=keep)
        self.total = 0
        self._quiet = quiet_seconds
        self._max_entries = throttle_entries
        self._clock = clock
        # (address, foreign MAC) -> when it was last logged; oldest first.
        self._logged: dict[tuple[IPAddress, str], float] = {}

    def report(self, claim: Claim) -> bool:
        """Count ``claim``; log and keep it unless the same claim was logged recently. Returns
        whether it was logged."""
        self.total += 1
        now = self._clock()
        key = (claim.address, claim.foreign_mac)
        last = self._logged.get(key)
        if last is not None and now - last < self._quiet:
            return False
        self._logged.pop(key, None)
        self._logged[key] = now
        self._forget_old(now)
        self.recent.append(claim)
        log.warning(
            "another device claims a container's address",
            address=str(claim.address),
            container_mac=claim.expected_mac,
            foreign_mac=claim.foreign_mac,
            link=claim.link,
        )
        return True

    def _forget_old(self, now: float) -> None:
        while self._logged:
            key, when = next(iter(self._logged.items()))
            if now - when < self._quiet and len(self._logged) <= self._max_entries:
                return
            del self._logged[key]


class ClaimWatcher:
    """Reads ARP and neighbour advertisements on ``link`` and reports claims to ``record``
    (``on_claim`` is called with each one logged).

    `start` runs it in a task; `stop` ends it and closes its socket. It survives its link going
    down or away: one log line, then attempts to open it again ``retry_first`` seconds later,
    doubling up to ``retry_max``, and one line when it watches again. ``netns``: a name under
    /run/netns (tests).
    """

    def __init__(
        self,
        link: str,
        owners: Owners,
        *,
        netns: str | None = None,
        on_claim: Callable[[Claim], None] | None = None,
        record: ClaimRecord | None = None,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
    ) -> None:
        self.link = link
        self.record = record if record is not None else ClaimRecord()
        self._owners = owners
        self._netns = netns
        self._on_claim = on_claim
        self._retry_first = retry_first
        self._retry_max = retry_max
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"claims-{self.link}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        delay = self._retry_first
        failing = False
        while True:
            try:
                async with PacketSocket.open(
                    self.link, ARP_OR_NEIGHBOUR_ADVERT_FILTER, self._netns
                ) as sock:
                    own_mac = sock.hardware_address()
                    if not sock.flags() & IFF_UP:
                        raise OSError(errno.ENETDOWN, "the link is down")
                    if failing:
                        log.info("watching the link for address claims again", link=self.link)
                        failing = False
                    delay = self._retry_first
                    await self._watch(sock, own_mac)
            except OSError as exc:
                if not failing:
                    # A link that is down or gone is news told elsewhere (the containers on it
                    # are cut off); anything else (a refused socket) is this watcher's own.
                    gone = exc.errno in (errno.ENODEV, errno.ENXIO, errno.ENETDOWN)
                    (log.info if gone else log.warning)(
                        "cannot watch the link for address claims; trying again",
                        link=self.link,
                        error=_reason(exc),
                    )
                    failing = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max)

    async def _watch(self, sock: PacketSocket, own_mac: str) -> None:
        """Until the socket fails (``OSError``: the link went down or away)."""
        while True:
            frame = await sock.receive(IDLE_RECEIVE)
            if frame is not None:
                self._check(frame, own_mac)

    def _check(self, frame: bytes, own_mac: str) -> None:
        arp = parse_arp(frame)
        if arp is not None:
            if arp.op not in (ARP_REQUEST, ARP_REPLY):
                return
            address: IPAddress = arp.sender_ip
            mac = arp.sender_mac
        else:
            advert = parse_neighbour_advert(frame)
            if advert is None:
                return
            address, mac = advert.target, advert.mac
        expected = self._owners(address)
        if expected is None:
            return
        expected = expected.lower() or own_mac
        if mac == expected:
            return
        claim = Claim(address, expected, mac, self.link, time.time())
        if not self.record.report(claim) or self._on_claim is None:
            return
        try:
            self._on_claim(claim)
        except Exception as exc:  # the callback's bug must not end the watching
            log.error("a claim callback failed", link=self.link, error=repr(exc))


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.ENODEV, errno.ENXIO):
        return "the link does not exist"
    if exc.errno == errno.ENETDOWN:
        return "the link is down"
    return exc.strerror or str(exc)
