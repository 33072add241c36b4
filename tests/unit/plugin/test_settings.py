"""Settings: flags over PYMACVLAN_* environment over defaults; bad values stop the daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugin.cli import build_parser, main
from plugin.settings import SettingsError, from_arguments


def settings_for(argv: list[str]):  # type: ignore[no-untyped-def]
    return from_arguments(build_parser().parse_args(["serve", *argv]))


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SOCKET", "STATE_DIR", "NODE_NAME", "QUARANTINE_SECONDS", "DHCP_RETRY_SECONDS"):
        monkeypatch.delenv(f"PYMACVLAN_{name}", raising=False)
    s = settings_for([])
    assert s.socket == Path("/run/docker/plugins/pymacvlan.sock")
    assert s.state_dir == Path("/var/lib/pymacvlan")
    assert s.node_name  # the host name
    assert s.quarantine_seconds == 300.0
    assert s.dhcp_retry_seconds == 60.0  # RFC 2131 §4.4.5


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMACVLAN_NODE_NAME", "from-env")
    monkeypatch.setenv("PYMACVLAN_QUARANTINE_SECONDS", "12.5")
    assert settings_for([]).node_name == "from-env"
    assert settings_for([]).quarantine_seconds == 12.5
    assert settings_for(["--node-name", "from-flag"]).node_name == "from-flag"
    monkeypatch.setenv("PYMACVLAN_DHCP_RETRY_SECONDS", "2")
    assert settings_for([]).dhcp_retry_seconds == 2.0
    assert settings_for(["--dhcp-retry-seconds", "0.5"]).dhcp_retry_seconds == 0.5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--quarantine-seconds", "-1"], "quarantine must be >= 0"),
        (["--announce-count", "11"], "announce count must be 0-10"),
        (["--dhcp-retry-seconds", "0"], "DHCP retry must be > 0 seconds"),
        (["--dhcp-retry-seconds", "nan"], "DHCP retry must be > 0 seconds"),
        (["--dhcp-retry-seconds", "inf"], "DHCP retry must be > 0 seconds"),
        (["--default-pools", "10.0.0.0/8:4"], "10.0.0.0/8"),
    ],
)
def test_bad_values_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_for(argv)


def test_serve_exits_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--quarantine-seconds", "-5"]) == 2
    assert "quarantine must be >= 0" in capsys.readouterr().err
