"""Cluster mode end to end: real `pymacvlan serve` daemons on one real 3-member etcd cluster.

Every host is a daemon process with its own socket, state directory and node name; the tests
speak the IpamDriver protocol to them over their sockets, as dockerd does, kill etcd members, stop
the whole etcd cluster, restart daemons, and read the cluster with `pymacvlan cluster status`
and `reclaim`, as an operator would. Only loopback and 198.18.0.0/15 (numbers only: these
addresses never reach an interface).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from tests.cluster.etcd_cluster import EtcdCluster
from tests.cluster.hosts import GATEWAY, Host, Hosts

SUBNET = "198.18.0.0/20"


def inside(address: str, blocks: list[ipaddress.IPv4Network]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in block for block in blocks)


def allocate_concurrently(
    work: list[tuple[Host, str, int]], threads: int = 4
) -> dict[str, list[str]]:
    """Each (host, pool ID, count): `count` automatic requests, `threads` at a time per host."""
    results: dict[str, list[str]] = {host.node: [] for host, _, _ in work}
    with ThreadPoolExecutor(max_workers=threads * len(work)) as pool:
        futures = [
            (host.node, pool.submit(host.allocate, pool_id))
            for host, pool_id, count in work
            for _ in range(count)
        ]
        for node, future in futures:
            results[node].append(future.result())
    return results


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def test_three_hosts_never_hand_out_one_address_twice(hosts: Hosts) -> None:
    lab = [hosts.start(f"node{i}") for i in (1, 2, 3)]
    # The same `docker network create --subnet 198.18.0.0/20 --gateway 198.18.0.1` everywhere.
    pools = [host.request_pool(SUBNET) for host in lab]
    assert len(set(pools)) == 1
    for host, pool_id in zip(lab, pools, strict=True):
        assert host.allocate(pool_id, "198.18.0.1", **GATEWAY) == "198.18.0.1"
    results = allocate_concurrently(
        [(host, pool_id, 150) for host, pool_id in zip(lab, pools, strict=True)]
    )
    everything = [a for addresses in results.values() for a in addresses]
    assert len(everything) == 450
    assert len(set(everything)) == 450, "an address was handed out twice"
    assert "198.18.0.1" not in everything
    status = hosts.status()
    assert {n: v["running"] for n, v in status["nodes"].items()} == {
        "node1": True,
        "node2": True,
        "node3": True,
    }
    (pool,) = status["pools"]
    assert (pool["pool"], pool["block_size"], pool["blocks_total"]) == (SUBNET, 26, 64)
    for host in lab:
        blocks = hosts.blocks_of(host.node)
        assert len(blocks) >= 3  # 150 addresses in blocks of 64
        assert all(inside(a, blocks) for a in results[host.node]), host.node
    text = hosts.cli("status")
    assert text.returncode == 0, text.stderr
    assert f"pool {SUBNET} on LAN default (local, IPv4): " in text.stdout
    for host in lab:
        assert f"  {host.node:<24} running " in text.stdout
    all_blocks = [ipaddress.ip_network(b["block"]) for b in pool["blocks"]]
    assert not any(a.overlaps(b) for i, a in enumerate(all_blocks) for b in all_blocks[i + 1 :]), (
        "two hosts hold overlapping blocks"
    )


def test_allocation_goes_on_when_an_etcd_member_dies(
    own_etcd: EtcdCluster, own_hosts: Hosts
) -> None:
    lab = [own_hosts.start(f"node{i}") for i in (1, 2, 3)]
    # Small blocks: every host claims again and again, also after the member is gone.
    pools = [host.request_pool(SUBNET, block_size="28") for host in lab]
    before = allocate_concurrently([(h, p, 40) for h, p in zip(lab, pools, strict=True)])
    blocks_before = {h.node: len(own_hosts.blocks_of(h.node)) for h in lab}
    # The first endpoint is every daemon's first choice: kill -9 exactly that member.
    own_etcd.kill(0)
    after = allocate_concurrently([(h, p, 60) for h, p in zip(lab, pools, strict=True)])
    everything = [a for r in (before, after) for addresses in r.values() for a in addresses]
    assert len(set(everything)) == len(everything) == 300
    survivors = ",".join(m.endpoint for m in own_etcd.members[1:])
    for host in lab:
        blocks = own_hosts.blocks_of(host.node, endpoints=survivors)
        assert len(blocks) > blocks_before[host.node], f"{host.node} claimed nothing after"
        assert all(inside(a, blocks) for a in before[host.node] + after[host.node])


def test_a_host_cut_off_from_etcd_uses_its_blocks_then_says_why_it_cannot_grow(
    own_etcd: EtcdCluster, own_hosts: Hosts
) -> None:
    host = own_hosts.start("node1")
    pool_id = host.request_pool(SUBNET, block_size="28")
    taken = [host.allocate(pool_id)]
    (block,) = own_hosts.blocks_of("node1")
    subnet = ipaddress.ip_network(SUBNET)
    capacity = sum(1 for a in block if a not in (subnet.network_address, subnet.broadcast_address))

    own_etcd.stop_all()
    taken += [host.allocate(pool_id) for _ in range(4)]
    # Restarting while etcd is down keeps the blocks and the allocations (both on disk).
    host.daemon.restart()
    taken += [host.allocate(pool_id) for _ in range(capacity - len(taken))]
    assert len(set(taken)) == capacity
    assert all(inside(a, [block]) for a in taken)
    answer = host.request(pool_id)
    assert answer.status == 500
    assert answer.err.startswith(
        f"no available addresses in this host's blocks of {SUBNET} and the etcd cluster "
        f"(endpoints {own_etcd.endpoints.replace(',', ', ')}) cannot be reached to claim "
        "another block: "
    ), answer.err
    assert "connection refused" in answer.err
    assert "etcd unreachable" in host.log()
    down = own_hosts.cli("status")  # the operator's command says it in the same words
    assert down.returncode == 1
    assert down.stderr.startswith(
        f"pymacvlan: the etcd cluster (endpoints {own_etcd.endpoints.replace(',', ', ')}) cannot "
        "be reached: "
    ), down.stderr

    own_etcd.start()  # the same members, the same data: the cluster is back
    more = host.allocate(pool_id)
    assert more not in taken
    blocks = own_hosts.blocks_of("node1")
    assert len(blocks) == 2
    assert block in blocks
    assert inside(more, [b for b in blocks if b != block])


def test_empty_blocks_go_back_and_a_gone_hosts_blocks_can_be_reclaimed(hosts: Hosts) -> None:
    small = "198.18.0.0/26"  # four /28 blocks
    one = hosts.start("node1", quarantine=1.0, sweep=0.5)
    three = hosts.start("node3", quarantine=1.0, sweep=0.5)
    p1 = one.request_pool(small, block_size="28")
    p3 = three.request_pool(small, block_size="28")
    for _ in range(20):
        three.allocate(p3)
    on_one = [one.allocate(p1) for _ in range(20)]
    assert len(hosts.blocks_of("node1")) == len(hosts.blocks_of("node3")) == 2

    # node1 empties its fuller block's neighbour: after the quarantine it goes back to etcd.
    blocks = hosts.blocks_of("node1")
    lighter = min(blocks, key=lambda b: sum(inside(a, [b]) for a in on_one))
    for address in [a for a in on_one if inside(a, [lighter])]:
        one.release(p1, address)
    wait_for(
        lambda: hosts.blocks_of("node1") == [b for b in blocks if b != lighter], 15, "give-back"
    )
    assert "cluster block given back" in one.log()

    # Fill the subnet: node1 takes the returned block again, then nothing is left.
    while (answer := one.request(p1)).status == 200:
        pass
    assert "no free /28 block is left in 198.18.0.0/26" in answer.err
    assert "(4 blocks claimed: node1 2, node3 2)" in answer.err

    refused = hosts.cli("reclaim", "--node", "node3")
    assert refused.returncode == 1
    assert 'node "node3" is running' in refused.stderr
    assert len(hosts.blocks_of("node3")) == 2

    three.daemon.stop()  # a clean stop withdraws node3's registration at once
    dry = hosts.cli("reclaim", "--node", "node3", "--dry-run")
    assert dry.returncode == 0
    assert dry.stdout.startswith('would give back 2 blocks of node "node3"')
    done = hosts.cli("reclaim", "--node", "node3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('gave back 2 blocks of node "node3"')
    freed = [ipaddress.IPv4Network(b) for b in done.stdout.split(": ", 1)[1].split(";")[0].split()]
    assert hosts.blocks_of("node3") == []

    # node3 is gone: node1 may now hand out addresses of node3's former blocks.
    got = one.allocate(p1)
    assert inside(got, freed)
    assert hosts.status()["nodes"]["node1"]["blocks"] == 3


def test_restart_keeps_blocks_and_allocations(hosts: Hosts) -> None:
    host = hosts.start("node1")
    pool_id = host.request_pool(SUBNET)
    first = [host.allocate(pool_id) for _ in range(10)]
    blocks = hosts.blocks_of("node1")
    host.daemon.restart()
    assert host.request_pool(SUBNET) == pool_id  # Docker does not send it again; harmless
    second = [host.allocate(pool_id) for _ in range(10)]
    assert not set(first) & set(second)
    assert hosts.blocks_of("node1") == blocks
    answer = host.request(pool_id, first[0], **{"com.docker.network.endpoint.name": "web"})
    assert answer.status == 500
    assert answer.err.startswith(f"Address already in use: {first[0]}")
