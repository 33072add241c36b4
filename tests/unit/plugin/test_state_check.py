"""The start-up comparison of driver.sqlite3 and ipam.sqlite3 (plugin/state_check.py)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pytest

from plugin.state_check import (
    EndpointAddress,
    check_state,
    describe,
    unheld_endpoint_addresses,
)

DRIVER = "/s/driver.sqlite3"
IPAM = "/s/ipam.sqlite3"


@dataclass(frozen=True)
class File:
    file: str
    blank: str | None = None
    state_id: str | None = None
    holds: tuple[tuple[str, int], ...] = ()


def driver(blank: str | None = None, state_id: str | None = None, nets: int = 0) -> File:
    holds = () if blank else (("network", nets), ("endpoint", nets))
    return File(DRIVER, blank, state_id, holds)


def ipam(blank: str | None = None, state_id: str | None = None, pools: int = 0) -> File:
    holds = () if blank else (("pool", pools), ("allocation", 2 * pools))
    return File(IPAM, blank, state_id, holds)


MISSING = "is missing"
EMPTY = "is empty (0 bytes)"


@pytest.mark.parametrize(
    ("d", "i", "state_id", "refusal", "warning"),
    [
        # a new install: both blank, one new ID
        (driver(MISSING), ipam(MISSING), "new", None, None),
        (driver(EMPTY), ipam(MISSING), "new", None, None),
        # one file lost next to data: refused, naming both files and what the other holds
        (
            driver(nets=1),
            ipam(MISSING),
            None,
            f"{IPAM} is missing, but {DRIVER} still holds 1 network and 1 endpoint:",
            None,
        ),
        (
            driver(nets=2),
            ipam(EMPTY),
            None,
            f"{IPAM} is empty (0 bytes), but {DRIVER} still holds 2 networks and 2 endpoints",
            None,
        ),
        (
            driver(EMPTY),
            ipam(pools=1),
            None,
            f"{DRIVER} is empty (0 bytes), but {IPAM} still holds 1 pool and 2 allocations",
            None,
        ),
        # one file lost next to a file that holds nothing: warned, the other's ID kept
        (driver(MISSING), ipam(state_id="a"), "a", None, f"{DRIVER} is missing and {IPAM}"),
        (driver(state_id="b"), ipam(EMPTY), "b", None, f"{IPAM} is empty (0 bytes) and"),
        (driver(MISSING), ipam(), "new", None, f"{DRIVER} is missing and {IPAM} holds nothing"),
        # both present: same ID, older files adopting one, or two state directories
        (driver(state_id="a", nets=1), ipam(state_id="a", pools=1), "a", None, None),
        (driver(nets=1), ipam(pools=1), "new", None, None),
        (driver(state_id="a", nets=1), ipam(pools=1), "a", None, None),
        (driver(nets=1), ipam(state_id="b", pools=1), "b", None, None),
        (
            driver(state_id="a"),
            ipam(state_id="b"),
            None,
            f"{DRIVER} and {IPAM} belong to different pymacvlan state directories "
            "(state IDs a and b)",
            None,
        ),
    ],
)
def test_check_state(
    d: File, i: File, state_id: str | None, refusal: str | None, warning: str | None
) -> None:
    verdict = check_state(d, i, lambda: "new")
    if refusal is None:
        assert verdict.refusal is None
        assert verdict.state_id == state_id
    else:
        assert verdict.refusal is not None
        assert verdict.refusal.startswith(refusal), verdict.refusal
        assert verdict.refusal.endswith("see docs/install.md#troubleshooting")
    if warning is None:
        assert verdict.warnings == ()
    else:
        assert len(verdict.warnings) == 1
        assert verdict.warnings[0].startswith(warning), verdict.warnings


def test_a_refusal_says_how_to_restore_and_how_to_start_over() -> None:
    verdict = check_state(driver(nets=1), ipam(MISSING), lambda: "new")
    assert verdict.refusal is not None
    assert "restore ipam.sqlite3 from a backup" in verdict.refusal
    assert "move both files aside" in verdict.refusal
    assert "docker network rm" in verdict.refusal


@pytest.mark.parametrize(
    ("holds", "text"),
    [
        ((), "nothing"),
        ((("network", 0), ("endpoint", 0)), "nothing"),
        ((("network", 1), ("endpoint", 0)), "1 network"),
        ((("network", 1), ("endpoint", 3)), "1 network and 3 endpoints"),
        ((("pool", 2), ("allocation", 1), ("block", 5)), "2 pools, 1 allocation and 5 blocks"),
    ],
)
def test_describe(holds: tuple[tuple[str, int], ...], text: str) -> None:
    assert describe(holds) == text


def ep(n: int, address: str) -> EndpointAddress:
    return (f"net{n}".ljust(64, "0"), f"ep{n}".ljust(64, "0"), ipaddress.ip_interface(address))


def test_an_endpoint_address_ipam_lacks_is_reported_only_where_ipam_holds_the_subnet() -> None:
    held = {"192.0.2.0/24": frozenset({"192.0.2.1", "192.0.2.2"}), "2001:db8::/64": frozenset()}
    endpoints = [
        ep(1, "192.0.2.2/24"),  # held: fine
        ep(2, "192.0.2.3/24"),  # lacking: reported
        ep(3, "198.51.100.7/24"),  # a subnet IPAM does not know (another IPAM driver): skipped
        ep(4, "2001:db8:0:0::a/64"),  # lacking, in a subnet written another way: reported
        ep(5, "192.0.2.3/25"),  # another prefix: not the same subnet, skipped
    ]
    lines = unheld_endpoint_addresses(endpoints, held, IPAM)
    assert lines == [
        f"endpoint ep2000000000 of network net200000000 has 192.0.2.3/24, but {IPAM} does not "
        "hold that address: it may be handed out to another container; restore the file from a "
        "backup, or reconnect the container",
        f"endpoint ep4000000000 of network net400000000 has 2001:db8::a/64, but {IPAM} does "
        "not hold that address: it may be handed out to another container; restore the file "
        "from a backup, or reconnect the container",
    ]


def test_reported_disagreements_are_bounded() -> None:
    held = {"198.18.0.0/15": frozenset[str]()}
    endpoints = [ep(n, f"198.18.0.{n}/15") for n in range(1, 101)]
    lines = unheld_endpoint_addresses(endpoints, held, IPAM, limit=3)
    assert len(lines) == 4
    assert lines[-1] == f"and 97 more endpoint addresses {IPAM} lacks"
