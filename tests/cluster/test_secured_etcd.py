"""Cluster mode against a secured etcd: real 3-member clusters on loopback with TLS.

* ``tls_etcd``: clients over TLS, client certificates required (--client-cert-auth).
* ``auth_etcd``: the same, plus etcd's user authentication (a user "pymacvlan" with read and
  write on "/", root for etcdctl) and simple tokens that expire after 2 s of disuse, so that
  renewing them is exercised; pymacvlan's client certificate has no Common Name there (etcd's
  JSON gateway refuses one once authentication is on).

Each is started once for the module. The daemons (`pymacvlan serve`) and `pymacvlan cluster
status` get the settings as a user gives them: flags for the daemon, PYMACVLAN_* variables for
the command. A wrong CA, an expired client certificate, a wrong password: one clear line each,
logged by the daemon at start-up and answered to what needs etcd, and on `cluster status`'s
stderr; never a traceback, never allocation as if there were no cluster.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from ipam.cluster.config import ClusterConfig
from ipam.cluster.etcd import EtcdClient
from ipam.cluster.kv import Put
from ipam.errors import EtcdAccessDenied
from tests.cluster.certs import Certs, make_certs
from tests.cluster.etcd_cluster import EtcdCluster, ServerTls, free_ports
from tests.cluster.hosts import Host, Hosts
from tests.harness import prereq
from tests.harness.metrics_text import Scrape
from tests.harness.unixhttp import request

SUBNET = "198.18.32.0/20"
PASSWORD = "Pw-7f3a-9c1e-never-in-logs"
TOKEN_TTL = 2  # seconds: etcd's --auth-token-ttl of auth_etcd


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(prereq.require_command("openssl"), tmp_path_factory.mktemp("certs"))


def server_tls(certs: Certs) -> ServerTls:
    return ServerTls(
        cert=certs.path("server.pem"),
        key=certs.path("server.key"),
        ca=certs.ca,
        client_cert=certs.path("client.pem"),
        client_key=certs.path("client.key"),
    )


@pytest.fixture(scope="module")
def tls_etcd(
    etcd_binary: str, certs: Certs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(etcd_binary, tmp_path_factory.mktemp("tls-etcd"), tls=server_tls(certs))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def auth_etcd(
    etcd_binary: str, certs: Certs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EtcdCluster]:
    etcdctl = prereq.require_command("etcdctl")
    cluster = EtcdCluster(
        etcd_binary,
        tmp_path_factory.mktemp("auth-etcd"),
        tls=server_tls(certs),
        extra_args=["--auth-token", "simple", "--auth-token-ttl", str(TOKEN_TTL)],
    )
    try:
        cluster.start()
        for args in (
            ["user", "add", "root:root-Pw-1"],
            ["user", "grant-role", "root", "root"],
            ["role", "add", "pymacvlan"],
            ["role", "grant-permission", "pymacvlan", "readwrite", "--prefix=true", "/"],
            ["user", "add", f"pymacvlan:{PASSWORD}"],
            ["user", "grant-role", "pymacvlan", "pymacvlan"],
            ["auth", "enable"],
        ):
            cluster.etcdctl(*args, etcdctl=etcdctl)
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def tls_lab(tls_etcd: EtcdCluster, etcd_prefix: str, tmp_path: Path) -> Iterator[Hosts]:
    lab = Hosts(tmp_path, tls_etcd.endpoints, etcd_prefix)
    try:
        yield lab
    finally:
        lab.cleanup()


@pytest.fixture
def auth_lab(auth_etcd: EtcdCluster, etcd_prefix: str, tmp_path: Path) -> Iterator[Hosts]:
    lab = Hosts(tmp_path, auth_etcd.endpoints, etcd_prefix)
    try:
        yield lab
    finally:
        lab.cleanup()


# ------------------------------------------------------------------- helpers


def tls_flags(certs: Certs, client: str | None = "client", ca: Path | None = None) -> list[str]:
    flags = ["--etcd-ca", str(ca or certs.ca)]
    if client is not None:
        flags += ["--etcd-cert", str(certs.path(f"{client}.pem"))]
        flags += ["--etcd-key", str(certs.path(f"{client}.key"))]
    return flags


def as_env(flags: list[str]) -> dict[str, str]:
    """The same settings as PYMACVLAN_* variables (how `docker plugin set` gives them)."""
    names = flags[::2]
    return {"PYMACVLAN_" + n.removeprefix("--").replace("-", "_").upper(): v
            for n, v in zip(names, flags[1::2], strict=True)}  # fmt: skip


def health(host: Host) -> tuple[int, dict[str, Any]]:
    status, body = request(host.daemon.socket_path, "GET", "/pymacvlan/v1/health")
    return status, json.loads(body)


def wait_degraded(host: Host, timeout: float = 15.0) -> list[str]:
    """The health's reasons once the daemon reports one (it contacts etcd at start-up)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = health(host)
        if body["status"] == "degraded":
            assert status == 503
            return list(body["reasons"])
        assert time.monotonic() < deadline, f"still {body} after {timeout} s\n{host.log()}"
        time.sleep(0.1)


def blocks_of(lab: Hosts, node: str, env: dict[str, str]) -> list[ipaddress.IPv4Network]:
    done = lab.cli("status", "--json", env=env)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    return [
        ipaddress.IPv4Network(b["block"])
        for pool in status["pools"]
        for b in pool["blocks"]
        if b["node"] == node
    ]


def assert_one_clear_refusal(host: Host, lab: Hosts, env: dict[str, str], expected: str) -> None:
    """What the user sees when etcd cannot be used with these settings: the daemon logs one
    line at start-up and reports it in its health; an address that needs a block is refused
    with it (500), not handed out as if there were no cluster; `cluster status` prints it as
    one line and exits 1."""
    reasons = wait_degraded(host)
    assert len(reasons) == 1, reasons
    assert reasons[0].startswith("etcd access denied ("), reasons
    assert expected in reasons[0], reasons
    pool_id = host.request_pool(SUBNET)
    answer = host.request(pool_id)
    assert answer.status == 500, answer
    assert answer.err.startswith(
        f"no available addresses in this host's blocks of {SUBNET} and this host may not use "
        "the etcd cluster ("
    ), answer.err
    assert expected in answer.err
    log = host.log()
    denied = [line for line in log.splitlines() if "etcd access denied" in line]
    assert len(denied) == 1, log
    assert expected.replace('"', '\\"') in denied[0]  # (quoted as a key=value log value)
    assert "Traceback" not in log
    done = lab.cli("status", env=env)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("pymacvlan: etcd at https://127.0.0.1:"), done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------- TLS, client certs


def test_a_host_claims_a_block_over_tls_with_a_client_certificate(
    tls_etcd: EtcdCluster, tls_lab: Hosts, certs: Certs
) -> None:
    flags = tls_flags(certs)
    host = tls_lab.start("node1", extra=tuple(flags))
    pool_id = host.request_pool(SUBNET)
    address = ipaddress.ip_address(host.allocate(pool_id))
    (block,) = blocks_of(tls_lab, "node1", as_env(flags))
    assert address in block
    assert health(host) == (200, {"status": "ready", "reasons": []})
    assert f"TLS with CA {certs.ca}, client certificate {certs.path('client.pem')}" in host.log()
    text = tls_lab.cli("status", env=as_env(flags))
    assert text.returncode == 0, text.stderr
    assert "node1                    running      1 block" in text.stdout


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "wrong CA",
            "has a certificate that the CA bundle {other_ca} (--etcd-ca) does not vouch for "
            "(unable to get local issuer certificate)",
        ),
        (
            "expired client certificate",
            "refused this host's client certificate {expired}: it expired on ",
        ),
        (
            "no client certificate",
            "requires a client certificate (sslv3 alert bad certificate): set --etcd-cert and "
            "--etcd-key",
        ),
    ],
)
def test_certificates_that_do_not_fit_are_one_clear_line(
    tls_lab: Hosts, certs: Certs, case: str, expected: str
) -> None:
    flags = {
        "wrong CA": tls_flags(certs, ca=certs.other_ca),
        "expired client certificate": tls_flags(certs, "expired-client"),
        "no client certificate": tls_flags(certs, None),
    }[case]
    expected = expected.format(other_ca=certs.other_ca, expired=certs.path("expired-client.pem"))
    host = tls_lab.start("node1", extra=tuple(flags))
    assert_one_clear_refusal(host, tls_lab, as_env(flags), expected)


def test_an_http_endpoint_on_a_tls_member_asks_whether_it_serves_https(
    tls_etcd: EtcdCluster, tls_lab: Hosts
) -> None:
    plain = tls_etcd.endpoints.replace("https://", "http://")
    done = tls_lab.cli("status", endpoints=plain)
    assert done.returncode == 1
    assert done.stderr.startswith("pymacvlan: the etcd cluster (endpoints http://127.0.0.1:")
    assert "closed the connection without an answer (does it serve https://?)" in done.stderr


# ---------------------------------------------------------- etcd users, tokens


def auth_flags(certs: Certs, password_file: Path) -> list[str]:
    return [
        *tls_flags(certs, "plain-client"),
        "--etcd-user",
        "pymacvlan",
        "--etcd-password-file",
        str(password_file),
    ]


def test_a_host_with_an_etcd_user_claims_blocks_and_renews_its_token(
    auth_lab: Hosts, certs: Certs, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    host = auth_lab.start("node1", extra=tuple(auth_flags(certs, secret)))
    pool_id = host.request_pool(SUBNET)
    first = ipaddress.ip_address(host.allocate(pool_id))
    env = {
        **as_env(tls_flags(certs, "plain-client")),
        "PYMACVLAN_ETCD_USER": "pymacvlan",
        "PYMACVLAN_ETCD_PASSWORD": PASSWORD,
    }
    blocks_of_host = blocks_of(auth_lab, "node1", env)  # `cluster status`, password from env
    # The token expires after TOKEN_TTL s of disuse; the next call that needs etcd (a
    # container's --ip outside this host's block: claimed in etcd) gets a new one and succeeds.
    time.sleep(TOKEN_TTL + 1)
    elsewhere = next(
        str(a)
        for a in ipaddress.ip_network(SUBNET).hosts()
        if not any(a in b for b in blocks_of_host)
    )
    assert host.allocate(pool_id, elsewhere, **{"com.docker.network.endpoint.name": "web"}) == (
        elsewhere
    )
    status, body = request(host.daemon.socket_path, "GET", "/pymacvlan/v1/metrics")
    assert status == 200
    metrics = Scrape(body.decode())
    assert (
        metrics.value("pymacvlan_etcd_requests_total", call="auth/authenticate", outcome="ok") >= 2
    )
    assert health(host) == (200, {"status": "ready", "reasons": []})
    blocks = blocks_of(auth_lab, "node1", env)
    assert any(first in block for block in blocks)
    assert any(ipaddress.ip_address(elsewhere) in block for block in blocks)
    assert PASSWORD not in host.log()


async def test_the_client_renews_an_expired_token_once_for_all_waiting_calls(
    auth_etcd: EtcdCluster, certs: Certs, etcd_prefix: str
) -> None:
    config = ClusterConfig.parse(
        auth_etcd.endpoints,
        ca=str(certs.ca),
        cert=str(certs.path("plain-client.pem")),
        key=str(certs.path("plain-client.key")),
        user="pymacvlan",
        password=PASSWORD,
    )
    assert config is not None
    kv = EtcdClient.for_config(config)
    try:
        assert await kv.txn([], [Put(f"{etcd_prefix}/a", b"1")])
        await asyncio.sleep(TOKEN_TTL + 1)
        answers = await asyncio.gather(*(kv.range(f"{etcd_prefix}/a") for _ in range(8)))
        assert all([e.value for e in entries] == [b"1"] for entries in answers)
    finally:
        await kv.close()
    authenticate = kv.stats.calls["auth/authenticate"].outcomes
    assert authenticate["ok"] == 2  # the first token, and one renewal for the 8 calls
    assert kv.stats.calls["kv/range"].outcomes["ok"] == 8


def test_a_wrong_password_is_one_clear_line_and_never_shown(
    auth_lab: Hosts, certs: Certs, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    wrong = "Wrong-" + PASSWORD
    secret.write_text(wrong + "\n")
    flags = auth_flags(certs, secret)
    host = auth_lab.start("node1", extra=tuple(flags))
    expected = (
        'refused user "pymacvlan": wrong user name or password (etcdserver: authentication '
        f"failed, invalid user ID or password, password from {secret})"
    )
    assert_one_clear_refusal(host, auth_lab, as_env(flags), expected)
    env = {**as_env(tls_flags(certs, "plain-client")), "PYMACVLAN_ETCD_USER": "pymacvlan"}
    done = auth_lab.cli("status", env={**env, "PYMACVLAN_ETCD_PASSWORD": wrong})
    assert done.returncode == 1
    assert "password from PYMACVLAN_ETCD_PASSWORD)" in done.stderr
    for shown in (host.log(), done.stderr, done.stdout):
        assert wrong not in shown
        assert PASSWORD not in shown


def test_what_etcd_with_authentication_refuses_is_said_plainly(
    auth_lab: Hosts, certs: Certs
) -> None:
    # No user at all.
    done = auth_lab.cli("status", env=as_env(tls_flags(certs, "plain-client")))
    assert done.returncode == 1
    assert "requires a user name and password (etcdserver: user name is empty): set " in (
        done.stderr
    )
    # A client certificate with a Common Name: etcd's gateway refuses it before any password.
    env = {
        **as_env(tls_flags(certs, "client")),
        "PYMACVLAN_ETCD_USER": "pymacvlan",
        "PYMACVLAN_ETCD_PASSWORD": PASSWORD,
    }
    done = auth_lab.cli("status", env=env)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert (
        "refuses client certificates that carry a Common Name on its JSON gateway while "
        "authentication is on: issue pymacvlan's client certificate without one"
    ) in done.stderr


# ------------------------------------------------------------------ server name


async def serve_empty_range(context: ssl.SSLContext | None) -> tuple[web.AppRunner, int]:
    """A server on 127.0.0.1 that answers a range like etcd's gateway (TLS with `context`)."""

    async def empty_range(request: web.Request) -> web.Response:
        return web.json_response({"header": {}})

    app = web.Application()
    app.router.add_post("/v3/kv/range", empty_range)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_ports(1)[0]
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    return runner, port


@pytest.fixture
async def localhost_only_server(certs: Certs) -> AsyncIterator[int]:
    """A TLS server whose certificate names only `localhost`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.path("localhost-only.pem"), certs.path("localhost-only.key"))
    runner, port = await serve_empty_range(context)
    try:
        yield port
    finally:
        await runner.cleanup()


async def test_an_https_endpoint_on_a_plain_server_is_named(certs: Certs) -> None:
    runner, port = await serve_empty_range(None)
    config = ClusterConfig.parse(f"https://127.0.0.1:{port}", ca=str(certs.ca))
    assert config is not None
    kv = EtcdClient.for_config(config)
    try:
        with pytest.raises(EtcdAccessDenied) as caught:
            await kv.range("/x")
    finally:
        await kv.close()
        await runner.cleanup()
    assert str(caught.value) == (
        f"etcd at https://127.0.0.1:{port} does not speak TLS (wrong version number): is the "
        "endpoint http://?"
    )


async def test_the_server_name_is_checked(localhost_only_server: int, certs: Certs) -> None:
    port = localhost_only_server
    for endpoint, ok in ((f"https://localhost:{port}", True), (f"https://127.0.0.1:{port}", False)):
        config = ClusterConfig.parse(endpoint, ca=str(certs.ca), timeout=1.0)
        assert config is not None
        kv = EtcdClient.for_config(config)
        try:
            if ok:
                assert await kv.range("/x") == []
                continue
            with pytest.raises(EtcdAccessDenied) as caught:
                await kv.range("/x")
        finally:
            await kv.close()
        assert str(caught.value) == (
            f"etcd at {endpoint} has a certificate that is not valid for that address (IP "
            f"address mismatch, certificate is not valid for '127.0.0.1'.): write the endpoint "
            "with a name or address its certificate lists (subjectAltName), or reissue the "
            "certificate with it"
        )
