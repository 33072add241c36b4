"""The logic behind the metrics and the health route, without a daemon: the health verdict, call
outcomes, histogram buckets, etcd call counting, the listen address, cluster blocks."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client.core import Metric

from driver.errors import InvalidOption
from ipam.addresses import Family, parse_subnet
from ipam.cluster.cache import BlockCache, CachedBlock
from ipam.cluster.config import ClusterConfig
from ipam.cluster.etcd import LATENCY_BOUNDS, CallStats, EtcdClient, EtcdStats
from ipam.cluster.kv import MemoryKV
from ipam.cluster.layout import Scope
from ipam.cluster.mode import ClusterMode
from ipam.errors import ClusterUnavailable, InvalidRequest, StoreError
from plugin.admin.health import Health, judge
from plugin.cli import build_parser
from plugin.errors import MalformedRequest, NotReady
from plugin.metrics import FAILED, OK, REFUSED, outcome_of
from plugin.metrics_state import cluster_families, cumulative_buckets, etcd_families
from plugin.settings import Settings, SettingsError, from_arguments, parse_listen_address
from plugin.state_files import StateFiles

# ----------------------------------------------------------------------------- health


@pytest.mark.parametrize(
    ("loaded", "load_error", "cluster", "expected"),
    [
        (True, None, [], Health("ready")),
        (False, None, [], Health("loading", ("the state is being loaded",))),
        (
            True,
            "bad file",
            [],
            Health("degraded", ("the state cannot be used: bad file",)),
        ),
        (True, None, ["etcd unreachable"], Health("degraded", ("etcd unreachable",))),
        # The state says more than the cluster, and both are said.
        (
            True,
            "bad file",
            ["etcd unreachable"],
            Health("degraded", ("the state cannot be used: bad file", "etcd unreachable")),
        ),
        # The cluster's upkeep starts once the state is loaded: loading says it all.
        (False, None, ["etcd unreachable"], Health("loading", ("the state is being loaded",))),
    ],
)
def test_health_verdict(
    loaded: bool, load_error: str | None, cluster: list[str], expected: Health
) -> None:
    health = judge(loaded=loaded, load_error=load_error, cluster_problems=cluster)
    assert health == expected
    assert health.http_status == (200 if expected.status == "ready" else 503)
    assert health.to_json() == {"status": expected.status, "reasons": list(expected.reasons)}


# -------------------------------------------------------------------------- call outcomes


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (MalformedRequest("bad JSON"), REFUSED),
        (InvalidRequest("bad option"), REFUSED),
        (InvalidOption("bad driver option"), REFUSED),
        (web.HTTPRequestEntityTooLarge(max_size=1, actual_size=2), REFUSED),
        (NotReady("state unusable"), FAILED),
        (StoreError("disk full"), FAILED),
        (RuntimeError("a bug"), FAILED),
    ],
)
def test_a_call_that_raised_is_refused_when_the_error_middleware_answers_400(
    exc: BaseException, outcome: str
) -> None:
    assert outcome_of(exc) == outcome
    assert OK not in (REFUSED, FAILED)


# ------------------------------------------------------------------ etcd calls and buckets


def test_call_durations_fall_in_the_first_bucket_that_holds_them() -> None:
    stats = CallStats()
    for seconds in (0.0, 0.005, 0.0051, 0.3, 10.0, 10.5, 99.0):
        stats.record("ok", seconds)
    expected = [0] * (len(LATENCY_BOUNDS) + 1)
    expected[0] = 2  # 0 and exactly the first bound (le is "less than or equal")
    expected[1] = 1  # 0.0051 <= 0.01
    expected[LATENCY_BOUNDS.index(0.5)] = 1
    expected[LATENCY_BOUNDS.index(10.0)] = 1
    expected[-1] = 2  # above every bound: only +Inf counts them
    assert stats.buckets == expected
    assert stats.outcomes == {"ok": 7, "unavailable": 0, "refused": 0, "cancelled": 0}
    assert stats.seconds == pytest.approx(0.0 + 0.005 + 0.0051 + 0.3 + 10.0 + 10.5 + 99.0)


def test_prometheus_buckets_are_cumulative_and_end_with_inf() -> None:
    counts = [1] + [0] * (len(LATENCY_BOUNDS) - 1) + [2]
    buckets = cumulative_buckets(counts)
    assert buckets[0] == ("0.005", 1.0)
    assert buckets[-2] == ("10.0", 1.0)
    assert buckets[-1] == ("+Inf", 3.0)
    assert [count for _, count in buckets] == sorted(count for _, count in buckets)


def samples(families: list[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_etcd_calls_by_call_and_outcome_with_their_durations() -> None:
    stats = EtcdStats()
    stats.record("kv/range", "ok", 0.002)
    stats.record("kv/range", "ok", 0.04)
    stats.record("kv/range", "unavailable", 3.0)
    stats.record("lease/grant", "refused", 0.001)
    found = samples(list(etcd_families(stats)))
    calls = "pymacvlan_etcd_requests_total"
    assert found[(calls, (("call", "kv/range"), ("outcome", "ok")))] == 2
    assert found[(calls, (("call", "kv/range"), ("outcome", "unavailable")))] == 1
    assert found[(calls, (("call", "kv/range"), ("outcome", "cancelled")))] == 0
    assert found[(calls, (("call", "lease/grant"), ("outcome", "refused")))] == 1
    seconds = "pymacvlan_etcd_request_duration_seconds"
    assert found[(f"{seconds}_count", (("call", "kv/range"),))] == 3
    assert found[(f"{seconds}_sum", (("call", "kv/range"),))] == pytest.approx(3.042)
    assert found[(f"{seconds}_bucket", (("call", "kv/range"), ("le", "0.05")))] == 2
    assert found[(f"{seconds}_bucket", (("call", "kv/range"), ("le", "2.5")))] == 2
    assert found[(f"{seconds}_bucket", (("call", "kv/range"), ("le", "5.0")))] == 3


async def test_the_etcd_client_counts_a_call_no_endpoint_answered() -> None:
    # A loopback port nobody listens on: refused at once, on both rounds.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = EtcdClient([f"http://127.0.0.1:{port}"], timeout=0.5)
    try:
        with pytest.raises(ClusterUnavailable, match="connection refused"):
            await client.range("/pymacvlan/x")
    finally:
        await client.close()
    [(call, stats)] = client.stats.calls.items()
    assert call == "kv/range"
    assert stats.outcomes == {"ok": 0, "unavailable": 1, "refused": 0, "cancelled": 0}
    assert sum(stats.buckets) == 1


# ----------------------------------------------------------------------- cluster blocks


async def test_cluster_blocks_are_counted_by_address_space_lan_and_family(
    tmp_path: Path,
) -> None:
    v4 = Scope("local", "default", Family.V4)
    v6 = Scope("local", "default", Family.V6)
    cache = BlockCache(tmp_path / BlockCache.FILE_NAME, StateFiles())
    cache.open()
    cache.add(
        [
            CachedBlock(v4, parse_subnet("198.18.0.0/26"), "198.18.0.0/24", 1.0),
            CachedBlock(v4, parse_subnet("198.18.0.64/26"), "198.18.0.0/24", 1.0),
            CachedBlock(v6, parse_subnet("2001:db8::/122"), "2001:db8::/64", 1.0),
        ]
    )
    cache.close()
    config = ClusterConfig(endpoints=("http://127.0.0.1:2379",))
    mode = ClusterMode(config, "node1", tmp_path, files=StateFiles(), kv=MemoryKV())
    await mode.load()
    try:
        found = samples(list(cluster_families(mode)))
    finally:
        await mode.close()
    assert found == {
        (
            "pymacvlan_cluster_blocks",
            (("address_space", "local"), ("family", "IPv4"), ("lan", "default")),
        ): 2,
        (
            "pymacvlan_cluster_blocks",
            (("address_space", "local"), ("family", "IPv6"), ("lan", "default")),
        ): 1,
    }  # and nothing about etcd: not contacted yet, and no etcd client behind MemoryKV
    assert mode.problems() == []


# ------------------------------------------------------------------------ listen address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9523", ("127.0.0.1", 9523)),
        ("0.0.0.0:9523", ("0.0.0.0", 9523)),
        (":9523", ("", 9523)),
        ("[::1]:9523", ("::1", 9523)),
        ("[::]:0", ("::", 0)),
        ("localhost:65535", ("localhost", 65535)),
        ("metrics.example.org:80", ("metrics.example.org", 80)),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(text) == expected
    assert Settings(metrics_listen=text).metrics_address == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9523", "is not HOST:PORT"),
        ("127.0.0.1", "is not HOST:PORT"),
        ("127.0.0.1:", "is not HOST:PORT"),
        ("127.0.0.1:-1", "is not HOST:PORT"),
        ("127.0.0.1:http", "is not HOST:PORT"),
        ("127.0.0.1:65536", "port must be 0-65535, not 65536"),
        ("::1:9523", "is not HOST:PORT"),  # an IPv6 address needs its brackets
        ("[nope]:9523", "is not HOST:PORT"),
        ("bad host:9523", "is not HOST:PORT"),
        ("x" * 500 + ":1", "'" + "x" * 77 + "...'"),  # shown cut, never echoed whole
    ],
)
def test_bad_listen_addresses_are_refused(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace(".", r"\.")):
        Settings(metrics_listen=text)


def settings_for(argv: list[str]) -> Settings:
    return from_arguments(build_parser().parse_args(["serve", *argv]))


def test_the_listener_is_off_by_default_and_set_by_flag_or_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PYMACVLAN_METRICS_LISTEN", raising=False)
    assert settings_for([]).metrics_address is None
    monkeypatch.setenv("PYMACVLAN_METRICS_LISTEN", "127.0.0.1:9523")
    assert settings_for([]).metrics_address == ("127.0.0.1", 9523)
    assert settings_for(["--metrics-listen", ":9600"]).metrics_address == ("", 9600)
    with pytest.raises(SettingsError, match="is not HOST:PORT"):
        settings_for(["--metrics-listen", "nine"])
