"""Stale allocations: the pure decision (ipam/stale.py) and the release that refuses an
allocation that changed since it was judged (IpamService.release_judged)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ipam.addresses import Subnet, parse_address, parse_subnet
from ipam.records import AllocationRecord, Kind
from ipam.service import IpamService
from ipam.stale import Outcome, Verdict, Why, Witness, judge
from tests.unit.ipam.dhcp_helpers import SUBNET, DhcpLab, dhcp_network
from tests.unit.ipam.helpers import GATEWAY, Clock, ServiceFactory, endpoint

NOW = 1_000_000.0
GRACE = 600.0
V4 = parse_subnet("192.0.2.0/24")
V6 = parse_subnet("2001:db8::/64")


def rec(
    address: str,
    kind: Kind = Kind.DYNAMIC,
    age: float = 3600.0,
    subnet: Subnet = V4,
    endpoint: str | None = None,
) -> AllocationRecord:
    return AllocationRecord(
        table_key=f"local/default/{subnet}",
        address=address,
        pool_id=f"local/default/{subnet}",
        kind=kind,
        refcount=1,
        mac=None,
        endpoint=endpoint,
        allocated_at=NOW - age,
    )


def ints(*addresses: str) -> frozenset[int]:
    return frozenset(parse_address(a)[1] for a in addresses)


def docker(*in_use: str) -> Witness:
    return Witness("Docker", ints(*in_use))


def driver(*in_use: str, incomplete: str | None = None) -> Witness:
    return Witness("the driver", ints(*in_use), incomplete)


def one(
    record: AllocationRecord,
    *witnesses: Witness,
    grace: float = GRACE,
    asked_at: float | None = None,
) -> Verdict:
    subnet = V6 if ":" in record.address else V4
    [verdict] = judge([record], {subnet: witnesses}, now=NOW, grace=grace, asked_at=asked_at)
    return verdict


# ------------------------------------------------------------------ the decision


@pytest.mark.parametrize(
    ("kind", "why"),
    [(Kind.GATEWAY, Why.GATEWAY), (Kind.RESERVED, Why.RESERVED)],
)
def test_gateways_and_reserved_addresses_are_never_stale(kind: Kind, why: Why) -> None:
    verdict = one(rec("192.0.2.1", kind, age=1e6), docker(), grace=0)
    assert (verdict.outcome, verdict.why) == (Outcome.KEPT, why)
    assert "never collected" in verdict.reason


@pytest.mark.parametrize("kind", [Kind.DYNAMIC, Kind.STATIC])
def test_an_old_allocation_that_a_complete_witness_does_not_list_is_stale(kind: Kind) -> None:
    verdict = one(rec("192.0.2.7", kind), docker("192.0.2.1", "192.0.2.8"))
    assert (verdict.outcome, verdict.why) == (Outcome.STALE, Why.UNUSED)
    assert verdict.reason == "unused: Docker lists no user of it"
    assert verdict.age == 3600.0


@pytest.mark.parametrize(
    ("age", "outcome"),
    [(0.0, Outcome.KEPT), (599.9, Outcome.KEPT), (600.0, Outcome.STALE), (-5.0, Outcome.KEPT)],
)
def test_nothing_younger_than_the_grace_period_is_stale(age: float, outcome: Outcome) -> None:
    verdict = one(rec("192.0.2.7", age=age), docker())
    assert verdict.outcome is outcome
    if outcome is Outcome.KEPT:
        assert verdict.why is Why.YOUNG
        assert "within the grace period of 600 s" in verdict.reason


def test_an_allocation_made_after_docker_was_asked_is_kept_even_without_grace() -> None:
    record = rec("192.0.2.7", age=5.0)
    kept = one(record, docker(), grace=0, asked_at=NOW - 6.0)
    assert (kept.outcome, kept.why) == (Outcome.KEPT, Why.AFTER_ASKED)
    assert one(record, docker(), grace=0, asked_at=NOW - 4.0).outcome is Outcome.STALE


def test_an_address_in_use_is_kept() -> None:
    verdict = one(rec("192.0.2.7"), docker("192.0.2.7"), driver("192.0.2.7"))
    assert (verdict.outcome, verdict.why) == (Outcome.KEPT, Why.IN_USE)
    assert verdict.reason == "in use according to Docker and the driver"


def test_an_incomplete_witness_confirms_use_but_its_silence_proves_nothing() -> None:
    partial = driver("192.0.2.8", incomplete="another driver's network uses the pool")
    used = one(rec("192.0.2.8"), partial)
    assert (used.outcome, used.why) == (Outcome.KEPT, Why.IN_USE)
    unknown = one(rec("192.0.2.7"), partial, Witness("Docker", frozenset(), "Docker is down"))
    assert (unknown.outcome, unknown.why) == (Outcome.SUSPECT, Why.UNCERTAIN)
    assert unknown.reason == ("not certain: another driver's network uses the pool; Docker is down")


def test_without_any_witness_nothing_is_certain() -> None:
    verdict = one(rec("192.0.2.7"))
    assert (verdict.outcome, verdict.why) == (Outcome.SUSPECT, Why.UNCERTAIN)


def test_the_driver_alone_is_enough_when_it_is_complete() -> None:
    verdict = one(rec("192.0.2.7"), driver("192.0.2.8"))
    assert verdict.outcome is Outcome.STALE
    assert verdict.reason == "unused: the driver lists no user of it"


def test_witnesses_that_disagree_make_it_suspect_never_stale() -> None:
    # Docker (complete) does not list it, but a pymacvlan endpoint still holds it.
    partial = driver("192.0.2.7", incomplete="not every network is ours")
    verdict = one(rec("192.0.2.7"), docker(), partial)
    assert (verdict.outcome, verdict.why) == (Outcome.SUSPECT, Why.DISAGREE)
    assert verdict.reason == "the driver uses it but Docker does not: not freed"


def test_ipv6_addresses_are_judged_in_their_own_subnet() -> None:
    record = rec("2001:db8::a", subnet=V6)
    assert one(record, Witness("Docker", ints("2001:db8::b"))).outcome is Outcome.STALE
    assert one(record, Witness("Docker", ints("2001:db8:0::a"))).outcome is Outcome.KEPT
    # A witness of another subnet says nothing about this one.
    [verdict] = judge([record], {V4: [docker()]}, now=NOW, grace=GRACE)
    assert verdict.outcome is Outcome.SUSPECT


# ----------------------------------------------------- releasing what was judged


@pytest.fixture
async def quarantined(make_service: ServiceFactory) -> IpamService:
    return await make_service(quarantine=300.0)


async def _pool(service: IpamService) -> str:
    grant = await service.request_pool(
        address_space="local", pool="192.0.2.0/24", sub_pool="", options={}, v6=False
    )
    await service.request_address(pool_id=grant.pool_id, address="192.0.2.1", options=GATEWAY)
    return grant.pool_id


def _judged(service: IpamService, address: str) -> AllocationRecord:
    [record] = [a for a in service.allocations() if a.address == address]
    return record


async def test_a_judged_allocation_is_released_like_release_address_does(
    quarantined: IpamService,
) -> None:
    service = quarantined
    pool_id = await _pool(service)
    grant = await service.request_address(pool_id=pool_id, address="", options=endpoint("web"))
    address = grant.address.split("/")[0]
    assert await service.release_judged(_judged(service, address))
    assert address not in {a.address for a in service.allocations()}
    # ... into quarantine, remembered for its endpoint, as any release.
    resting = service.allocator.tables["local/default/192.0.2.0/24"].quarantine
    assert [r.endpoint for r in resting.values()] == ["web"]
    # Judged again, it is gone: refused, nothing happens.
    assert not await service.release_judged(_judged_copy(address, pool_id))


def _judged_copy(address: str, pool_id: str) -> AllocationRecord:
    return AllocationRecord(
        "local/default/192.0.2.0/24", address, pool_id, Kind.DYNAMIC, 1, None, "web", 0.0
    )


async def test_an_address_taken_again_since_it_was_judged_is_not_released(
    service: IpamService, clock: Clock
) -> None:
    """The race: gc judges 192.0.2.50 stale, then Docker releases it and a new container asks
    for it (--ip) before gc frees it. The new holder must keep it."""
    pool_id = await _pool(service)
    await service.request_address(pool_id=pool_id, address="192.0.2.50", options=endpoint("old"))
    judged = _judged(service, "192.0.2.50")
    await service.release_address(pool_id=pool_id, address="192.0.2.50")
    clock.advance(1)
    await service.request_address(pool_id=pool_id, address="192.0.2.50", options=endpoint("new"))
    assert not await service.release_judged(judged)
    assert _judged(service, "192.0.2.50").endpoint == "new"
    # Even within one clock tick: another endpoint (or kind) is another allocation.
    renamed = judged._replace(allocated_at=_judged(service, "192.0.2.50").allocated_at)
    assert not await service.release_judged(renamed)
    assert _judged(service, "192.0.2.50").endpoint == "new"


@pytest.fixture
async def lab(clock: Clock) -> AsyncIterator[DhcpLab]:
    lab = DhcpLab(clock)
    yield lab
    await lab.close()


async def test_a_judged_dhcp_lease_is_given_back_to_the_lans_server(lab: DhcpLab) -> None:
    service = await lab.open()
    pool_id = await dhcp_network(service)
    grant = await service.request_address(pool_id=pool_id, address="", options=endpoint("web"))
    address = grant.address.split("/")[0]
    assert await service.release_judged(_judged(service, address))
    assert lab.server.verbs() == ["acquire", "release"]
    assert service.dhcp_leases() == ()
    assert not lab.store.dhcp_leases
    assert service.dhcp_mac(SUBNET, address) is None


async def test_a_dhcp_lease_taken_again_since_it_was_judged_is_kept(
    lab: DhcpLab, clock: Clock
) -> None:
    service = await lab.open()
    pool_id = await dhcp_network(service)
    grant = await service.request_address(pool_id=pool_id, address="", options=endpoint("web"))
    address = grant.address.split("/")[0]
    judged = _judged(service, address)
    await service.release_address(pool_id=pool_id, address=address)
    clock.advance(1)
    again = await service.request_address(pool_id=pool_id, address="", options=endpoint("web"))
    assert again.address == grant.address  # the server leases the same address to the client
    assert not await service.release_judged(judged)
    assert lab.server.verbs() == ["acquire", "release", "acquire"]
    assert len(service.dhcp_leases()) == 1
    assert len(lab.store.dhcp_leases) == 1
