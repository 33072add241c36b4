"""The knobs of DHCP mode (the daemon keeps the defaults; tests shorten them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DhcpSettings:
    # RFC 2131 §4.4.5: a renewal or rebinding that got no answer is sent again after half the
    # time left, but no sooner than this; a lost lease (expired, refused) is asked for again at
    # this interval.
    retry_floor: float = 60.0
    # When the LAN could not be asked at all (no network carries the subnet yet, as at start-up
    # before the driver has loaded its networks; a parent that is down), nothing reached a
    # server, so the floor does not apply: try again after this long.
    unavailable_retry: float = 10.0
    # The longest one exchange with the LAN (DISCOVER .. ACK, a renewal) may take, whatever the
    # LAN side does: Docker waits 30 s for RequestAddress.
    exchange_timeout: float = 20.0
    # A DHCPRELEASE is one message with no answer: it never holds up a release for longer.
    release_timeout: float = 2.0
    # The renewal loop looks at the clock at least this often, so that a jump of the wall clock
    # (a suspended machine resumed) is noticed within it.
    recheck: float = 60.0
    # Renewals that may run at once (after a restart many may be due together).
    parallel: int = 8
