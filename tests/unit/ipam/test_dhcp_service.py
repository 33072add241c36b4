"""DHCP mode as Docker drives it: RequestAddress leases from the LAN's server, ReleaseAddress and
ReleasePool give leases back, and the books (a second service on the same store) hold them.
The LAN is a scripted server (tests/unit/ipam/fake_lan.py); dnsmasq is the real one in
tests/kernel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ipam.errors import (
    AddressInUse,
    DhcpFailed,
    DhcpRequestRefused,
    InvalidRequest,
    IpamError,
    StoreError,
)
from ipam.records import Kind
from ipam.service import IpamService
from ipam.store import MemoryStore
from tests.unit.ipam.dhcp_helpers import (
    GATEWAY,
    SUBNET,
    DhcpLab,
    Events,
    dhcp_network,
    endpoint,
)
from tests.unit.ipam.fake_lan import FakeDhcpServer
from tests.unit.ipam.helpers import Clock


@pytest.fixture
async def lab(clock: Clock) -> AsyncIterator[DhcpLab]:
    lab = DhcpLab(clock)
    yield lab
    await lab.close()


@pytest.fixture
def server(lab: DhcpLab) -> FakeDhcpServer:
    return lab.server


@pytest.fixture
def events(lab: DhcpLab) -> Events:
    return lab.events


@pytest.fixture
def store(lab: DhcpLab) -> MemoryStore:
    return lab.store


@pytest.fixture
async def service(lab: DhcpLab) -> IpamService:
    return await lab.open()


async def request(
    service: IpamService, pool_id: str, address: str = "", options: dict[str, str] | None = None
) -> str:
    grant = await service.request_address(pool_id=pool_id, address=address, options=options or {})
    return grant.address


async def test_an_automatic_request_is_leased_from_the_server_and_recorded_durably(
    service: IpamService, server: FakeDhcpServer, lab: DhcpLab, clock: Clock
) -> None:
    pool_id = await dhcp_network(service)
    assert await request(service, pool_id, options=endpoint("web")) == "192.0.2.100/24"

    (call,) = server.calls
    assert (call.verb, call.address, call.subnet, call.hostname) == (
        "acquire",
        None,
        SUBNET,
        "web",
    )
    assert call.mac.startswith("02:")
    assert call.client_id == b"\x01" + bytes.fromhex(call.mac.replace(":", ""))
    assert service.dhcp_mac(SUBNET, "192.0.2.100") == call.mac
    assert service.dhcp_mac(SUBNET, "192.0.2.100/24") == call.mac
    assert service.dhcp_mac(SUBNET, "192.0.2.1") is None  # the gateway is not leased
    assert service.dhcp_mac("198.51.100.0/24", "192.0.2.100") is None

    # Durable: another service on the same store sees the allocation and the lease.
    other = await lab.open(lan=None)
    holding = other.allocator.holdings(pool_id)["192.0.2.100"]
    assert (holding.kind, holding.mac, holding.endpoint) == (Kind.DYNAMIC, call.mac, "web")
    (lease,) = other.dhcp_leases()
    assert (lease.address, lease.mac, lease.client_id, lease.hostname, lease.endpoint) == (
        "192.0.2.100",
        call.mac,
        call.client_id.hex(),
        "web",
        "web",
    )
    assert (lease.state, lease.problem, lease.server_id, lease.router) == (
        "bound",
        None,
        "192.0.2.2",
        "192.0.2.1",
    )
    assert (lease.lease_seconds, lease.renew_seconds, lease.rebind_seconds) == (600, 300, 525)
    assert lease.acquired_at == clock.now


async def test_a_named_endpoint_asks_again_with_the_same_identity_and_gets_its_lease_back(
    service: IpamService, server: FakeDhcpServer
) -> None:
    pool_id = await dhcp_network(service)
    await request(service, pool_id, options=endpoint("db"))  # another container first
    first = await request(service, pool_id, options=endpoint("web"))
    await service.release_address(pool_id=pool_id, address=first.split("/")[0])
    again = await request(service, pool_id, options=endpoint("web"))

    web = [c for c in server.calls if c.hostname == "web"]
    assert [c.verb for c in web] == ["acquire", "release", "acquire"]
    assert len({(c.mac, c.client_id) for c in web}) == 1
    assert again == first == "192.0.2.101/24"


async def test_the_mac_docker_sent_is_the_one_the_lease_is_taken_with(
    service: IpamService, server: FakeDhcpServer
) -> None:
    pool_id = await dhcp_network(service)
    options = {**endpoint("web"), "com.docker.network.endpoint.macaddress": "02:42:c0:a8:00:07"}
    await request(service, pool_id, options=options)
    assert server.calls[0].mac == "02:42:c0:a8:00:07"
    assert service.dhcp_mac(SUBNET, "192.0.2.100") == "02:42:c0:a8:00:07"


async def test_unnamed_endpoints_without_a_mac_get_distinct_random_macs(
    service: IpamService, server: FakeDhcpServer
) -> None:
    pool_id = await dhcp_network(service)
    a = await request(service, pool_id)
    b = await request(service, pool_id)
    assert a != b
    macs = {c.mac for c in server.calls}
    assert len(macs) == 2
    assert all(m.startswith("02:") for m in macs)
    assert {service.dhcp_mac(SUBNET, a), service.dhcp_mac(SUBNET, b)} == macs


async def test_an_answer_docker_never_got_is_asked_for_again_and_taken_over(
    service: IpamService, server: FakeDhcpServer, store: MemoryStore
) -> None:
    """The plugin recorded the lease, then died before Docker had its answer: Docker asks again
    for the same endpoint, and the same lease is asked for and recorded once."""
    pool_id = await dhcp_network(service)
    first = await request(service, pool_id, options=endpoint("web"))
    server.bindings.clear()  # the server forgot it too: only `requested` can bring it back
    assert await request(service, pool_id, options=endpoint("web")) == first
    assert server.calls[-1].address == "192.0.2.100"  # requested
    assert len(store.dhcp_leases) == 1
    assert [a for (_, a) in store.allocations if a != "192.0.2.1"] == ["192.0.2.100"]


async def test_an_ip_is_asked_for_and_recorded_as_static(
    service: IpamService, server: FakeDhcpServer
) -> None:
    pool_id = await dhcp_network(service)
    assert await request(service, pool_id, "192.0.2.150", endpoint("web")) == "192.0.2.150/24"
    assert server.calls[0].address == "192.0.2.150"
    assert service.allocator.holdings(pool_id)["192.0.2.150"].kind is Kind.STATIC


async def test_an_ip_the_server_leases_as_another_address_is_refused_and_given_back(
    service: IpamService, server: FakeDhcpServer, store: MemoryStore
) -> None:
    pool_id = await dhcp_network(service)
    server.offer = "192.0.2.77"
    with pytest.raises(DhcpRequestRefused) as caught:
        await request(service, pool_id, "192.0.2.150", endpoint("web"))
    assert caught.value.caller_fault
    message = str(caught.value)
    assert "would not lease 192.0.2.150 (--ip)" in message
    assert "it offered 192.0.2.77" in message
    assert [(c.verb, c.address) for c in server.calls] == [
        ("acquire", "192.0.2.150"),
        ("release", "192.0.2.77"),
    ]
    assert not store.dhcp_leases
    assert "192.0.2.77" not in service.allocator.holdings(pool_id)


async def test_an_ip_already_held_is_refused_without_asking_the_server(
    service: IpamService, server: FakeDhcpServer
) -> None:
    pool_id = await dhcp_network(service)
    await request(service, pool_id, "192.0.2.150", endpoint("web"))
    with pytest.raises(AddressInUse, match=r"192\.0\.2\.150"):
        await request(service, pool_id, "192.0.2.150", endpoint("db"))
    with pytest.raises(InvalidRequest, match="out of range"):
        await request(service, pool_id, "198.51.100.7", endpoint("db"))
    assert server.verbs() == ["acquire"]


async def test_a_gateway_needs_an_address_and_is_never_leased(
    service: IpamService, server: FakeDhcpServer
) -> None:
    grant = await service.request_pool(
        address_space="local", pool=SUBNET, sub_pool="", options={"dhcp": "on"}, v6=False
    )
    with pytest.raises(DhcpRequestRefused) as caught:
        await request(service, grant.pool_id, "", GATEWAY)
    assert caught.value.caller_fault
    assert str(caught.value).startswith("dhcp=on needs --gateway: the LAN's router")
    assert await request(service, grant.pool_id, "192.0.2.1", GATEWAY) == "192.0.2.1/24"
    assert await request(service, grant.pool_id, "192.0.2.3") == "192.0.2.3/24"  # aux
    assert server.calls == []
    held = service.allocator.holdings(grant.pool_id)
    assert (held["192.0.2.1"].kind, held["192.0.2.3"].kind) == (Kind.GATEWAY, Kind.RESERVED)


async def test_a_lease_outside_the_subnet_is_refused_naming_both_and_given_back(
    service: IpamService, server: FakeDhcpServer, store: MemoryStore
) -> None:
    server.scope = "198.51.100.0/24"
    pool_id = await dhcp_network(service)
    with pytest.raises(DhcpRequestRefused) as caught:
        await request(service, pool_id, options=endpoint("web"))
    message = str(caught.value)
    assert "198.51.100.100/24" in message
    assert SUBNET in message
    assert "--subnet does not match the DHCP server's scope" in message
    assert server.verbs() == ["acquire", "release"]
    assert not store.dhcp_leases


async def test_a_lease_of_an_address_held_in_the_books_is_refused_naming_the_holder(
    service: IpamService, server: FakeDhcpServer, store: MemoryStore
) -> None:
    pool_id = await dhcp_network(service)
    await request(service, pool_id, "192.0.2.100")  # an --aux-address the server knows nothing of
    with pytest.raises(AddressInUse) as caught:
        await request(service, pool_id, options=endpoint("web"))
    message = str(caught.value)
    assert "the LAN's DHCP server leased 192.0.2.100" in message
    assert "a reserved address (--aux-address or --ip) of this pool" in message
    assert server.verbs() == ["acquire", "release"]
    assert not store.dhcp_leases


@pytest.mark.parametrize(
    ("behaviour", "error", "text"),
    [
        (
            {"nak": "address not available"},
            DhcpFailed,
            "the LAN's DHCP server refused a lease in 192.0.2.0/24 to MAC 02:",
        ),
        (
            {"silent": True},
            DhcpFailed,
            "no DHCP server answered on the LAN of 192.0.2.0/24 within ",
        ),
        (
            {"unreachable": "no network on 192.0.2.0/24 is up"},
            DhcpFailed,
            "cannot ask the LAN's DHCP server for an address in 192.0.2.0/24: no network on "
            "192.0.2.0/24 is up",
        ),
    ],
)
async def test_failures_of_the_lan_are_one_line_server_errors(
    service: IpamService,
    server: FakeDhcpServer,
    store: MemoryStore,
    behaviour: dict[str, object],
    error: type[IpamError],
    text: str,
) -> None:
    pool_id = await dhcp_network(service)
    for name, value in behaviour.items():
        setattr(server, name, value)
    with pytest.raises(error) as caught:
        await request(service, pool_id, options=endpoint("web"))
    message = str(caught.value)
    assert type(caught.value) is error
    assert not caught.value.caller_fault
    assert message.startswith(text)
    assert "\n" not in message
    if "silent" in behaviour:
        assert message.endswith("s (is the server reachable on the network's parent?)")
    if "nak" in behaviour:
        assert message.endswith(": address not available")
    assert not store.dhcp_leases


async def test_a_refused_ip_is_the_callers_to_fix(
    service: IpamService, server: FakeDhcpServer
) -> None:
    pool_id = await dhcp_network(service)
    server.nak = "requested address not in scope"
    with pytest.raises(DhcpRequestRefused) as caught:
        await request(service, pool_id, "192.0.2.150", endpoint("web"))
    assert "refused 192.0.2.150 (--ip)" in str(caught.value)
    assert "requested address not in scope" in str(caught.value)


async def test_an_exchange_that_never_ends_is_cut_at_the_exchange_timeout(
    service: IpamService, server: FakeDhcpServer
) -> None:
    pool_id = await dhcp_network(service)
    server.hang = True
    with pytest.raises(DhcpFailed, match=r"within 0\.5 s"):
        await request(service, pool_id, options=endpoint("web"))
    assert server.hanging == 0


async def test_a_failed_commit_gives_the_lease_back(
    service: IpamService, server: FakeDhcpServer, store: MemoryStore
) -> None:
    pool_id = await dhcp_network(service)
    store.fail_commits = 1
    with pytest.raises(StoreError):
        await request(service, pool_id, options=endpoint("web"))
    assert server.verbs() == ["acquire", "release"]
    assert not store.dhcp_leases
    assert not server.bindings


async def test_release_gives_the_lease_back_and_frees_the_rows_without_quarantine(
    service: IpamService, server: FakeDhcpServer, store: MemoryStore
) -> None:
    pool_id = await dhcp_network(service)
    address = await request(service, pool_id, options=endpoint("web"))
    mac = service.dhcp_mac(SUBNET, address)
    await service.release_address(pool_id=pool_id, address=address.split("/")[0])
    release = server.calls[-1]
    assert (release.verb, release.address, release.mac) == ("release", "192.0.2.100", mac)
    assert not store.dhcp_leases
    assert not server.bindings
    assert "192.0.2.100" not in {a for (_, a) in store.allocations}
    assert not store.quarantine
    assert service.dhcp_leases() == ()
    # Idempotent, like every release.
    await service.release_address(pool_id=pool_id, address=address.split("/")[0])
    assert server.verbs().count("release") == 1


async def test_a_release_the_lan_cannot_take_is_logged_and_the_release_goes_on(
    service: IpamService, server: FakeDhcpServer, store: MemoryStore, events: Events
) -> None:
    pool_id = await dhcp_network(service)
    address = await request(service, pool_id, options=endpoint("web"))
    server.unreachable = "the network's parent is down"
    await service.release_address(pool_id=pool_id, address=address.split("/")[0])
    assert not store.dhcp_leases
    ((level, fields),) = events.named("DHCP release not sent")
    assert level == "warning"
    assert fields["address"] == "192.0.2.100"
    assert fields["problem"] == "the network's parent is down"


async def test_release_pool_gives_back_every_lease_left_and_leaves_no_rows(
    service: IpamService, server: FakeDhcpServer, store: MemoryStore
) -> None:
    pool_id = await dhcp_network(service)
    await request(service, pool_id, options=endpoint("a"))
    await request(service, pool_id, options=endpoint("b"))
    await service.release_pool(pool_id)
    assert sorted(c.address or "" for c in server.of("release")) == ["192.0.2.100", "192.0.2.101"]
    assert not store.dhcp_leases
    assert not store.leases
    assert not store.allocations
    assert {a for (_, a) in store.quarantine} == {"192.0.2.1"}  # the gateway, not the leases


async def test_pools_without_dhcp_never_ask_the_lan(
    service: IpamService, server: FakeDhcpServer
) -> None:
    grant = await service.request_pool(
        address_space="local", pool=SUBNET, sub_pool="", options={"probe": "off"}, v6=False
    )
    assert await request(service, grant.pool_id, options=endpoint("web")) == "192.0.2.1/24"
    assert server.calls == []
