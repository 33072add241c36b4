"""Leases kept alive in the background: renewal at T1, rebinding at T2, expiry, NAK, a restart of
the service, and a close that leaves nothing running. The clock is the test's (moved by hand);
the renewal loop looks at it every few milliseconds. The scripted server grants 600 s leases
with T1 = 300 s and T2 = 525 s; retries are spaced by RFC 2131 with a 60 s floor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ipam.records import DhcpLeaseRecord
from ipam.service import IpamService
from tests.unit.ipam.dhcp_helpers import DhcpLab, dhcp_network, endpoint, settle, until
from tests.unit.ipam.helpers import Clock

LEASED = "192.0.2.100"


@pytest.fixture
async def lab(clock: Clock) -> AsyncIterator[DhcpLab]:
    lab = DhcpLab(clock)
    yield lab
    await lab.close()


async def leased(lab: DhcpLab) -> tuple[IpamService, float]:
    """A service with one container's lease; and when it was acquired."""
    service = await lab.open()
    pool_id = await dhcp_network(service)
    grant = await service.request_address(pool_id=pool_id, address="", options=endpoint("web"))
    assert grant.address == f"{LEASED}/24"
    return service, lab.clock.now


def stored(lab: DhcpLab) -> DhcpLeaseRecord:
    """The lease as the store holds it (what survives a restart)."""
    (record,) = lab.store.dhcp_leases.values()
    return record


async def logged(lab: DhcpLab, event: str, count: int = 1) -> list[tuple[str, dict[str, object]]]:
    """The lines logged as `event`, once there are `count` (the line follows the commit)."""
    await until(lambda: len(lab.events.named(event)) >= count)
    await settle()
    return lab.events.named(event)


def calls(lab: DhcpLab, verb: str) -> int:
    return len(lab.server.of(verb))


async def test_a_lease_is_renewed_at_t1_and_the_new_lease_is_committed(lab: DhcpLab) -> None:
    _, t0 = await leased(lab)
    lab.clock.now = t0 + 299
    await settle()
    assert calls(lab, "renew") == 0
    lab.clock.now = t0 + 300
    await until(lambda: stored(lab).acquired_at == t0 + 300)
    (renewal,) = lab.server.of("renew")
    assert renewal.address == LEASED
    assert (stored(lab).state, stored(lab).problem) == ("bound", None)
    # A routine renewal is logged at debug level (an operator checking renewals turns it on).
    ((level, fields),) = await logged(lab, "DHCP lease renewed")
    assert (level, fields["address"], fields["state"]) == ("debug", LEASED, "bound")
    # The next renewal is at the new T1.
    lab.clock.now = t0 + 599
    await settle()
    assert calls(lab, "renew") == 1
    lab.clock.now = t0 + 600
    await until(lambda: calls(lab, "renew") == 2)


async def test_unanswered_renewals_are_retried_then_rebound_at_t2(lab: DhcpLab) -> None:
    _, t0 = await leased(lab)
    lab.server.silent = True
    lab.clock.now = t0 + 300
    await until(lambda: stored(lab).state == "renewing")
    assert "the DHCP server 192.0.2.2 did not answer within" in (stored(lab).problem or "")
    ((level, fields),) = await logged(lab, "DHCP renewal failed")
    assert (level, fields["address"], fields["mac"]) == ("warning", LEASED, stored(lab).mac)

    # RFC 2131 §4.4.5: again after half the time left to T2 (225 s / 2), not before.
    lab.clock.now = t0 + 412
    await settle()
    assert calls(lab, "renew") == 1
    lab.clock.now = t0 + 412.5
    await until(lambda: calls(lab, "renew") == 2)

    # T2: rebinding (broadcast), and it is recorded.
    lab.clock.now = t0 + 525
    await until(lambda: stored(lab).state == "rebinding")
    assert calls(lab, "rebind") == 1
    assert "no DHCP server answered within" in (stored(lab).problem or "")

    # A server answers the next rebinding (after the 60 s floor): bound again, and said so.
    lab.server.silent = False
    lab.clock.now = t0 + 584
    await settle()
    assert calls(lab, "rebind") == 1
    lab.clock.now = t0 + 585
    await until(lambda: stored(lab).state == "bound")
    assert (stored(lab).acquired_at, stored(lab).problem) == (t0 + 585, None)
    assert [level for level, _ in await logged(lab, "DHCP lease renewed")] == ["info"]


async def test_an_expired_lease_is_reported_and_asked_for_again_until_it_is_back(
    lab: DhcpLab,
) -> None:
    service, t0 = await leased(lab)
    lab.server.silent = True
    for step in (300, 412.5, 525, 585):  # renewals and rebindings, all unanswered
        lab.clock.now = t0 + step
        await settle()
    lab.clock.now = t0 + 600
    await until(lambda: stored(lab).state == "expired")
    ((level, fields),) = await logged(lab, "DHCP lease expired")
    assert level == "error"
    assert (fields["address"], fields["mac"], fields["endpoint"]) == (
        LEASED,
        stored(lab).mac,
        "web",
    )
    assert "no DHCP server answered within" in str(fields["problem"])
    assert "asking the DHCP server for it again every 60 s" in str(fields["action"])
    # At once: the same address is asked for again.
    await until(lambda: calls(lab, "acquire") == 2)
    assert lab.server.calls[-1].address == LEASED
    # Every retry interval after that; the server is back on the second try.
    lab.server.silent = False
    lab.clock.now = t0 + 659
    await settle()
    assert calls(lab, "acquire") == 2
    lab.clock.now = t0 + 660
    await until(lambda: stored(lab).state == "bound")
    assert stored(lab).acquired_at == t0 + 660
    assert [level for level, _ in await logged(lab, "DHCP lease regained")] == ["info"]
    assert [r.state for r in service.dhcp_leases()] == ["bound"]


async def test_a_nak_is_reported_with_the_servers_reason_and_the_address_asked_for_again(
    lab: DhcpLab,
) -> None:
    _, t0 = await leased(lab)
    lab.server.nak = "lease revoked by the administrator"
    lab.clock.now = t0 + 300
    await until(lambda: stored(lab).state == "refused")
    assert stored(lab).problem == "the DHCP server refused it: lease revoked by the administrator"
    ((level, fields),) = await logged(lab, "DHCP lease refused")
    assert (level, fields["address"], fields["mac"]) == ("error", LEASED, stored(lab).mac)
    assert "lease revoked by the administrator" in str(fields["problem"])

    lab.server.nak = None
    lab.clock.now = t0 + 360
    await until(lambda: stored(lab).state == "bound")
    (acquire,) = lab.server.of("acquire")[1:]
    assert acquire.address == LEASED
    assert len(lab.events.named("DHCP lease refused")) == 1


async def test_a_server_offering_another_address_leaves_the_lease_lost_and_gives_it_back(
    lab: DhcpLab,
) -> None:
    _, t0 = await leased(lab)
    lab.server.nak = "no"
    lab.clock.now = t0 + 300
    await until(lambda: stored(lab).state == "refused")
    lab.server.nak = None
    lab.server.offer = "192.0.2.177"
    lab.clock.now = t0 + 360
    await until(lambda: calls(lab, "release") == 1)
    assert lab.server.calls[-1].address == "192.0.2.177"
    await until(lambda: "offers 192.0.2.177 instead" in (stored(lab).problem or ""))
    assert stored(lab).state == "refused"


async def test_a_restarted_service_resumes_renewals_and_renews_an_overdue_lease_at_once(
    lab: DhcpLab,
) -> None:
    service, t0 = await leased(lab)
    await service.close()
    lab.clock.now = t0 + 400  # the daemon was down across T1
    await lab.open()
    await until(lambda: calls(lab, "renew") == 1)
    assert lab.server.calls[-1].address == LEASED
    await until(lambda: stored(lab).acquired_at == t0 + 400)


async def test_a_lan_that_cannot_be_asked_yet_is_tried_again_soon_not_at_the_floor(
    lab: DhcpLab,
) -> None:
    """At start-up the IPAM loads before the driver has its networks: an overdue renewal finds
    no link for the subnet. Nothing reached a server, so it is tried again after 10 s."""
    service, t0 = await leased(lab)
    await service.close()
    lab.clock.now = t0 + 400
    lab.server.unreachable = "no network on 192.0.2.0/24 is loaded yet"
    await lab.open()
    await until(lambda: stored(lab).state == "renewing")
    assert (
        stored(lab).problem
        == "the LAN could not be asked: no network on 192.0.2.0/24 is loaded yet"
    )
    lab.server.unreachable = None
    lab.clock.now = t0 + 409
    await settle()
    assert calls(lab, "renew") == 1
    lab.clock.now = t0 + 410
    await until(lambda: stored(lab).state == "bound")
    assert calls(lab, "renew") == 2


async def test_attaching_a_lan_retries_what_failed_for_want_of_one_at_once(lab: DhcpLab) -> None:
    service, t0 = await leased(lab)
    lab.server.unreachable = "the network's parent is down"
    lab.clock.now = t0 + 300
    await until(lambda: stored(lab).state == "renewing")
    lab.server.unreachable = None
    service.attach_lan(lab.server, lab.events)
    await until(lambda: stored(lab).state == "bound")
    assert stored(lab).acquired_at == t0 + 300


async def test_a_restart_resumes_a_lost_lease_with_a_new_attempt_at_once(lab: DhcpLab) -> None:
    service, t0 = await leased(lab)
    lab.server.nak = "no"
    lab.clock.now = t0 + 300
    await until(lambda: stored(lab).state == "refused")
    await service.close()
    lab.server.nak = None
    await lab.open()
    await until(lambda: stored(lab).state == "bound")


async def test_a_released_lease_is_not_renewed(lab: DhcpLab) -> None:
    service, t0 = await leased(lab)
    pool_id = next(iter(lab.store.leases))
    await service.release_address(pool_id=pool_id, address=LEASED)
    lab.clock.now = t0 + 10_000
    await settle()
    assert lab.server.verbs() == ["acquire", "release"]


async def test_a_lease_released_during_its_renewal_is_not_written_back_and_is_given_back(
    lab: DhcpLab,
) -> None:
    service, t0 = await leased(lab)
    pool_id = next(iter(lab.store.leases))
    lab.server.hang = True
    lab.clock.now = t0 + 300
    await until(lambda: lab.server.hanging == 1)
    await service.release_address(pool_id=pool_id, address=LEASED)
    lab.server.resume()  # the server answers the renewal now: it extends a lease nobody holds
    await until(lambda: lab.server.verbs() == ["acquire", "renew", "release", "release"])
    assert not lab.store.dhcp_leases
    assert not lab.server.bindings
    assert service.dhcp_leases() == ()


async def test_close_stops_the_loop_and_every_renewal_in_flight(lab: DhcpLab) -> None:
    service, t0 = await leased(lab)
    lab.server.hang = True
    lab.clock.now = t0 + 300
    await until(lambda: lab.server.hanging == 1)
    await service.close()
    assert lab.server.hanging == 0
    left = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("pymacvlan-dhcp")]
    assert left == []


async def test_many_leases_due_together_renew_at_most_parallel_at_a_time(lab: DhcpLab) -> None:
    service = await lab.open()
    pool_id = await dhcp_network(service)
    for n in range(20):
        await service.request_address(pool_id=pool_id, address="", options=endpoint(f"c{n}"))
    lab.server.hang = True  # the first renewals wait for their exchange timeout
    lab.clock.advance(300)
    await until(lambda: lab.server.hanging == 8)
    await settle()
    assert lab.server.hanging == 8  # DhcpSettings.parallel
    lab.server.hang = False
    await until(lambda: calls(lab, "renew") == 20)

    def renewed() -> int:
        return sum(r.acquired_at == lab.clock.now for r in service.dhcp_leases())

    await until(lambda: renewed() == 12)
    assert sorted(r.state for r in service.dhcp_leases()) == ["bound"] * 12 + ["renewing"] * 8
