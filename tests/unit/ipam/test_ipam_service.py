"""IpamService as Docker drives it: the call sequences of `docker network create/rm` and
`docker run`, with the answers and error texts a user sees. Runs on the in-memory fake store;
`test_ipam_sqlite.py` repeats what matters on disk."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ipam.errors import (
    AddressInUse,
    InvalidRequest,
    NoAvailablePool,
    PoolNotFound,
    PoolOverlap,
    StoreError,
)
from ipam.records import Snapshot
from ipam.service import IpamService, IpamSettings
from ipam.store import MemoryStore
from plugin.state_files import StateFiles
from tests.unit.ipam.helpers import GATEWAY, Clock, ServiceFactory, endpoint, make_settings


async def pool(
    service: IpamService,
    subnet: str = "192.0.2.0/24",
    sub_pool: str = "",
    v6: bool | None = None,
    space: str = "local",
    opts: dict[str, str] | None = None,
    **options: str,
) -> str:
    grant = await service.request_pool(
        address_space=space,
        pool=subnet,
        sub_pool=sub_pool,
        options={**(opts or {}), **options},
        v6=(":" in subnet) if v6 is None else v6,
    )
    return grant.pool_id


async def addr(
    service: IpamService, pool_id: str, address: str = "", options: dict[str, str] | None = None
) -> str:
    grant = await service.request_address(pool_id=pool_id, address=address, options=options or {})
    return grant.address


async def network_create(
    service: IpamService, subnet: str, gateway: str = "", aux: tuple[str, ...] = (), **options: str
) -> str:
    """What Docker does for `docker network create --subnet S [--gateway G] [--aux-address A]`."""
    pool_id = await pool(service, subnet, opts=options)
    await addr(service, pool_id, gateway, GATEWAY)
    for a in aux:
        await addr(service, pool_id, a)
    return pool_id


def test_capabilities_and_address_spaces() -> None:
    plain = IpamService(MemoryStore(), IpamSettings.for_node("node1"))
    assert plain.capabilities.requires_mac_address is False
    assert plain.capabilities.requires_request_replay is False
    macs = IpamSettings("node1", (), requires_mac_address=True)
    assert IpamService(MemoryStore(), macs).capabilities.requires_mac_address is True
    assert IpamService.address_spaces.local == "local"
    assert IpamService.address_spaces.global_ == "global"


# ------------------------------------------------------------------- pools


async def test_identical_pool_requests_share_one_reference_counted_lease(
    service: IpamService,
) -> None:
    first = await service.request_pool(
        address_space="local", pool="192.0.2.0/24", sub_pool="", options={}, v6=False
    )
    assert (first.pool_id, first.pool, first.data) == (
        "local/default/192.0.2.0/24",
        "192.0.2.0/24",
        {},
    )
    assert await pool(service) == first.pool_id
    assert service.allocator.leases[first.pool_id].record.refcount == 2
    await service.release_pool(first.pool_id)
    assert service.allocator.leases[first.pool_id].record.refcount == 1
    await service.release_pool(first.pool_id)
    assert first.pool_id not in service.allocator.leases
    await service.release_pool(first.pool_id)  # idempotent
    await service.release_pool("local/never/seen")


async def test_default_pools_skip_pools_held_so_dockers_overlap_retry_works(
    service: IpamService,
) -> None:
    # Docker holds each answer that overlaps a host route and asks again.
    held = [await pool(service, "") for _ in range(3)]
    assert held == [
        "local/default/172.17.0.0/16",
        "local/default/172.18.0.0/16",
        "local/default/172.19.0.0/16",
    ]
    for pool_id in held[:2]:
        await service.release_pool(pool_id)
    assert await pool(service, "") == "local/default/172.17.0.0/16"
    grant = await service.request_pool(
        address_space="local", pool="0.0.0.0/24", sub_pool="", options={}, v6=False
    )
    assert grant.pool == "172.18.0.0/24"


async def test_ipv6_default_pool_is_a_64_of_this_nodes_ula(service: IpamService) -> None:
    grant = await service.request_pool(
        address_space="local", pool="", sub_pool="", options={}, v6=True
    )
    assert grant.pool.startswith("fd")
    assert grant.pool.endswith("::/64")
    second = await pool(service, "", v6=True)
    assert second != grant.pool_id
    assert (await addr(service, grant.pool_id)).endswith("::1/64")


async def test_no_default_pool_left_says_what_to_do(make_service: ServiceFactory) -> None:
    service = await make_service()
    for _ in range(3 + 4 * 3 + 16):
        await pool(service, "")
    with pytest.raises(NoAvailablePool) as caught:
        await pool(service, "")
    assert str(caught.value) == (
        "no available IPv4 pool: every default pool (172.17.0.0/16:16,172.18.0.0/16:16,"
        "172.19.0.0/16:16,172.20.0.0/14:16,172.24.0.0/14:16,172.28.0.0/14:16,192.168.0.0/16:20) "
        "is in use or overlaps a pool in use on this host; pass --subnet or add default pools "
        "(PYMACVLAN_DEFAULT_POOLS)"
    )
    assert not caught.value.caller_fault


async def test_overlapping_but_different_subnets_on_one_lan_are_refused(
    service: IpamService,
) -> None:
    await pool(service, "192.0.2.0/24")
    with pytest.raises(PoolOverlap) as caught:
        await pool(service, "192.0.2.128/25")
    assert str(caught.value) == (
        "pool 192.0.2.128/25 overlaps pool 192.0.2.0/24 (pool ID 'local/default/192.0.2.0/24') "
        'on LAN "default": use the same subnet to share its addresses, or set a different '
        "--ipam-opt lan=<name> if the two networks are different LANs"
    )
    await pool(service, "192.0.2.128/25", lan="other")  # a different LAN is fine
    await pool(service, "192.0.2.128/25", space="global")  # and so is the other space


async def test_a_plan_without_this_host_is_refused_at_network_create(
    make_service: ServiceFactory,
) -> None:
    service = await make_service(node="hostC")
    with pytest.raises(InvalidRequest) as caught:
        await pool(service, opts={"range.hostA": "192.0.2.0/26", "range.hostB": "192.0.2.64/26"})
    assert str(caught.value) == (
        'the address plan names nodes "hostA", "hostB" but not this host "hostC": add '
        "--ipam-opt range.hostC=... or set this plugin's node name (PYMACVLAN_NODE_NAME)"
    )
    assert not service.allocator.leases


async def test_unknown_address_space_is_refused(service: IpamService) -> None:
    with pytest.raises(InvalidRequest, match="this plugin's address spaces are"):
        await pool(service, space="LocalDefault")


# --------------------------------------------------------------- addresses


async def test_addresses_are_answered_in_cidr_form_with_the_subnets_prefix(
    service: IpamService,
) -> None:
    v4 = await network_create(service, "192.0.2.0/24")
    v6 = await network_create(service, "2001:db8::/64")
    assert await addr(service, v4, "", endpoint("web")) == "192.0.2.2/24"
    assert await addr(service, v6, "", endpoint("web")) == "2001:db8::2/64"
    assert await addr(service, v6, "2001:db8::abcd", endpoint("db")) == "2001:db8::abcd/64"


async def test_gateway_without_address_is_allocated_like_docker_does(service: IpamService) -> None:
    pool_id = await pool(service)
    assert await addr(service, pool_id, "", GATEWAY) == "192.0.2.1/24"
    assert await addr(service, pool_id) == "192.0.2.2/24"


async def test_two_networks_on_one_lan_share_gateway_and_aux_addresses_but_never_containers(
    service: IpamService,
) -> None:
    # docker network create --subnet 192.0.2.0/24 --ip-range .../25 --gateway 192.0.2.1
    #   --aux-address router2=192.0.2.2  (twice, two ip-ranges: two networks on one LAN)
    a = await network_create(service, "192.0.2.0/24", "192.0.2.1", ("192.0.2.2",))
    b = await pool(service, "192.0.2.0/24", "192.0.2.0/25")
    assert await addr(service, b, "192.0.2.1", GATEWAY) == "192.0.2.1/24"
    assert await addr(service, b, "192.0.2.2") == "192.0.2.2/24"
    assert a != b
    got = {await addr(service, a, "", endpoint(f"a{n}")) for n in range(5)}
    got |= {await addr(service, b, "", endpoint(f"b{n}")) for n in range(5)}
    assert len(got) == 10
    assert not got & {"192.0.2.1/24", "192.0.2.2/24"}
    # Deleting network a keeps the shared gateway held for b.
    await service.release_address(pool_id=a, address="192.0.2.1")
    await service.release_address(pool_id=a, address="192.0.2.2")
    await service.release_pool(a)
    with pytest.raises(AddressInUse, match=r"\(held by the gateway of this pool\)"):
        await addr(service, b, "192.0.2.1", endpoint("sneaky"))


async def test_identical_networks_share_a_lease_and_their_gateway_is_counted(
    service: IpamService,
) -> None:
    a = await network_create(service, "192.0.2.0/24", "192.0.2.1")
    b = await network_create(service, "192.0.2.0/24", "192.0.2.1")
    assert a == b
    await service.release_address(pool_id=a, address="192.0.2.1")
    await service.release_pool(a)
    # The second network still has its gateway: no container may get it.
    with pytest.raises(AddressInUse):
        await addr(service, b, "192.0.2.1", endpoint("web"))


async def test_a_repeated_specific_request_is_refused_not_silently_doubled(
    service: IpamService,
) -> None:
    pool_id = await network_create(service, "192.0.2.0/24")
    await addr(service, pool_id, "192.0.2.10", endpoint("web1"))
    with pytest.raises(AddressInUse) as caught:
        await addr(service, pool_id, "192.0.2.10", endpoint("web2"))
    assert str(caught.value) == (
        'Address already in use: 192.0.2.10 in pool 192.0.2.0/24 (held by endpoint "web1" (--ip) '
        "of this pool)"
    )
    assert caught.value.caller_fault is False


async def test_docker_20_sends_no_options_and_it_still_works(service: IpamService) -> None:
    pool_id = await pool(service)
    assert await addr(service, pool_id, "", GATEWAY) == "192.0.2.1/24"
    assert await addr(service, pool_id) == "192.0.2.2/24"  # docker run
    assert await addr(service, pool_id, "192.0.2.50") == "192.0.2.50/24"  # docker run --ip
    with pytest.raises(AddressInUse, match=r"an endpoint of this pool"):
        await addr(service, pool_id, "192.0.2.2")


async def test_the_mac_and_endpoint_name_are_recorded(service: IpamService) -> None:
    pool_id = await pool(service)
    options = {**endpoint("web"), "com.docker.network.endpoint.macaddress": "02:42:C0:00:02:0A"}
    await addr(service, pool_id, "", options)
    (holding,) = service.allocator.holdings(pool_id).values()
    assert (holding.endpoint, holding.mac, holding.kind.value) == (
        "web",
        "02:42:c0:00:02:0a",
        "dynamic",
    )


async def test_unknown_pool_and_idempotent_releases(service: IpamService) -> None:
    with pytest.raises(PoolNotFound) as caught:
        await addr(service, "local/default/198.51.100.0/24")
    assert str(caught.value) == (
        'unknown pool ID "local/default/198.51.100.0/24": this plugin holds no such pool (if its '
        "state directory was reset, recreate the network)"
    )
    await service.release_address(pool_id="local/default/198.51.100.0/24", address="198.51.100.1")
    pool_id = await pool(service)
    await service.release_address(pool_id=pool_id, address="192.0.2.77")
    a = await addr(service, pool_id)
    await service.release_address(pool_id=pool_id, address=a.split("/")[0])
    await service.release_address(pool_id=pool_id, address=a.split("/")[0])
    with pytest.raises(InvalidRequest, match="invalid address to release 'x'"):
        await service.release_address(pool_id=pool_id, address="x")


async def test_every_host_runs_the_same_create_and_gets_its_own_part(
    make_service: ServiceFactory,
) -> None:
    seen: dict[str, set[str]] = {}
    for node in ("hostA", "hostB", "hostC"):
        service = await make_service(node=node)  # each host has its own store
        pool_id = await network_create(
            service, "192.0.2.0/24", "192.0.2.1", nodes="hostA,hostB,hostC"
        )
        seen[node] = {await addr(service, pool_id, "", endpoint(f"c{n}")) for n in range(20)}
    assert not seen["hostA"] & seen["hostB"]
    assert not seen["hostB"] & seen["hostC"]
    assert not seen["hostA"] & seen["hostC"]
    assert "192.0.2.2/24" in seen["hostA"]
    assert "192.0.2.85/24" in seen["hostB"]


# ------------------------------------------------------------- concurrency


async def test_300_concurrent_requests_get_300_distinct_addresses(service: IpamService) -> None:
    pool_id = await pool(service, "198.18.0.0/22")
    answers = await asyncio.gather(
        *(addr(service, pool_id, "", endpoint(f"c{n}")) for n in range(300))
    )
    assert len(set(answers)) == 300


async def test_concurrent_requests_for_one_address_give_it_once(service: IpamService) -> None:
    pool_id = await pool(service)
    results = await asyncio.gather(
        *(addr(service, pool_id, "192.0.2.9", endpoint(f"c{n}")) for n in range(50)),
        return_exceptions=True,
    )
    assert results.count("192.0.2.9/24") == 1
    assert all(isinstance(r, AddressInUse) for r in results if r != "192.0.2.9/24")


# ------------------------------------------------------------------ failures


async def test_a_failed_commit_changes_nothing_in_memory(make_service: ServiceFactory) -> None:
    store = MemoryStore()
    service = await make_service(store)
    pool_id = await pool(service)
    store.fail_commits = 1
    with pytest.raises(StoreError, match="simulated failure"):
        await addr(service, pool_id)
    assert service.allocator.holdings(pool_id) == {}
    assert service.allocator.leases[pool_id].cursor is None
    assert await addr(service, pool_id) == "192.0.2.1/24"  # the same answer, now committed

    store.fail_commits = 1
    with pytest.raises(StoreError):
        await pool(service, "198.51.100.0/24")
    assert list(service.allocator.leases) == [pool_id]

    store.fail_commits = 1
    with pytest.raises(StoreError):
        await service.release_pool(pool_id)
    assert service.allocator.leases[pool_id].record.refcount == 1


async def test_a_cancelled_caller_does_not_undo_a_committed_allocation(
    make_service: ServiceFactory,
) -> None:
    store = MemoryStore()
    service = await make_service(store)
    pool_id = await pool(service)
    task = asyncio.ensure_future(addr(service, pool_id, "", endpoint("web")))
    await asyncio.sleep(0)  # let it start and reach the store thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.05)
    stored = {a.address for a in store.allocations.values()}
    assert stored == set(service.allocator.holdings(pool_id)) == {"192.0.2.1"}


async def test_if_applying_fails_memory_is_rebuilt_from_the_store(
    make_service: ServiceFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryStore()
    service = await make_service(store)
    pool_id = await pool(service)
    allocator = service.allocator

    def broken(change: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(allocator, "apply", broken)
    with pytest.raises(RuntimeError):
        await addr(service, pool_id)
    assert service.allocator is not allocator  # rebuilt from the store
    assert set(service.allocator.holdings(pool_id)) == {"192.0.2.1"}
    assert await addr(service, pool_id) == "192.0.2.2/24"


async def test_calls_wait_for_the_load(clock: Clock) -> None:
    service = IpamService(MemoryStore(), make_settings(), clock)
    waiting = asyncio.ensure_future(pool(service))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await service.load()
    assert await waiting == "local/default/192.0.2.0/24"
    await service.close()
    with pytest.raises(StoreError, match="shut down"):
        await pool(service)


async def test_a_plan_that_no_longer_names_this_host_after_a_rename_keeps_its_addresses(
    make_service: ServiceFactory,
) -> None:
    store = MemoryStore()
    before = await make_service(store, node="hostA")
    pool_id = await network_create(before, "192.0.2.0/24", "192.0.2.1", nodes="hostA,hostB")
    await addr(before, pool_id, "", endpoint("web"))
    await before.close()
    after = await make_service(store, node="renamed")
    assert set(after.allocator.holdings(pool_id)) == {"192.0.2.1", "192.0.2.2"}
    with pytest.raises(InvalidRequest) as caught:
        await addr(after, pool_id, "", endpoint("web2"))
    assert str(caught.value).startswith(
        f'pool ID "{pool_id}" cannot hand out addresses on this host: the address plan names '
        'nodes "hostA", "hostB" but not this host "renamed"'
    )
    assert await addr(after, pool_id, "192.0.2.200", endpoint("db")) == "192.0.2.200/24"


class BrokenStore(MemoryStore):
    def load(self) -> Snapshot:
        raise StoreError("cannot open the IPAM state /nowhere/ipam.sqlite3: disk on fire")


async def test_calls_refuse_to_run_on_state_that_failed_to_load(clock: Clock) -> None:
    service = IpamService(BrokenStore(), make_settings(), clock)
    with pytest.raises(StoreError):
        await service.load()
    with pytest.raises(StoreError) as caught:
        await pool(service)
    assert str(caught.value) == (
        "the IPAM state could not be loaded: cannot open the IPAM state /nowhere/ipam.sqlite3: "
        "disk on fire"
    )
    await service.close()


async def test_a_cancelled_load_does_not_leave_an_empty_state_in_service(clock: Clock) -> None:
    service = IpamService(MemoryStore(), make_settings(), clock)
    loading = asyncio.ensure_future(service.load())
    await asyncio.sleep(0)
    loading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loading
    with pytest.raises(StoreError, match="could not be loaded: loading stopped"):
        await pool(service)
    await service.close()


async def test_a_returning_container_gets_its_address_back_while_it_rests(
    tmp_path: Path, clock: Clock
) -> None:
    """Docker >= 29 names the endpoint: a restarted container keeps its address."""
    service = IpamService.open_sqlite(tmp_path, make_settings(), clock, files=StateFiles())
    await service.load()
    pool_id = await pool(service)
    web = await addr(service, pool_id, "", endpoint("web"))
    db = await addr(service, pool_id, "", endpoint("db"))
    for address in (web, db):
        await service.release_address(pool_id=pool_id, address=address.split("/")[0])
        clock.advance(1)
    # A stranger gets a fresh address, not one of the resting ones...
    stranger = await addr(service, pool_id, "", endpoint("other"))
    assert stranger not in (web, db)
    # ...and each returning container its own, also across a restart of the plugin.
    await service.close()
    service = IpamService.open_sqlite(tmp_path, make_settings(), clock, files=StateFiles())
    await service.load()
    assert await addr(service, pool_id, "", endpoint("db")) == db
    assert await addr(service, pool_id, "", endpoint("web")) == web
    # Once the quarantine is over, the memory is gone with it.
    await service.release_address(pool_id=pool_id, address=web.split("/")[0])
    clock.advance(301)
    assert await addr(service, pool_id, "", endpoint("web")) != web
    await service.close()
