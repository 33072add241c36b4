"""Unit tests (no etcd): the settings that secure cluster mode's traffic with etcd.

https:// endpoints with a CA bundle and a client certificate, an etcd user with its password
from the environment or a file: accepted and described; every file that cannot be used refused
at start with one line naming it; the password in no repr, description or message. The
certificates are throwaway ones made with openssl (tests/cluster/certs.py).
"""

from __future__ import annotations

import ssl
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ipam.cluster.config import ClusterConfig
from ipam.cluster.security import EtcdAuth, auth_refusal, certificate_dates
from ipam.errors import InvalidRequest
from plugin import cli
from plugin.settings import Settings, SettingsError, from_arguments
from tests.cluster.certs import Certs, make_certs
from tests.harness import prereq

HTTPS = "https://127.0.0.1:2379, https://localhost:2380/"
PASSWORD = "pw-Zq81-never-shown"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(prereq.require_command("openssl"), tmp_path_factory.mktemp("certs"))


def test_https_endpoints_with_a_ca_and_a_client_certificate(certs: Certs) -> None:
    settings = Settings(
        node_name="n1",
        etcd_endpoints=HTTPS,
        etcd_ca=str(certs.ca),
        etcd_cert=str(certs.path("client.pem")),
        etcd_key=str(certs.path("client.key")),
    )
    config = settings.cluster
    assert config is not None
    assert config.endpoints == ("https://127.0.0.1:2379", "https://localhost:2380")
    assert config.tls is not None
    assert config.tls.context.check_hostname
    assert config.tls.context.verify_mode == ssl.CERT_REQUIRED
    assert config.describe() == (
        "endpoints https://127.0.0.1:2379, https://localhost:2380 "
        f"(TLS with CA {certs.ca}, client certificate {certs.path('client.pem')})"
    )
    assert config.tls.client_cert_problem() is None


def test_https_without_a_ca_trusts_the_systems_cas() -> None:
    config = ClusterConfig.parse("https://etcd.example:2379")
    assert config is not None
    assert config.tls is not None
    assert config.tls.ca is None
    assert config.tls.cert is None
    assert config.tls.context.check_hostname
    assert config.describe() == "endpoints https://etcd.example:2379 (TLS with the system's CAs)"


def test_an_expired_client_certificate_is_known_by_its_dates(certs: Certs) -> None:
    config = ClusterConfig.parse(
        "https://127.0.0.1:2379",
        ca=str(certs.ca),
        cert=str(certs.path("expired-client.pem")),
        key=str(certs.path("expired-client.key")),
    )
    assert config is not None
    assert config.tls is not None
    problem = config.tls.client_cert_problem()
    assert problem is not None
    assert problem.startswith("it expired on ")


def openssl_dates(path: Path) -> tuple[datetime, datetime]:
    out = subprocess.run(
        ["openssl", "x509", "-in", str(path), "-noout", "-startdate", "-enddate"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    start, end = (line.split("=", 1)[1] for line in out[:2])
    return tuple(  # type: ignore[return-value]
        datetime.fromtimestamp(ssl.cert_time_to_seconds(t), UTC) for t in (start, end)
    )


def test_certificate_dates_match_openssls(certs: Certs, tmp_path: Path) -> None:
    # 10,000 days reach past 2049: the end is a GeneralizedTime, the start a UTCTime.
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(tmp_path / "long.key"), "-out", str(tmp_path / "long.pem"),
         "-days", "10000", "-subj", "/CN=long"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    for path in (certs.path("client.pem"), certs.path("expired-client.pem"), tmp_path / "long.pem"):
        der = ssl.PEM_cert_to_DER_cert(path.read_text())
        assert certificate_dates(der) == openssl_dates(path), path
    with pytest.raises(ValueError, match="DER"):
        certificate_dates(b"\x30\x03\x02\x01")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"etcd_endpoints": "http://127.0.0.1:2379,https://127.0.0.1:2380"},
            "etcd endpoints http://127.0.0.1:2379, https://127.0.0.1:2380: some are http://, "
            "some https://",
        ),
        (
            {"etcd_endpoints": "http://127.0.0.1:2379", "etcd_ca": "/etc/etcd/ca.pem"},
            "--etcd-ca, --etcd-cert and --etcd-key are for https:// endpoints, and the etcd "
            "endpoints are http:// (http://127.0.0.1:2379): write https://",
        ),
        (
            {"etcd_cert": "CERT"},
            "--etcd-cert is set but --etcd-key is not",
        ),
        (
            {"etcd_key": "KEY"},
            "--etcd-key is set but --etcd-cert is not",
        ),
        (
            {"etcd_ca": "{dir}/missing.pem"},
            "cannot read the etcd CA bundle {dir}/missing.pem: No such file or directory",
        ),
        (
            {"etcd_ca": "{dir}/client.key"},
            "the etcd CA bundle {dir}/client.key (--etcd-ca) holds no PEM certificate",
        ),
        (
            {"etcd_ca": "{dir}/broken-ca.pem"},
            "the etcd CA bundle {dir}/broken-ca.pem (--etcd-ca) cannot be used: ",
        ),
        (
            {"etcd_cert": "{dir}", "etcd_key": "{dir}/client.key"},
            "cannot read the etcd client certificate {dir}: Is a directory",
        ),
        (
            {"etcd_cert": "{dir}/client.pem", "etcd_key": "{dir}/other-ca-client.key"},
            "the etcd client key {dir}/other-ca-client.key (--etcd-key) does not belong to the "
            "client certificate {dir}/client.pem (--etcd-cert)",
        ),
        (
            {"etcd_cert": "{dir}/client.pem", "etcd_key": "{dir}/client.pem"},
            "the etcd client key {dir}/client.pem (--etcd-key) holds no PEM private key",
        ),
        (
            {"etcd_cert": "{dir}/client.pem", "etcd_key": "{dir}/encrypted.key"},
            "the etcd client key {dir}/encrypted.key (--etcd-key) is encrypted",
        ),
    ],
)
def test_tls_settings_that_cannot_be_used_stop_the_start(
    certs: Certs, settings: dict[str, str], message: str
) -> None:
    certs.path("broken-ca.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n"
    )
    certs.path("encrypted.key").write_text(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    values = {"etcd_endpoints": "https://127.0.0.1:2379", **settings}
    values = {k: v.replace("{dir}", str(certs.directory)) for k, v in values.items()}
    with pytest.raises(SettingsError) as caught:
        Settings(node_name="n1", **values)  # type: ignore[arg-type]
    assert message.replace("{dir}", str(certs.directory)) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_user_and_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMACVLAN_ETCD_ENDPOINTS", "http://127.0.0.1:2379")
    monkeypatch.setenv("PYMACVLAN_ETCD_USER", "pymacvlan")
    monkeypatch.setenv("PYMACVLAN_ETCD_PASSWORD", PASSWORD)
    settings = from_arguments(cli.build_parser().parse_args(["serve", "--node-name", "n1"]))
    config = settings.cluster
    assert config is not None
    assert config.auth is not None
    assert (config.auth.user, config.auth.password) == ("pymacvlan", PASSWORD)
    assert config.describe() == 'endpoints http://127.0.0.1:2379 (user "pymacvlan")'
    for shown in (repr(settings), repr(config), config.describe(), str(vars(config))):
        assert PASSWORD not in shown
    # The cluster commands read the same settings.
    args = cli.build_parser().parse_args(["cluster", "status"])
    assert args.etcd_user == "pymacvlan"
    assert args.etcd_password == PASSWORD


def test_the_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    args = cli.build_parser().parse_args(
        [
            "serve",
            "--node-name",
            "n1",
            "--etcd-endpoints",
            "http://127.0.0.1:2379",
            "--etcd-user",
            "pymacvlan",
            "--etcd-password-file",
            str(secret),
        ]
    )
    config = from_arguments(args).cluster
    assert config is not None
    assert config.auth is not None
    assert config.auth.password == PASSWORD
    assert config.auth.source == str(secret)
    assert PASSWORD not in repr(config) + config.describe()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"etcd_user": "u", "etcd_password": PASSWORD, "etcd_password_file": "/x"},
            "the etcd password is given twice: PYMACVLAN_ETCD_PASSWORD and --etcd-password-file",
        ),
        (
            {"etcd_user": "u"},
            'etcd user "u" has no password: set PYMACVLAN_ETCD_PASSWORD or --etcd-password-file',
        ),
        (
            {"etcd_password": PASSWORD},
            "an etcd password is given but no user: set --etcd-user (PYMACVLAN_ETCD_USER)",
        ),
        (
            {"etcd_user": "u", "etcd_password_file": "{dir}/missing"},
            "cannot read the etcd password file {dir}/missing (--etcd-password-file): No such "
            "file or directory",
        ),
        (
            {"etcd_user": "u", "etcd_password_file": "{dir}/empty"},
            "the etcd password file {dir}/empty (--etcd-password-file) is empty",
        ),
        (
            {"etcd_endpoints": f"http://root:{PASSWORD}@127.0.0.1:2379"},
            "invalid etcd endpoint 'http://127.0.0.1:2379': no user or password in the URL; use "
            "--etcd-user with PYMACVLAN_ETCD_PASSWORD or --etcd-password-file",
        ),
        (
            {"etcd_endpoints": f"http://root:{PASSWORD}@127.0.0.1:x"},
            "invalid etcd endpoint 'http://127.0.0.1:x': no user or password in the URL",
        ),
    ],
)
def test_password_settings_that_cannot_be_used_stop_the_start(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    (tmp_path / "empty").write_text("\n")
    values = {"etcd_endpoints": "http://127.0.0.1:2379", **settings}
    values = {k: v.replace("{dir}", str(tmp_path)) for k, v in values.items()}
    with pytest.raises(SettingsError) as caught:
        Settings(node_name="n1", **values)  # type: ignore[arg-type]
    assert message.replace("{dir}", str(tmp_path)) in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_a_refused_password_is_named_by_its_source_never_shown() -> None:
    refusal = auth_refusal(
        "etcdserver: authentication failed, invalid user ID or password",
        EtcdAuth("pymacvlan", PASSWORD, "/etc/pymacvlan/etcd/password"),
    )
    assert refusal == (
        'refused user "pymacvlan": wrong user name or password (etcdserver: authentication '
        "failed, invalid user ID or password, password from /etc/pymacvlan/etcd/password)"
    )


def test_the_commands_refuse_a_missing_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "ca.pem"
    common = ["--etcd-endpoints", "https://127.0.0.1:2379", "--etcd-ca", str(missing)]
    assert cli.main(["cluster", "status", *common]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"pymacvlan: cannot read the etcd CA bundle {missing}: No such file or directory\n"
    )
    assert cli.main(["serve", "--node-name", "n1", "--socket", str(tmp_path / "s"), *common]) == 2
    assert capsys.readouterr().err == err


def test_bad_endpoints_are_still_refused() -> None:
    with pytest.raises(InvalidRequest, match="expected http://HOST:PORT or https://HOST:PORT"):
        ClusterConfig.parse("ftp://127.0.0.1:2379")
