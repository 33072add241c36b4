"""Unit tests (no etcd): cluster mode's settings, flags and environment, and the CLI's refusals."""

from __future__ import annotations

import pytest

from ipam.cluster.config import ClusterConfig
from ipam.errors import InvalidRequest
from plugin import cli
from plugin.settings import Settings, SettingsError, from_arguments


def test_cluster_mode_is_off_without_endpoints() -> None:
    assert Settings(node_name="node1").cluster is None
    assert ClusterConfig.parse(" , ") is None


def test_endpoints_prefix_and_timeouts_are_read() -> None:
    settings = Settings(
        node_name="node1",
        etcd_endpoints="http://127.0.0.1:2379, http://[::1]:2379/",
        etcd_prefix="/lab/pymacvlan/",
        etcd_timeout=0.5,
        cluster_sweep_seconds=10,
    )
    config = settings.cluster
    assert config is not None
    assert config.endpoints == ("http://127.0.0.1:2379", "http://[::1]:2379")
    assert (config.prefix, config.timeout, config.sweep_seconds) == ("/lab/pymacvlan", 0.5, 10)
    assert config.describe() == "endpoints http://127.0.0.1:2379, http://[::1]:2379"


@pytest.mark.parametrize(
    ("endpoints", "message"),
    [
        (
            "127.0.0.1:2379",
            "invalid etcd endpoint '127.0.0.1:2379': expected http://HOST:PORT or "
            "https://HOST:PORT, such as http://127.0.0.1:2379",
        ),
        (
            "http://127.0.0.1",
            "invalid etcd endpoint 'http://127.0.0.1': expected http://HOST:PORT or "
            "https://HOST:PORT, such as http://127.0.0.1:2379",
        ),
        ("https://127.0.0.1", "expected http://HOST:PORT or https://HOST:PORT"),
        ("http://u:p@127.0.0.1:2379", "no user or password in the URL; use --etcd-user"),
        ("http://127.0.0.1:2379/v3", "(no path)"),
        ("http://127.0.0.1:2379,http://127.0.0.1:2379", "an endpoint is listed twice"),
    ],
)
def test_bad_endpoints_are_refused(endpoints: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        ClusterConfig.parse(endpoints)
    assert message in str(caught.value)
    with pytest.raises(SettingsError):
        Settings(node_name="node1", etcd_endpoints=endpoints)


def test_other_cluster_settings_are_checked() -> None:
    live = "http://127.0.0.1:2379"
    with pytest.raises(SettingsError, match="invalid etcd prefix 'pymacvlan'"):
        Settings(node_name="n", etcd_endpoints=live, etcd_prefix="pymacvlan")
    with pytest.raises(SettingsError, match=r"the etcd timeout must be 0\.05-10 seconds, not 60"):
        Settings(node_name="n", etcd_endpoints=live, etcd_timeout=60)
    with pytest.raises(SettingsError, match="cannot be used in cluster mode"):
        Settings(node_name="host/1", etcd_endpoints=live)
    # Without cluster mode the same node name is fine (it only names plan entries).
    Settings(node_name="host/1")


def test_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMACVLAN_ETCD_ENDPOINTS", "http://127.0.0.1:2379")
    monkeypatch.setenv("PYMACVLAN_ETCD_TIMEOUT", "0.25")
    args = cli.build_parser().parse_args(["serve", "--etcd-prefix", "/x", "--node-name", "n1"])
    settings = from_arguments(args)
    assert settings.cluster is not None
    assert settings.cluster.endpoints == ("http://127.0.0.1:2379",)
    assert (settings.cluster.prefix, settings.cluster.timeout) == ("/x", 0.25)


def test_the_cli_refuses_bad_etcd_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--etcd-endpoints", "ftp://x:1", "--node-name", "n1"]) == 2
    assert "invalid etcd endpoint 'ftp://x:1'" in capsys.readouterr().err
    assert cli.main(["cluster", "status", "--etcd-endpoints", ""]) == 2
    assert "cluster mode is off" in capsys.readouterr().err
