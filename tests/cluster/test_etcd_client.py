"""The etcd client against the real etcd cluster: the gateway calls, failover across endpoints
(refused, silent), bounded time, and the error that names every endpoint."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from ipam.cluster.etcd import EtcdClient
from ipam.cluster.kv import Absent, Delete, Put, Unchanged
from ipam.errors import ClusterError, ClusterUnavailable
from tests.cluster.etcd_cluster import EtcdCluster, free_ports


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def refused_endpoint() -> str:
    return f"http://127.0.0.1:{free_ports(1)[0]}"


async def test_range_txn_and_leases(etcd: EtcdCluster, etcd_prefix: str) -> None:
    kv = EtcdClient(etcd.endpoints.split(","), 1.0)
    key = f"{etcd_prefix}/a"
    try:
        assert await kv.txn([Absent(key)], [Put(key, b"one")])
        assert not await kv.txn([Absent(key)], [Put(key, b"two")])  # compare failed
        (entry,) = await kv.range(key)
        assert (entry.key, entry.value) == (key, b"one")
        assert not await kv.txn([Unchanged(key, entry.mod_revision - 1)], [Delete(key)])
        # "Absent" over a range: no key starts with the prefix ... until one does.
        assert not await kv.txn([Absent(f"{etcd_prefix}/", f"{etcd_prefix}0")], [])
        assert await kv.txn([Absent(f"{etcd_prefix}/b/", f"{etcd_prefix}/b0")], [])
        for name in "cdb":
            await kv.txn([], [Put(f"{etcd_prefix}/{name}", name.encode())])
        keys = [e.key for e in await kv.range(f"{etcd_prefix}/", f"{etcd_prefix}0")]
        assert keys == [f"{etcd_prefix}/{n}" for n in "abcd"]
        last = await kv.range(f"{etcd_prefix}/", f"{etcd_prefix}/c0", limit=1, descending=True)
        assert [e.key for e in last] == [f"{etcd_prefix}/c"]
        lease = await kv.grant(30)
        await kv.txn([], [Put(f"{etcd_prefix}/leased", b"x", lease)])
        assert await kv.keepalive(lease) > 0
        await kv.revoke(lease)
        assert await kv.range(f"{etcd_prefix}/leased") == []
        assert await kv.keepalive(lease) == 0
        await kv.revoke(lease)  # again: fine
        assert await kv.txn([Unchanged(key, entry.mod_revision)], [Delete(key)])
    finally:
        await kv.close()


async def test_fails_over_to_the_next_endpoint(
    etcd: EtcdCluster, etcd_prefix: str, silent_endpoint: str
) -> None:
    dead = refused_endpoint()
    kv = EtcdClient([dead, silent_endpoint, etcd.members[1].endpoint], 0.5)
    try:
        started = time.monotonic()
        assert await kv.range(f"{etcd_prefix}/nothing") == []
        assert time.monotonic() - started < 1.5  # refused at once, silent for 0.5 s
        # The endpoint that answered is tried first from now on: no more waiting.
        started = time.monotonic()
        assert await kv.range(f"{etcd_prefix}/nothing") == []
        assert time.monotonic() - started < 0.4
    finally:
        await kv.close()


async def test_an_unreachable_cluster_is_reported_per_endpoint_within_the_deadline(
    silent_endpoint: str,
) -> None:
    dead = refused_endpoint()
    kv = EtcdClient([dead, silent_endpoint], 0.3)
    try:
        started = time.monotonic()
        with pytest.raises(ClusterUnavailable) as caught:
            await kv.range("/x")
        assert time.monotonic() - started < 3 * 0.3 + 0.3
        message = str(caught.value)
        assert f"{dead}: connection refused" in message
        assert f"{silent_endpoint}: no answer within" in message
    finally:
        await kv.close()


async def test_a_request_etcd_refuses_is_an_error_not_a_retry(
    etcd: EtcdCluster, etcd_prefix: str
) -> None:
    kv = EtcdClient(etcd.endpoints.split(","), 1.0)
    try:
        too_many = [Absent(f"{etcd_prefix}/k{i}") for i in range(200)]
        with pytest.raises(ClusterError, match="too many operations in txn request") as caught:
            await kv.txn(too_many, [])
        assert not isinstance(caught.value, ClusterUnavailable)
    finally:
        await kv.close()


async def test_bytes_sent_and_received_are_counted_per_call(
    etcd: EtcdCluster, etcd_prefix: str
) -> None:
    kv = EtcdClient(etcd.endpoints.split(","), 1.0)
    key = f"{etcd_prefix}/big"
    try:
        await kv.txn([], [Put(key, b"x" * 3000)])  # 4,000 bytes of base64 in the request
        await kv.range(key)
        await kv.range(key)
        txn, reads = kv.stats.calls["kv/txn"], kv.stats.calls["kv/range"]
        assert 4000 < txn.sent < 4500
        assert txn.received < 500
        assert reads.sent < 500
        assert 2 * 4000 < reads.received < 2 * 4500  # the value came back twice
    finally:
        await kv.close()


@pytest.fixture
def closing_endpoint() -> Iterator[str]:
    """A loopback HTTP server that answers every call as an etcd member answers while it shuts
    down: the gateway's gRPC connection to its own server is closing (gRPC CANCELED, HTTP 408)."""

    class Closing(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            text = "grpc: the client connection is closing"
            body = json.dumps({"error": text, "code": 1, "message": text}).encode()
            self.send_response(408)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Closing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_a_member_shutting_down_is_failed_over_not_an_error(
    etcd: EtcdCluster, etcd_prefix: str, closing_endpoint: str
) -> None:
    # Seen in the fault run (docs/performance.md): a member stopped with SIGTERM answered one
    # request this way, and the request failed instead of going to the next member.
    kv = EtcdClient([closing_endpoint, etcd.members[1].endpoint], 1.0)
    try:
        assert await kv.range(f"{etcd_prefix}/nothing") == []
        assert await kv.txn([Absent(f"{etcd_prefix}/k")], [Put(f"{etcd_prefix}/k", b"v")])
    finally:
        await kv.close()
