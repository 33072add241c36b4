"""The allocator against a reference model, plus the rules users rely on, one test each."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ipam.addresses import Family, parse_subnet
from ipam.errors import AddressInUse, AddressOutOfRange, InvalidRequest, NoAvailableAddresses
from ipam.records import Kind
from tests.unit.ipam.helpers import GATEWAY, Direct, endpoint, ip, text

SUBNET = parse_subnet("192.0.2.0/27")  # 32 addresses: small enough to exhaust often
ALL = list(range(SUBNET.first, SUBNET.last + 1))
KIND_OPTIONS = {
    Kind.GATEWAY: GATEWAY,
    Kind.RESERVED: {},
    Kind.STATIC: endpoint("web"),
}


class AllocatorModel(RuleBasedStateMachine):
    """Two leases share one table (a per-host range and an ip-range with its own quarantine).

    A plain-Python model predicts every answer: which address comes next (round-robin from the
    cursor, quarantine respected, oldest resting one last), and which specific requests are
    shared, counted or refused.
    """

    def __init__(self) -> None:
        super().__init__()
        self.d = Direct(node="hostA", quarantine=30)
        self.held: dict[int, dict[str, tuple[Kind, int]]] = {}
        self.resting: dict[int, tuple[float, float]] = {}  # insertion order = release order
        self.cursor: dict[str, int | None] = {}
        self.auto: dict[str, set[int]] = {}
        self.quarantine: dict[str, float] = {}

    @initialize(
        lo=st.integers(0, 31),
        length=st.integers(0, 31),
        excluded=st.sets(st.integers(0, 31), max_size=6),
        q2=st.sampled_from([0, 5, 60]),
    )
    def pools(self, lo: int, length: int, excluded: set[int], q2: int) -> None:
        hi = min(lo + length, 31)
        exclude = ",".join(text(SUBNET.first + x) for x in sorted(excluded))
        options_a = {
            "range.hostA": f"{text(SUBNET.first + lo)}-{text(SUBNET.first + hi)}",
            "range.hostB": "2001:db8::/120",  # other family: ignored by this pool
        }
        if exclude:
            options_a["exclude"] = exclude
        a = self.d.pool(str(SUBNET), options=options_a)
        b = self.d.pool(str(SUBNET), "192.0.2.16/28", {"quarantine": str(q2)})
        reserved = {SUBNET.first, SUBNET.last}
        self.auto[a] = {SUBNET.first + x for x in range(lo, hi + 1) if x not in excluded} - reserved
        self.auto[b] = set(range(ip("192.0.2.16"), ip("192.0.2.31") + 1)) - reserved
        self.quarantine = {a: 30, b: q2}
        self.cursor = {a: None, b: None}
        self.leases = [a, b]

    # ------------------------------------------------------------ the model

    def expected_auto(self, lease: str) -> int | None:
        now = self.d.now
        resting = {a for a, (_, until) in self.resting.items() if until > now}
        cursor = self.cursor[lease]
        ordered = sorted(self.auto[lease])
        if cursor is not None:
            ordered = [a for a in ordered if a > cursor] + [a for a in ordered if a <= cursor]
        for a in ordered:
            if a not in self.held and a not in resting:
                return a
        oldest = [a for a in self.resting if a in resting and a in self.auto[lease]]
        return oldest[0] if oldest else None

    def release_in_model(self, lease: str, address: int) -> None:
        holders = self.held.get(address, {})
        if lease not in holders:
            return
        kind, count = holders[lease]
        if count > 1:
            holders[lease] = (kind, count - 1)
            return
        del holders[lease]
        if not holders:
            del self.held[address]
            if self.quarantine[lease] > 0:
                self.resting.pop(address, None)
                self.resting[address] = (self.d.now, self.d.now + self.quarantine[lease])

    # ----------------------------------------------------------------- rules

    @rule(which=st.integers(0, 1))
    def take_any(self, which: int) -> None:
        lease = self.leases[which]
        expected = self.expected_auto(lease)
        if expected is None:
            with pytest.raises(NoAvailableAddresses, match=r"^no available addresses on this pool"):
                self.d.take(lease)
            return
        # A new container each time: a returning one would get its resting address back.
        self.containers = getattr(self, "containers", 0) + 1
        got = self.d.take(lease, options=endpoint(f"c{self.containers}"))
        assert got == expected
        self.held[got] = {lease: (Kind.DYNAMIC, 1)}
        self.resting.pop(got, None)
        self.cursor[lease] = got

    @rule(which=st.integers(0, 1), x=st.integers(0, 31), kind=st.sampled_from(list(KIND_OPTIONS)))
    def take_specific(self, which: int, x: int, kind: Kind) -> None:
        lease = self.leases[which]
        address = SUBNET.first + x
        if address in (SUBNET.first, SUBNET.last):
            with pytest.raises(AddressOutOfRange):
                self.d.take(lease, text(address), KIND_OPTIONS[kind])
            return
        holders = self.held.get(address, {})
        mine = holders.get(lease)
        if not holders:
            ok, new = True, (kind, 1)
        elif mine is not None:
            ok = kind is Kind.GATEWAY and mine[0] is Kind.GATEWAY
            new = (kind, mine[1] + 1)
        else:
            ok = kind.shareable and all(k.shareable for k, _ in holders.values())
            new = (kind, 1)
        if not ok:
            with pytest.raises(AddressInUse, match=f"^Address already in use: {text(address)} "):
                self.d.take(lease, text(address), KIND_OPTIONS[kind])
            return
        assert self.d.take(lease, text(address), KIND_OPTIONS[kind]) == address
        self.held.setdefault(address, {})[lease] = new
        self.resting.pop(address, None)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def release_held(self, data: st.DataObject) -> None:
        address = data.draw(st.sampled_from(sorted(self.held)))
        lease = data.draw(st.sampled_from(self.leases))
        self.d.give(lease, address)
        self.release_in_model(lease, address)

    @rule(which=st.integers(0, 1), x=st.integers(0, 31))
    def release_anything(self, which: int, x: int) -> None:
        """Releases are idempotent: unknown addresses are fine."""
        lease = self.leases[which]
        self.d.give(lease, SUBNET.first + x)
        self.release_in_model(lease, SUBNET.first + x)

    @rule(seconds=st.sampled_from([1, 10, 31, 100]))
    def wait(self, seconds: int) -> None:
        self.d.now += seconds

    # ------------------------------------------------------------- invariants

    @invariant()
    def memory_matches_the_model(self) -> None:
        if not self.leases:
            return
        table = self.d.allocator.leases[self.leases[0]].table
        got = {a: {h.pool_id: (h.kind, h.refcount) for h in hs} for a, hs in table.held.items()}
        assert got == self.held
        now = self.d.now
        live_resting = {a for a, r in table.quarantine.items() if r.until > now}
        assert live_resting == {a for a, (_, until) in self.resting.items() if until > now}
        table.unavailable._check()
        for a in ALL:
            expected = a in self.held or a in table.quarantine
            assert (a in table.unavailable) == expected


TestAllocatorModel = AllocatorModel.TestCase
TestAllocatorModel.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)


# ------------------------------------------------------------------- rules


def test_round_robin_continues_after_the_last_address_and_wraps() -> None:
    d = Direct(quarantine=0)
    pool = d.pool("192.0.2.0/29")  # hosts .1 - .6
    taken = [d.take_text(pool) for _ in range(3)]
    assert taken == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    d.give(pool, "192.0.2.2")
    # Not .2 again at once (a crash-looping container gets a new address) ...
    assert d.take_text(pool) == "192.0.2.4"
    assert [d.take_text(pool) for _ in range(3)] == ["192.0.2.5", "192.0.2.6", "192.0.2.2"]


def test_quarantine_holds_released_addresses_back_while_others_are_free() -> None:
    d = Direct(quarantine=300)
    pool = d.pool("192.0.2.0/29")
    for _ in range(6):
        d.take(pool)
    d.give(pool, "192.0.2.3")
    d.now += 10
    d.give(pool, "192.0.2.1")
    # Only resting addresses left: the one released longest ago comes back first.
    assert d.take_text(pool) == "192.0.2.3"
    assert d.take_text(pool) == "192.0.2.1"


def test_quarantine_expires() -> None:
    d = Direct(quarantine=60)
    pool = d.pool("192.0.2.0/28")
    first = d.take_text(pool)
    d.give(pool, first)
    d.allocator.leases[pool].cursor = None  # make .1 the next candidate again
    assert d.take_text(pool) == "192.0.2.2"
    d.now += 61
    d.allocator.leases[pool].cursor = None
    assert d.take_text(pool) == first


def test_per_network_quarantine_option_overrides_the_default() -> None:
    d = Direct(quarantine=300)
    pool = d.pool("192.0.2.0/29", options={"quarantine": "0"})
    assert d.take_text(pool) == "192.0.2.1"
    d.give(pool, "192.0.2.1")
    assert not d.allocator.leases[pool].table.quarantine


def test_exclusions_and_reserved_addresses_are_never_handed_out_automatically() -> None:
    d = Direct()
    pool = d.pool("192.0.2.0/28", options={"exclude": "192.0.2.1-192.0.2.4,192.0.2.9"})
    got = [d.take_text(pool) for _ in range(9)]
    with pytest.raises(NoAvailableAddresses) as caught:
        d.take(pool)
    assert got == [f"192.0.2.{n}" for n in (5, 6, 7, 8, 10, 11, 12, 13, 14)]
    assert str(caught.value) == (
        "no available addresses on this pool: 192.0.2.0/28, excluding 192.0.2.1-192.0.2.4, "
        "192.0.2.9 (9 addresses, 9 in use)"
    )
    # ... but an explicit request may name an excluded address.
    assert d.take_text(pool, "192.0.2.2", endpoint("db")) == "192.0.2.2"


def test_the_exhausted_message_names_pool_range_and_node() -> None:
    d = Direct(node="hostA")
    pool = d.pool("192.0.2.0/24", options={"range.hostA": "192.0.2.10-192.0.2.19"})
    for _ in range(10):
        d.take(pool)
    with pytest.raises(NoAvailableAddresses) as caught:
        d.take(pool)
    assert str(caught.value) == (
        "no available addresses on this pool: 192.0.2.0/24, range 192.0.2.10-192.0.2.19 of node "
        '"hostA" (10 addresses, 10 in use)'
    )


def test_a_range_fully_excluded_says_there_is_nothing_to_hand_out() -> None:
    d = Direct()
    pool = d.pool("192.0.2.0/24", "192.0.2.128/30", {"exclude": "192.0.2.128/30"})
    with pytest.raises(NoAvailableAddresses) as caught:
        d.take(pool)
    assert str(caught.value) == (
        "no available addresses on this pool: 192.0.2.0/24, ip-range 192.0.2.128/30, excluding "
        "192.0.2.128/30: nothing is left to hand out automatically (request a specific address "
        "with --ip, or change the address plan or exclusions)"
    )


@pytest.mark.parametrize(
    ("pool", "address", "message"),
    [
        (
            "192.0.2.0/24",
            "198.51.100.7",
            "requested address is out of range: 198.51.100.7 is not in pool 192.0.2.0/24",
        ),
        (
            "192.0.2.0/24",
            "2001:db8::7",
            "requested address is out of range: 2001:db8::7 is not in pool 192.0.2.0/24",
        ),
        (
            "192.0.2.0/24",
            "192.0.2.0",
            "requested address is out of range: 192.0.2.0 is the network address of pool "
            "192.0.2.0/24, which is never handed out",
        ),
        (
            "192.0.2.0/24",
            "192.0.2.255",
            "requested address is out of range: 192.0.2.255 is the broadcast address of pool "
            "192.0.2.0/24, which is never handed out",
        ),
        (
            "2001:db8::/64",
            "2001:db8::",
            "requested address is out of range: 2001:db8:: is the Subnet-Router anycast address "
            "of pool 2001:db8::/64, which is never handed out",
        ),
    ],
)
def test_specific_addresses_outside_the_usable_subnet_are_refused(
    pool: str, address: str, message: str
) -> None:
    d = Direct()
    pool_id = d.pool(pool)
    with pytest.raises(AddressOutOfRange, match="^" + re.escape(message) + "$") as caught:
        d.take(pool_id, address, endpoint("web"))
    assert isinstance(caught.value, InvalidRequest)


@pytest.mark.parametrize("subnet", ["192.0.2.0/31", "192.0.2.8/32", "2001:db8::/127"])
def test_point_to_point_subnets_use_every_address(subnet: str) -> None:
    d = Direct(quarantine=0)
    pool = d.pool(subnet)
    s = parse_subnet(subnet)
    got = {d.take(pool) for _ in range(s.size)}
    assert got == set(range(s.first, s.last + 1))


def test_specific_addresses_may_be_anywhere_in_the_subnet_not_only_this_hosts_range() -> None:
    d = Direct(node="hostA")
    pool = d.pool("192.0.2.0/24", options={"range.hostA": "192.0.2.10-192.0.2.19"})
    assert d.take_text(pool, "192.0.2.254", GATEWAY) == "192.0.2.254"
    assert d.take_text(pool, "192.0.2.200", {}) == "192.0.2.200"  # --aux-address
    assert d.take_text(pool, "192.0.2.100", endpoint("db")) == "192.0.2.100"  # --ip


def test_in_use_messages_say_who_holds_the_address() -> None:
    d = Direct()
    a = d.pool("192.0.2.0/24")
    b = d.pool("192.0.2.0/24", "192.0.2.128/25")
    d.take(a, "192.0.2.5", endpoint("web1"))
    with pytest.raises(AddressInUse) as caught:
        d.take(b, "192.0.2.5", endpoint("web2"))
    assert str(caught.value) == (
        'Address already in use: 192.0.2.5 in pool 192.0.2.0/24 (held by endpoint "web1" (--ip) '
        'of pool ID "local/default/192.0.2.0/24")'
    )
    d.take(a, "192.0.2.6", {})
    with pytest.raises(AddressInUse) as caught:
        d.take(a, "192.0.2.6", {})
    assert str(caught.value) == (
        "Address already in use: 192.0.2.6 in pool 192.0.2.0/24 (held by a reserved address "
        "(--aux-address or --ip) of this pool)"
    )


def test_two_leases_on_one_subnet_share_one_table() -> None:
    d = Direct(quarantine=0)
    a = d.pool("192.0.2.0/29")
    b = d.pool("192.0.2.0/29", options={"quarantine": "0"})
    assert a != b
    got = {d.take(a), d.take(b), d.take(a), d.take(b), d.take(a), d.take(b)}
    assert len(got) == 6
    with pytest.raises(NoAvailableAddresses):
        d.take(a)


def test_different_lans_have_independent_tables() -> None:
    d = Direct()
    a = d.pool("192.0.2.0/30", options={"lan": "vlan10"})
    b = d.pool("192.0.2.0/30", options={"lan": "vlan20"})
    assert d.take_text(a) == d.take_text(b) == "192.0.2.1"


def test_releasing_the_last_pool_reference_frees_what_it_still_holds() -> None:
    d = Direct(quarantine=300)
    pool = d.pool("192.0.2.0/29")
    d.take(pool, "192.0.2.1", GATEWAY)
    d.take(pool)
    d.release_pool(pool)
    assert pool not in d.allocator.leases
    (table,) = d.allocator.tables.values()  # kept alive only by the quarantine
    assert not table.held
    assert sorted(text(a) for a in table.quarantine) == ["192.0.2.1", "192.0.2.2"]
    d.now += 301
    d.allocator.prune(d.now)
    assert not d.allocator.tables


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=300))
def test_ipv6_64_allocates_without_looking_at_the_whole_pool(count: int) -> None:
    d = Direct(quarantine=0)
    pool = d.pool("2001:db8::/64")
    got = [d.take(pool) for _ in range(count)]
    assert got == [ip("2001:db8::") + n for n in range(1, count + 1)]
    assert d.allocator.leases[pool].table.unavailable.run_count == 1
    assert text(got[-1], Family.V6).startswith("2001:db8::")


def test_the_quarantine_expiry_queue_is_bounded_by_the_pool_not_by_the_releases() -> None:
    """A busy host with a long quarantine releases the same few addresses over and over: the
    queue of pending expiries must not keep one entry per release until its time comes (with a
    day's quarantine that is a day of releases, held in memory)."""
    d = Direct(quarantine=86_400)
    pool = d.pool("192.0.2.0/28")  # 14 usable addresses
    live: list[int] = []
    for _ in range(20_000):
        live.append(d.take(pool))
        if len(live) > 4:
            d.give(pool, live.pop(0))
        d.now += 0.1
    resting = sum(len(t.quarantine) for t in d.allocator.tables.values())
    assert resting <= 14
    assert d.allocator.pending_expiries <= 2 * 14 + 1024
    # Compacting loses no expiry: a day later every resting address is free again.
    d.now += 86_400
    assert len(d.allocator.prune(d.now)) == resting
    assert d.allocator.pending_expiries == 0
