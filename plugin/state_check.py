"""The start-up check of the two state files: lost state is refused, never started over silently.

`driver.sqlite3` (networks, endpoints) and `ipam.sqlite3` (pools, addresses) describe one host's
state together. A file that went missing or empty while the other still holds data means the
state was lost or damaged: starting with an empty file would hand out addresses containers still
use, or forget networks Docker still has. So, before either file is opened (and created):

| driver.sqlite3             | ipam.sqlite3               | then                                 |
|----------------------------|----------------------------|--------------------------------------|
| blank                      | blank                      | a new install: one new state ID      |
| blank                      | holds pools/allocations    | refuse                               |
| blank                      | holds nothing              | warn, go on                          |
| holds networks/endpoints   | blank                      | refuse                               |
| holds nothing              | blank                      | warn, go on                          |
| state ID a                 | state ID b != a            | refuse: two state directories        |
| state ID, or none (older)  | state ID, or none (older)  | go on; a file without one adopts it  |

"Blank": missing, 0 bytes, or no tables. Pure: the stores report what each file holds
(`FileSummary`), plugin/services.py acts on the `Verdict`. After both are loaded,
`unheld_endpoint_addresses` names what the two files certainly disagree on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from plugin.state_files import TROUBLESHOOTING

# Disagreements logged one by one at start-up; the rest are counted in one more line.
MAX_REPORTED = 10

EndpointAddress = tuple[str, str, ipaddress.IPv4Interface | ipaddress.IPv6Interface]


class Stored(Protocol):
    """What a store reports of its file (`driver.store.FileSummary`, `ipam.store.FileSummary`)."""

    @property
    def file(self) -> str: ...

    @property
    def blank(self) -> str | None: ...

    @property
    def state_id(self) -> str | None: ...

    @property
    def holds(self) -> tuple[tuple[str, int], ...]: ...


@dataclass(frozen=True)
class Verdict:
    state_id: str  # the identity both files carry from now on
    refusal: str | None = None  # the one line the user reads, when the state must not be used
    warnings: tuple[str, ...] = ()


def check_state(driver: Stored, ipam: Stored, new_state_id: Callable[[], str]) -> Verdict:
    """Whether the two files may be opened together, and under which state ID."""
    if driver.blank is not None and ipam.blank is not None:
        return Verdict(new_state_id())
    for blank, other in ((driver, ipam), (ipam, driver)):
        if blank.blank is None:
            continue
        state_id = other.state_id or new_state_id()
        if _has_data(other):
            return Verdict(state_id, refusal=_lost(blank, other))
        warning = (
            f"{blank.file} {blank.blank} and {other.file} holds nothing: starting with an "
            "empty state"
        )
        return Verdict(state_id, warnings=(warning,))
    if driver.state_id and ipam.state_id and driver.state_id != ipam.state_id:
        return Verdict(
            driver.state_id,
            refusal=(
                f"{driver.file} and {ipam.file} belong to different pymacvlan state directories "
                f"(state IDs {driver.state_id} and {ipam.state_id}): put back the file that "
                f"belongs with the other, or restore both from the same backup, then restart "
                f"pymacvlan; {TROUBLESHOOTING}"
            ),
        )
    return Verdict(driver.state_id or ipam.state_id or new_state_id())


def _has_data(stored: Stored) -> bool:
    return any(count > 0 for _, count in stored.holds)


def _lost(blank: Stored, other: Stored) -> str:
    name = blank.file.rsplit("/", 1)[-1]
    return (
        f"{blank.file} {blank.blank}, but {other.file} still holds {describe(other.holds)}: "
        f"the state was lost or damaged and pymacvlan will not start over on its own; restore "
        f"{name} from a backup and restart pymacvlan, or, to start over on purpose, move both "
        f"files aside, restart pymacvlan and remove the old networks (docker network rm); "
        f"{TROUBLESHOOTING}"
    )


def describe(holds: Iterable[tuple[str, int]]) -> str:
    """``(("network", 1), ("endpoint", 3))`` → "1 network and 3 endpoints" (counts > 0 only)."""
    parts = [f"{n} {noun}{'' if n == 1 else 's'}" for noun, n in holds if n > 0]
    if len(parts) <= 1:
        return "".join(parts) or "nothing"
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def unheld_endpoint_addresses(
    endpoints: Iterable[EndpointAddress],
    held: Mapping[str, frozenset[str]],
    ipam_file: str,
    limit: int = MAX_REPORTED,
) -> list[str]:
    """One line per endpoint address that the IPAM state does not hold although it holds the
    endpoint's subnet (a network on another IPAM driver has a subnet pymacvlan's IPAM does not
    know, and is not compared), at most `limit` lines and a count of the rest."""
    subnets: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, set[object]] = {}
    for subnet, addresses in held.items():
        known = subnets.setdefault(ipaddress.ip_network(subnet), set())
        known.update(ipaddress.ip_address(a) for a in addresses)
    lines = []
    for network_id, endpoint_id, address in sorted(endpoints, key=str):
        in_subnet = subnets.get(address.network)
        if in_subnet is None or address.ip in in_subnet:
            continue
        lines.append(
            f"endpoint {endpoint_id[:12]} of network {network_id[:12]} has {address}, but "
            f"{ipam_file} does not hold that address: it may be handed out to another "
            f"container; restore the file from a backup, or reconnect the container"
        )
    if len(lines) > limit:
        lines[limit:] = [f"and {len(lines) - limit} more endpoint addresses {ipam_file} lacks"]
    return lines
