"""Asking the LAN before handing an address out (issue 9, part 1), through the IPAM service with a
scripted LAN: which requests are probed, what an answer does to the hand-out, what the user is
told, what is remembered (and for how long), and what the prefetch saves a `docker run`."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from ipam import probing
from ipam.errors import AddressInUse, NoAvailableAddresses
from ipam.lan import DhcpGrant, DhcpIdentity, LanUnavailable, PoolPlace
from ipam.service import IpamService
from ipam.store import MemoryStore
from plugin.state_files import StateFiles
from tests.unit.ipam.helpers import GATEWAY, Clock, endpoint, ip, make_settings

SUBNET = "192.0.2.0/24"
DEVICE = "02:00:5e:10:00:01"  # a locally administered MAC: "a device pymacvlan did not know"
OTHER = "02:00:5e:10:00:02"


class ScriptedLan:
    """A LAN whose devices are a table (address -> MAC); it records every question."""

    def __init__(self, answers: Mapping[str, str] | None = None) -> None:
        self.answers = dict(answers or {})
        self.asked: list[str] = []
        # The task the test's requests run in: what it asks, a request waits for.
        self.requester: asyncio.Task[object] | None = None
        self.asked_by_requests: list[str] = []
        self.reserved: list[str] = []  # the questions asked with reserved=True
        self.unavailable: str | None = None  # LanUnavailable with this text, when set
        self.attempts = 0  # questions, answered or not
        self.delay = 0.0  # seconds each answer takes (a real probe waits for silence)

    async def holder(
        self, place: PoolPlace, address: str, wait: float, *, reserved: bool = False
    ) -> str | None:
        assert ipaddress.ip_address(address) in ipaddress.ip_network(place.subnet)
        assert 0 < wait <= 5
        self.attempts += 1
        await asyncio.sleep(self.delay)  # a real probe yields; so does this one
        if self.unavailable is not None:
            raise LanUnavailable(self.unavailable)
        self.asked.append(address)
        if asyncio.current_task() is self.requester:
            self.asked_by_requests.append(address)
        if reserved:
            self.reserved.append(address)
        return self.answers.get(address)

    def times_asked(self, address: str) -> int:
        return self.asked.count(address)

    async def dhcp_acquire(
        self, place: PoolPlace, identity: DhcpIdentity, requested: str | None
    ) -> DhcpGrant:
        raise LanUnavailable("no DHCP in these tests")

    async def dhcp_renew(
        self, place: PoolPlace, identity: DhcpIdentity, grant: DhcpGrant, *, rebinding: bool
    ) -> DhcpGrant:
        raise LanUnavailable("no DHCP in these tests")

    async def dhcp_release(
        self, place: PoolPlace, identity: DhcpIdentity, grant: DhcpGrant
    ) -> None:
        raise LanUnavailable("no DHCP in these tests")


class Events:
    """The event sink the daemon logs from."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, object]]] = []

    def __call__(self, level: str, event: str, fields: Mapping[str, object]) -> None:
        self.seen.append((level, event, dict(fields)))

    def named(self, event: str) -> list[dict[str, object]]:
        return [fields for _, name, fields in self.seen if name == event]


class Lab:
    """A service on a store, with its scripted LAN and its events; more services on the same
    store stand for the daemon after a restart."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.store = MemoryStore()
        self.lan = ScriptedLan()
        self.events = Events()
        self.services: list[IpamService] = []

    async def service(self) -> IpamService:
        service = IpamService(self.store, make_settings(), self.clock)
        service.attach_lan(self.lan, events=self.events)
        await service.load()
        self.services.append(service)
        return service

    async def close(self) -> None:
        for service in self.services:
            await service.close()


@pytest.fixture
async def lab(clock: Clock) -> AsyncIterator[Lab]:
    lab = Lab(clock)
    yield lab
    await lab.close()


async def pool(service: IpamService, subnet: str = SUBNET, **options: str) -> str:
    grant = await service.request_pool(
        address_space="local", pool=subnet, sub_pool="", options=options, v6=":" in subnet
    )
    return grant.pool_id


async def addr(
    service: IpamService, pool_id: str, address: str = "", options: Mapping[str, str] = {}
) -> str:
    grant = await service.request_address(pool_id=pool_id, address=address, options=options)
    return grant.address


async def prefetched(service: IpamService, lan: ScriptedLan, *addresses: str) -> None:
    """Wait (a few loop turns at most) until the prefetch has asked about `addresses`."""
    for _ in range(1000):
        if all(a in lan.asked for a in addresses):
            # One more turn: the task records the answers after the last one arrived.
            await asyncio.sleep(0.001)
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"the prefetch never asked about {addresses}: asked {lan.asked}")


# ------------------------------------------------------------ automatic requests


async def test_an_answering_address_is_skipped_recorded_and_the_next_one_handed_out(
    lab: Lab,
) -> None:
    lab.lan.answers = {"192.0.2.1": DEVICE}
    service = await lab.service()
    pool_id = await pool(service)

    assert await addr(service, pool_id, "", endpoint("c1")) == "192.0.2.2/24"

    assert lab.lan.times_asked("192.0.2.1") == 1
    assert service.lan_conflicts() == [
        ("local/default/192.0.2.0/24", "192.0.2.1", DEVICE, lab.clock.now)
    ]
    # The daemon's log line names the address, the device and the pool.
    assert lab.events.named("address in use on the LAN") == [
        {"address": "192.0.2.1", "mac": DEVICE, "pool": SUBNET, "skipped": True}
    ]
    # Nobody holds it: it rests, marked as the device's, until it is probed again.
    assert ip("192.0.2.1") not in service.allocator.leases[pool_id].table.held


async def test_a_conflict_is_durable_and_rechecked_after_lan_recheck(lab: Lab) -> None:
    lab.lan.answers = {"192.0.2.1": DEVICE}
    service = await lab.service()
    pool_id = await pool(service, "192.0.2.0/29", lan_recheck="60")  # .1 to .6
    assert await addr(service, pool_id) == "192.0.2.2/29"
    await service.close()

    # The daemon restarts: the record is read back and the address is still skipped, unasked.
    restarted = await lab.service()
    assert [(a, mac) for _, a, mac, _ in restarted.lan_conflicts()] == [("192.0.2.1", DEVICE)]
    asked_before = lab.lan.times_asked("192.0.2.1")
    lab.clock.advance(59)
    assert await addr(restarted, pool_id) == "192.0.2.3/29"
    assert lab.lan.times_asked("192.0.2.1") == asked_before

    # lan_recheck later the device has gone: the address is free again, probed again (by the
    # request or by the prefetch ahead of it), and handed out when its turn comes.
    lab.lan.answers = {}
    lab.clock.advance(2)
    handed = [await addr(restarted, pool_id) for _ in range(4)]
    assert handed == ["192.0.2.4/29", "192.0.2.5/29", "192.0.2.6/29", "192.0.2.1/29"]
    assert restarted.lan_conflicts() == []
    assert lab.lan.times_asked("192.0.2.1") == asked_before + 1


async def test_a_conflict_survives_a_restart_on_disk(tmp_path: Path, clock: Clock) -> None:
    lan = ScriptedLan({"192.0.2.1": DEVICE})
    for attempt in range(2):
        service = IpamService.open_sqlite(tmp_path, make_settings(), clock, files=StateFiles())
        service.attach_lan(lan)
        await service.load()
        try:
            if attempt == 0:
                pool_id = await pool(service)
                assert await addr(service, pool_id) == "192.0.2.2/24"
            else:
                assert service.lan_conflicts() == [
                    ("local/default/192.0.2.0/24", "192.0.2.1", DEVICE, clock.now)
                ]
        finally:
            await service.close()


async def test_a_device_still_there_at_the_recheck_is_recorded_again_and_asked_once(
    lab: Lab,
) -> None:
    lab.lan.answers = {"192.0.2.1": DEVICE}
    service = await lab.service()
    pool_id = await pool(service, "192.0.2.0/30", lan_recheck="60")  # .1 and .2
    assert await addr(service, pool_id) == "192.0.2.2/30"
    lab.clock.advance(61)
    lab.lan.answers = {"192.0.2.1": OTHER}  # another device took it meanwhile
    asked = len(lab.lan.asked)
    with pytest.raises(NoAvailableAddresses) as caught:
        await addr(service, pool_id)  # .2 is held; .1 is the only candidate and answers again
    # One question, not one per attempt: a full pool is said at once, not after 8 waits.
    assert lab.lan.asked[asked:] == ["192.0.2.1"]
    assert str(caught.value) == (
        "no available address on pool 192.0.2.0/30: the candidates left are in use on the LAN "
        f"by devices pymacvlan did not give them to: 192.0.2.1 ({OTHER}); they are skipped for "
        "60 s (--ipam-opt lan_recheck)"
    )
    assert [(a, mac) for _, a, mac, _ in service.lan_conflicts()] == [("192.0.2.1", OTHER)]


async def test_ipv6_candidates_are_probed_too(lab: Lab) -> None:
    lab.lan.answers = {"2001:db8::1": DEVICE}
    service = await lab.service()
    pool_id = await pool(service, "2001:db8::/64")
    assert await addr(service, pool_id, "", endpoint("c1")) == "2001:db8::2/64"
    assert [(a, mac) for _, a, mac, _ in service.lan_conflicts()] == [("2001:db8::1", DEVICE)]


async def test_eight_answering_candidates_in_a_row_is_no_available_address(lab: Lab) -> None:
    lab.lan.answers = {f"192.0.2.{n}": DEVICE for n in range(1, 10)}
    service = await lab.service()
    pool_id = await pool(service, lan_recheck="600")
    with pytest.raises(NoAvailableAddresses) as caught:
        await addr(service, pool_id)
    found = ", ".join(f"192.0.2.{n} ({DEVICE})" for n in range(1, 9))
    assert str(caught.value) == (
        "no available address on pool 192.0.2.0/24: the last 8 candidates are in use on the LAN "
        f"by devices pymacvlan did not give them to: {found}; they are skipped for 600 s "
        "(--ipam-opt lan_recheck)"
    )
    assert not caught.value.caller_fault
    assert len(service.lan_conflicts()) == 8
    # Each is recorded: the next request goes on from there (.9 answers too, .10 is free).
    assert await addr(service, pool_id) == "192.0.2.10/24"


# ------------------------------------------------------------- specific requests


async def test_an_ip_that_answers_is_refused_naming_the_mac(lab: Lab) -> None:
    lab.lan.answers = {"192.0.2.50": DEVICE}
    service = await lab.service()
    pool_id = await pool(service)
    with pytest.raises(AddressInUse) as caught:
        await addr(service, pool_id, "192.0.2.50", endpoint("c1"))
    assert str(caught.value) == (
        f"Address already in use on the LAN: 192.0.2.50 answers from MAC {DEVICE}, a device "
        "pymacvlan did not give it to; choose another address, or create the network with "
        "--ipam-opt probe=dynamic to hand out --ip addresses unprobed"
    )
    assert not caught.value.caller_fault  # Docker shows it as a 500: not the request's form
    assert [(a, mac) for _, a, mac, _ in service.lan_conflicts()] == [("192.0.2.50", DEVICE)]
    # Not held: another --ip of a quiet address works, and so does asking for .50 once it is gone.
    assert await addr(service, pool_id, "192.0.2.51", endpoint("c1")) == "192.0.2.51/24"
    lab.lan.answers = {}
    assert await addr(service, pool_id, "192.0.2.50", endpoint("c2")) == "192.0.2.50/24"
    assert service.lan_conflicts() == []


async def test_with_probe_dynamic_an_ip_is_handed_out_unprobed(lab: Lab) -> None:
    lab.lan.answers = {"192.0.2.50": DEVICE, "192.0.2.1": DEVICE}
    service = await lab.service()
    pool_id = await pool(service, probe="dynamic")
    assert await addr(service, pool_id, "192.0.2.50", endpoint("c1")) == "192.0.2.50/24"
    assert "192.0.2.50" not in lab.lan.asked
    # Automatic addresses are still probed.
    assert await addr(service, pool_id, "", endpoint("c2")) == "192.0.2.2/24"


async def test_a_specific_address_without_endpoint_name_is_asked_as_reserved(lab: Lab) -> None:
    # Docker < 29: `--ip` and `--aux-address` look alike; the plugin's LAN answers None for the
    # network's aux addresses, so the IPAM tells it which kind of question this is.
    service = await lab.service()
    pool_id = await pool(service)
    service.probe_ahead(SUBNET)  # CreateNetwork: the network exists, containers come now
    assert await addr(service, pool_id, "192.0.2.60") == "192.0.2.60/24"
    assert lab.lan.reserved == ["192.0.2.60"]


async def test_aux_addresses_asked_while_the_network_is_created_are_not_probed(
    lab: Lab,
) -> None:
    # `docker network create --aux-address router2=192.0.2.2` (a device that answers on purpose)
    # on a subnet that another network on this host already carries: the LAN can be asked, but
    # an aux address must not be refused for answering.
    lab.lan.answers = {"192.0.2.2": DEVICE, "192.0.2.3": DEVICE}
    service = await lab.service()
    first = await pool(service)
    service.probe_ahead(SUBNET)  # the first network exists
    await asyncio.sleep(0.01)
    asked = len(lab.lan.asked)
    second = await service.request_pool(
        address_space="local", pool=SUBNET, sub_pool="192.0.2.128/25", options={}, v6=False
    )
    assert await addr(service, second.pool_id, "192.0.2.2") == "192.0.2.2/24"
    assert lab.lan.asked[asked:] == []
    service.probe_ahead(SUBNET)  # CreateNetwork of the second network
    # Afterwards the same kind of request is Docker < 29's `--ip`: probed, and refused.
    with pytest.raises(AddressInUse):
        await addr(service, first, "192.0.2.3")
    with pytest.raises(AddressInUse):
        await addr(service, second.pool_id, "192.0.2.3")


# ------------------------------------------------------------- never probed


async def test_gateways_are_never_probed(lab: Lab) -> None:
    lab.lan.answers = {"192.0.2.1": DEVICE, "192.0.2.254": DEVICE}
    service = await lab.service()
    pool_id = await pool(service)
    assert await addr(service, pool_id, "192.0.2.254", GATEWAY) == "192.0.2.254/24"
    assert await addr(service, pool_id, "", GATEWAY) == "192.0.2.1/24"  # Docker's default one
    assert lab.lan.asked == []
    assert service.lan_conflicts() == []


async def test_probe_off_never_asks_the_lan(lab: Lab) -> None:
    lab.lan.answers = {"192.0.2.1": DEVICE, "192.0.2.50": DEVICE}
    service = await lab.service()
    pool_id = await pool(service, probe="off")
    assert await addr(service, pool_id) == "192.0.2.1/24"
    assert await addr(service, pool_id, "192.0.2.50", endpoint("c1")) == "192.0.2.50/24"
    service.probe_ahead(SUBNET)  # CreateNetwork's prefetch skips it too
    await asyncio.sleep(0.01)
    assert lab.lan.asked == []


async def test_an_unreachable_lan_hands_out_unprobed_and_says_so(lab: Lab) -> None:
    lab.lan.answers = {"192.0.2.1": DEVICE}
    lab.lan.unavailable = "no network on this host carries 192.0.2.0/24 yet"
    service = await lab.service()
    pool_id = await pool(service)
    assert await addr(service, pool_id) == "192.0.2.1/24"
    assert lab.events.named("address not probed") == [
        {"address": "192.0.2.1", "reason": "no network on this host carries 192.0.2.0/24 yet"}
    ]
    assert service.lan_conflicts() == []
    # Nor does it probe ahead a LAN it cannot reach (an IPAM without a driver pays nothing).
    await asyncio.sleep(0.01)
    assert lab.lan.attempts == 1


# ------------------------------------------------------------------ prefetch


async def test_a_candidate_verified_ahead_is_handed_out_without_a_second_probe(lab: Lab) -> None:
    service = await lab.service()
    pool_id = await pool(service)
    assert await addr(service, pool_id) == "192.0.2.1/24"  # cold: probed by the request
    await prefetched(service, lab.lan, "192.0.2.2", "192.0.2.3")

    assert await addr(service, pool_id) == "192.0.2.2/24"
    assert await addr(service, pool_id) == "192.0.2.3/24"
    await prefetched(service, lab.lan, "192.0.2.4")
    assert {a: lab.lan.times_asked(a) for a in ("192.0.2.1", "192.0.2.2", "192.0.2.3")} == {
        "192.0.2.1": 1,
        "192.0.2.2": 1,
        "192.0.2.3": 1,
    }


async def test_hand_outs_faster_than_a_probe_still_find_their_candidates_ready(
    lab: Lab,
) -> None:
    # `docker compose up`: containers come faster than a probe's wait. A hand-out while the
    # pool's prefetch still runs gets a pass of its own right after, not none.
    lab.lan.delay = 0.05
    lab.lan.requester = asyncio.current_task()
    service = await lab.service()
    pool_id = await pool(service)
    assert await addr(service, pool_id) == "192.0.2.1/24"  # cold
    await prefetched(service, lab.lan, "192.0.2.2", "192.0.2.3")
    assert await addr(service, pool_id) == "192.0.2.2/24"  # its pass probes .4 now
    assert await addr(service, pool_id) == "192.0.2.3/24"  # meanwhile: .5 comes next
    await prefetched(service, lab.lan, "192.0.2.4", "192.0.2.5")
    assert await addr(service, pool_id) == "192.0.2.4/24"
    assert await addr(service, pool_id) == "192.0.2.5/24"
    assert lab.lan.asked_by_requests == ["192.0.2.1"]


async def test_a_network_create_probes_its_first_candidates_ahead(lab: Lab) -> None:
    lab.lan.answers = {"192.0.2.1": DEVICE}
    service = await lab.service()
    pool_id = await pool(service)
    service.probe_ahead(SUBNET)
    await prefetched(service, lab.lan, "192.0.2.1", "192.0.2.2")
    asked = len(lab.lan.asked)
    # The prefetch only remembers silence; the answering .1 is asked again (and recorded) by
    # the request that draws it, the verified .2 is not.
    assert await addr(service, pool_id) == "192.0.2.2/24"
    assert lab.lan.asked[asked:] == ["192.0.2.1"]
    assert lab.lan.times_asked("192.0.2.2") == 1


async def test_a_verified_address_is_probed_again_once_the_memory_is_stale(lab: Lab) -> None:
    service = await lab.service()
    pool_id = await pool(service)
    assert await addr(service, pool_id) == "192.0.2.1/24"
    await prefetched(service, lab.lan, "192.0.2.2")
    lab.clock.advance(31)  # "nobody answered" is believed for 30 s (ipam/probing.py)
    lab.lan.answers = {"192.0.2.2": DEVICE}  # a device was switched on meanwhile
    assert await addr(service, pool_id) == "192.0.2.3/24"
    assert [(a, mac) for _, a, mac, _ in service.lan_conflicts()] == [("192.0.2.2", DEVICE)]


async def test_candidates_are_kept_ready_while_the_pool_is_in_use(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A container now and then (every minute, say) must not wait for a probe either: the next
    # candidates are probed again before "nobody answered" gets old, for a while after the last
    # hand-out. Here a refresh pass runs every few milliseconds of real time; the IPAM's clock
    # is moved by hand.
    monkeypatch.setattr(probing, "REFRESH_EVERY", 0.005)
    lab.lan.requester = asyncio.current_task()
    service = await lab.service()
    pool_id = await pool(service)
    assert await addr(service, pool_id) == "192.0.2.1/24"
    await prefetched(service, lab.lan, "192.0.2.2", "192.0.2.3")
    for _ in range(6):  # a minute, in 10 s steps, each step seen by a refresh pass
        asked = len(lab.lan.asked)
        lab.clock.advance(10)
        await asyncio.sleep(0.05)
        assert len(lab.lan.asked) >= asked
    assert lab.lan.times_asked("192.0.2.2") >= 3  # probed again and again meanwhile
    assert await addr(service, pool_id) == "192.0.2.2/24"
    assert lab.lan.asked_by_requests == ["192.0.2.1"]  # the request did not wait for a probe

    # Long after the last hand-out the refreshing stops: an idle pool sends nothing.
    lab.clock.advance(probing.KEEP_READY_FOR + 1)
    await asyncio.sleep(0.05)
    asked = len(lab.lan.asked)
    lab.clock.advance(60)
    await asyncio.sleep(0.05)
    assert len(lab.lan.asked) == asked


async def test_a_request_abandoned_during_its_probe_leaves_no_address_held(lab: Lab) -> None:
    """Docker's client went away while the LAN was being asked: the address it would have got
    goes back (nobody would ever release it), and the next request gets it."""
    lab.lan.delay = 30.0
    service = await lab.service()
    pool_id = await pool(service)
    request = asyncio.create_task(addr(service, pool_id, "", endpoint("c1")))
    for _ in range(1000):  # until the probe is under way
        if lab.lan.attempts:
            break
        await asyncio.sleep(0.001)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert ip("192.0.2.1") not in service.allocator.leases[pool_id].table.held


async def test_a_burst_that_outruns_the_ready_addresses_makes_the_prefetch_go_deeper(
    lab: Lab,
) -> None:
    """`docker compose up` of many containers: after one request had to wait for its probe,
    the next BURST_PREFETCH candidates are verified at once, so they do not wait in turn."""
    lab.lan.delay = 0.02
    service = await lab.service()
    pool_id = await pool(service)
    lab.lan.requester = asyncio.current_task()
    assert await addr(service, pool_id) == "192.0.2.1/24"  # cold: it waits for its probe
    assert lab.lan.asked_by_requests == ["192.0.2.1"]
    await prefetched(service, lab.lan, *(f"192.0.2.{n}" for n in range(2, 12)))
    for n in range(2, 12):
        assert await addr(service, pool_id) == f"192.0.2.{n}/24"
    assert lab.lan.asked_by_requests == ["192.0.2.1"]  # none of the burst waited


async def test_a_pool_kept_full_by_quarantine_is_probed_ahead_too(lab: Lab) -> None:
    """Only resting addresses are left: they are what the next request gets, so they are what
    is verified ahead (else every container of a busy host would wait for its probe)."""
    service = await lab.service()
    pool_id = await pool(service, "192.0.2.0/29", quarantine="300")  # .1 - .6
    lab.lan.requester = asyncio.current_task()
    held = [await addr(service, pool_id) for _ in range(6)]
    for address in held[:3]:
        await service.release_address(pool_id=pool_id, address=address.split("/")[0])
    lab.clock.advance(probing.VERIFIED_FOR + 1)  # what was verified before is stale now
    asked = len(lab.lan.asked)
    service.probe_ahead("192.0.2.0/29")
    for _ in range(1000):
        if {"192.0.2.1", "192.0.2.2"} <= set(lab.lan.asked[asked:]):
            break
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.001)
    before = list(lab.lan.asked_by_requests)
    assert await addr(service, pool_id) == "192.0.2.1/29"  # the oldest resting one
    assert lab.lan.asked_by_requests == before  # verified ahead: no wait


async def test_what_probing_keeps_stays_bounded_over_thousands_of_requests(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon runs for months: the verified-address memory, the burst marks, the prefetch
    tasks and timers hold one entry per live pool at most (the memory: its limit), and drain
    when the pools go."""
    monkeypatch.setattr(probing, "VERIFIED_LIMIT", 256)
    monkeypatch.setattr(probing, "REFRESH_EVERY", 0.01)
    service = await lab.service()
    probe = service._probing  # its tables: their bounds are the point
    pools = [await pool(service, f"198.18.{n}.0/24") for n in range(40)]
    for cycle in range(3000):
        pool_id = pools[cycle % len(pools)]
        address = await addr(service, pool_id)
        await service.release_address(pool_id=pool_id, address=address.split("/")[0])
        lab.clock.advance(1.0)
        if cycle % 100 == 0:
            await asyncio.sleep(0.02)  # let prefetches and refreshes run
        assert probe.remembered <= 256
        assert len(probe._missed) <= len(pools)
        assert len(probe._prefetching) <= len(pools)
        assert len(probe._refresh) <= len(pools)
        assert len(service._ready_until) <= len(pools)
    for pool_id in pools:
        await service.release_pool(pool_id)
    for _ in range(200):  # the pending refreshes fire, find no pool, and stop
        if not (probe._prefetching or probe._refresh or service._ready_until):
            break
        await asyncio.sleep(0.01)
    assert not probe._prefetching
    assert not probe._refresh
    assert not service._ready_until
