"""Fixtures of the cluster-mode tests: real etcd clusters on loopback and lab hosts.

* ``etcd``: the session's 3-member etcd cluster (shared: each test works under its own key
  prefix, ``etcd_prefix``). Tests that kill or stop members use ``own_etcd`` instead.
* ``own_etcd``: a 3-member cluster for this test alone, destroyed after it.
* ``hosts``: a factory of `pymacvlan serve` daemons in cluster mode against ``etcd``;
  ``own_hosts`` the same against ``own_etcd``.

Without the etcd binary (Debian's etcd-server) these tests skip, and fail under ``CI=true``.
They need no root: loopback ports, unix sockets and state directories in tmp dirs.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.etcd_cluster import EtcdCluster
from tests.cluster.hosts import Hosts
from tests.harness import prereq


@pytest.fixture(scope="session")
def etcd_binary() -> str:
    return prereq.require_command("etcd")


@pytest.fixture(scope="session")
def etcd(etcd_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(etcd_binary, tmp_path_factory.mktemp("etcd"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def own_etcd(etcd_binary: str, tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(etcd_binary, tmp_path / "etcd")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def etcd_prefix() -> str:
    """A key prefix of this test's own in the shared cluster."""
    return f"/pmvtest-{secrets.token_hex(4)}"


@pytest.fixture
def hosts(etcd: EtcdCluster, etcd_prefix: str, tmp_path: Path) -> Iterator[Hosts]:
    lab = Hosts(tmp_path, etcd.endpoints, etcd_prefix)
    try:
        yield lab
    finally:
        lab.cleanup()


@pytest.fixture
def own_hosts(own_etcd: EtcdCluster, etcd_prefix: str, tmp_path: Path) -> Iterator[Hosts]:
    lab = Hosts(tmp_path, own_etcd.endpoints, etcd_prefix)
    try:
        yield lab
    finally:
        lab.cleanup()
