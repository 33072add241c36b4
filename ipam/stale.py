"""Which allocations are stale: held by the IPAM, used by nobody. A pure decision, no I/O.

An allocation outlives its container when a `ReleaseAddress` never came (dockerd crashed between
removing the endpoint and releasing its address, a host lost a container). Freeing a live address
hands one container's address to another, so the rule is: free only what is certain.

The judge is told, per subnet, what the witnesses say: which addresses something still uses there.
Docker's engine (asked by the command line, never by the daemon) and the network driver's own
endpoints are the two witnesses the plugin has; this module knows neither, only `Witness` values.
A witness is *complete* for a subnet when every user of the subnet is one it can see; otherwise
it can confirm that an address is in use, but its silence proves nothing.

Rules, in this order (the first that applies decides):

* gateways and reserved (`--aux-address`; `--ip` on Docker < 29, which cannot be told apart from
  one) are infrastructure: never stale;
* younger than the grace period: kept (its `CreateEndpoint` may still be on its way);
* allocated at or after the moment the witnesses were asked: kept (they could not know it);
* used, according to every witness that is complete: kept; used according to one witness while
  a complete one does not list it: the two disagree, so suspect, never freed;
* no witness is complete for its subnet: suspect, with the reasons;
* otherwise stale: no complete witness lists it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from ipam.addresses import Subnet, address_to_int
from ipam.options import parse_table_key
from ipam.records import AllocationRecord, Kind

DEFAULT_GRACE_SECONDS = 600.0  # an address requested minutes ago whose endpoint is not there yet


class Outcome(StrEnum):
    STALE = "stale"  # certain: nobody uses it
    SUSPECT = "suspect"  # perhaps unused, but not certain: never freed
    KEPT = "kept"


class Why(StrEnum):
    """Why an allocation is kept (or what makes it suspect or stale), for counting."""

    GATEWAY = "gateway"
    RESERVED = "reserved"
    YOUNG = "young"
    AFTER_ASKED = "after_asked"
    IN_USE = "in_use"
    DISAGREE = "disagree"
    UNCERTAIN = "uncertain"
    UNUSED = "unused"


@dataclass(frozen=True)
class Witness:
    """What one source says about one subnet.

    `in_use`: the addresses (integers of the subnet's family) it sees in use there;
    `incomplete`: None when it sees every user of the subnet, else why not (a sentence)."""

    name: str  # "Docker", "the network driver": as messages name it
    in_use: frozenset[int]
    incomplete: str | None = None

    @property
    def complete(self) -> bool:
        return self.incomplete is None


@dataclass(frozen=True)
class Verdict:
    allocation: AllocationRecord
    subnet: Subnet
    outcome: Outcome
    why: Why
    reason: str  # a sentence for the operator
    age: float  # seconds since it was allocated


def judge(
    allocations: Iterable[AllocationRecord],
    witnesses: Mapping[Subnet, Sequence[Witness]],
    *,
    now: float,
    grace: float,
    asked_at: float | None = None,
) -> list[Verdict]:
    """A verdict for every allocation (see the module docstring), in the order given."""
    verdicts = []
    for record in allocations:
        subnet = parse_table_key(record.table_key)[2]
        verdicts.append(_judge_one(record, subnet, witnesses.get(subnet, ()), now, grace, asked_at))
    return verdicts


def _judge_one(
    record: AllocationRecord,
    subnet: Subnet,
    witnesses: Sequence[Witness],
    now: float,
    grace: float,
    asked_at: float | None,
) -> Verdict:
    age = now - record.allocated_at

    def verdict(outcome: Outcome, why: Why, reason: str) -> Verdict:
        return Verdict(record, subnet, outcome, why, reason, age)

    if record.kind is Kind.GATEWAY:
        return verdict(Outcome.KEPT, Why.GATEWAY, "a gateway: never collected")
    if record.kind is Kind.RESERVED:
        return verdict(
            Outcome.KEPT,
            Why.RESERVED,
            "a reserved address (--aux-address, or --ip on Docker < 29): never collected",
        )
    if age < grace:
        return verdict(
            Outcome.KEPT,
            Why.YOUNG,
            f"allocated {_seconds(age)} ago, within the grace period of {_seconds(grace)}: "
            "its endpoint may still be on its way",
        )
    if asked_at is not None and record.allocated_at >= asked_at:
        return verdict(
            Outcome.KEPT, Why.AFTER_ASKED, "allocated after Docker was asked: it could not know"
        )
    value = address_to_int(subnet.family, record.address)
    users = [w for w in witnesses if value in w.in_use]
    complete = [w for w in witnesses if w.complete]
    silent = [w for w in complete if value not in w.in_use]
    if users and silent:
        return verdict(
            Outcome.SUSPECT,
            Why.DISAGREE,
            f"{_names(users)} {'uses' if len(users) == 1 else 'use'} it but "
            f"{_names(silent)} {'does' if len(silent) == 1 else 'do'} not: not freed",
        )
    if users:
        return verdict(Outcome.KEPT, Why.IN_USE, f"in use according to {_names(users)}")
    if not complete:
        reasons = "; ".join(w.incomplete or "" for w in witnesses) or (
            "nothing that could say whether it is used was asked"
        )
        return verdict(Outcome.SUSPECT, Why.UNCERTAIN, f"not certain: {reasons}")
    return verdict(
        Outcome.STALE,
        Why.UNUSED,
        f"unused: {_names(complete)} {'lists' if len(complete) == 1 else 'list'} no user of it",
    )


def _names(witnesses: Sequence[Witness]) -> str:
    return " and ".join(w.name for w in witnesses)


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"
