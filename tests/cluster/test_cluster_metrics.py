"""Cluster mode's metrics and health through a real daemon on a real etcd cluster: the blocks a
host holds, etcd reachable, its calls counted by outcome."""

from __future__ import annotations

import ipaddress
import json

from tests.cluster.hosts import Hosts
from tests.harness.metrics_text import Scrape
from tests.harness.unixhttp import request

SUBNET = "198.18.16.0/20"


def test_a_host_with_a_block_reports_it_and_a_reachable_etcd(hosts: Hosts) -> None:
    host = hosts.start("node1")
    pool_id = host.request_pool(SUBNET, block_size="28")
    host.allocate(pool_id)
    (block,) = hosts.blocks_of("node1")

    status, body = request(host.daemon.socket_path, "GET", "/pymacvlan/v1/metrics")
    assert status == 200
    metrics = Scrape(body.decode())
    v4 = {"address_space": "local", "lan": "default", "family": "IPv4"}
    assert metrics.value("pymacvlan_cluster_blocks", **v4) == 1
    assert metrics.value("pymacvlan_etcd_reachable") == 1
    # The claim was one transaction at least, answered.
    assert metrics.value("pymacvlan_etcd_requests_total", call="kv/txn", outcome="ok") >= 1
    assert metrics.value("pymacvlan_etcd_request_duration_seconds_count", call="kv/txn") >= 1
    labels = {"pool": pool_id, "address_space": "local", "lan": "default", "subnet": SUBNET}
    subnet = ipaddress.ip_network(SUBNET)
    reserved = {subnet.network_address, subnet.broadcast_address}
    # This host's part of the pool: its block, less the subnet's reserved addresses in it.
    assert metrics.value("pymacvlan_pool_size", **labels) == len(set(block) - reserved)
    assert metrics.value("pymacvlan_pool_addresses", **labels, state="used") == 1

    status, body = request(host.daemon.socket_path, "GET", "/pymacvlan/v1/health")
    assert (status, json.loads(body)) == (200, {"status": "ready", "reasons": []})
