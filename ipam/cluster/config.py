"""Cluster mode's settings, checked once at start-up.

Rule: cluster mode is on exactly when etcd endpoints are configured; everything else has a
default. Values are refused with a message that shows the expected form, so a typo stops the
daemon at start instead of surfacing as "etcd unreachable" at the first `docker run`.

Securing the traffic (docs/cluster.md, "Securing etcd"): `https://` endpoints with a CA bundle
and an optional client certificate, and/or an etcd user (`ipam/cluster/security.py` reads the
files). All endpoints of one cluster use one scheme; TLS files with `http://` endpoints are
refused, so that nobody believes the traffic is protected when it is not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ipam.cluster.security import EtcdAuth, EtcdTls, read_password_file
from ipam.errors import InvalidRequest

DEFAULT_PREFIX = "/pymacvlan"
DEFAULT_TIMEOUT = 1.0
DEFAULT_SWEEP_SECONDS = 30.0
# A stopped daemon revokes its registration at once; a killed or cut-off one is seen as gone
# after this long. Short enough for `cluster status` to tell the truth soon, long enough that
# a few lost keepalives (one every third of it) do not make a live host look gone.
NODE_TTL_SECONDS = 20

_PREFIX = re.compile(r"/[A-Za-z0-9._~/-]*")
_NODE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}")
_USERINFO = re.compile(r"//[^/]*@")


@dataclass(frozen=True)
class ClusterConfig:
    """Where the etcd cluster is and how long to wait for it."""

    endpoints: tuple[str, ...]
    prefix: str = DEFAULT_PREFIX
    timeout: float = DEFAULT_TIMEOUT  # one request to one endpoint
    sweep_seconds: float = DEFAULT_SWEEP_SECONDS  # how often blocks are checked and given back
    node_ttl: int = NODE_TTL_SECONDS
    tls: EtcdTls | None = None  # set exactly when the endpoints are https://
    auth: EtcdAuth | None = None

    @classmethod
    def parse(
        cls,
        endpoints: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        sweep_seconds: float = DEFAULT_SWEEP_SECONDS,
        ca: str = "",
        cert: str = "",
        key: str = "",
        user: str = "",
        password: str = "",
        password_file: str = "",
    ) -> ClusterConfig | None:
        """The configuration, or None when `endpoints` is empty (cluster mode off). Reads the
        TLS and password files named (once: this is start-up)."""
        items = [item.strip() for item in endpoints.split(",") if item.strip()]
        if not items:
            return None
        checked = tuple(_check_endpoint(item) for item in items)
        if len(set(checked)) != len(checked):
            raise InvalidRequest(f"etcd endpoints {endpoints!r}: an endpoint is listed twice")
        schemes = {item.split(":", 1)[0] for item in checked}
        if len(schemes) > 1:
            raise InvalidRequest(
                f"etcd endpoints {', '.join(checked)}: some are http://, some https://; the "
                "members of one etcd cluster serve clients one way"
            )
        tls = None
        if schemes == {"https"}:
            tls = EtcdTls.load(ca.strip(), cert.strip(), key.strip())
        elif ca.strip() or cert.strip() or key.strip():
            raise InvalidRequest(
                "--etcd-ca, --etcd-cert and --etcd-key are for https:// endpoints, and the etcd "
                f"endpoints are http:// ({', '.join(checked)}): write https://"
            )
        return cls(
            endpoints=checked,
            prefix=check_prefix(prefix),
            timeout=_check_timeout(timeout),
            sweep_seconds=_check_sweep(sweep_seconds),
            tls=tls,
            auth=_auth(user, password, password_file),
        )

    def describe(self) -> str:
        """Where etcd is and how pymacvlan talks to it (never the password)."""
        text = "endpoints " + ", ".join(self.endpoints)
        how = [part.describe() for part in (self.tls, self.auth) if part is not None]
        return text + (f" ({'; '.join(how)})" if how else "")


def _auth(user: str, password: str, password_file: str) -> EtcdAuth | None:
    user = user.strip()
    password_file = password_file.strip()
    if password and password_file:
        raise InvalidRequest(
            "the etcd password is given twice: PYMACVLAN_ETCD_PASSWORD and "
            "--etcd-password-file (PYMACVLAN_ETCD_PASSWORD_FILE); keep one"
        )
    if not user:
        if password or password_file:
            raise InvalidRequest(
                "an etcd password is given but no user: set --etcd-user (PYMACVLAN_ETCD_USER)"
            )
        return None
    if len(user) > 128 or not user.isprintable():
        raise InvalidRequest(f"invalid etcd user {user[:32]!r}: a printable name, at most 128")
    if password_file:
        return EtcdAuth(user, read_password_file(password_file), password_file)
    if not password:
        raise InvalidRequest(
            f'etcd user "{user}" has no password: set PYMACVLAN_ETCD_PASSWORD or '
            "--etcd-password-file (PYMACVLAN_ETCD_PASSWORD_FILE)"
        )
    return EtcdAuth(user, password)


def _check_endpoint(text: str) -> str:
    expected = "expected http://HOST:PORT or https://HOST:PORT, such as http://127.0.0.1:2379"
    try:
        parts = urlsplit(text)
        if parts.username is not None or parts.password is not None:
            raise InvalidRequest(
                f"invalid etcd endpoint {_shown(text)}: no user or password in the URL; use "
                "--etcd-user with PYMACVLAN_ETCD_PASSWORD or --etcd-password-file"
            )
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"invalid etcd endpoint {_shown(text)}: {exc}; {expected}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        raise InvalidRequest(f"invalid etcd endpoint {_shown(text)}: {expected}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidRequest(f"invalid etcd endpoint {_shown(text)}: {expected} (no path)")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}"


def _shown(text: str) -> str:
    """An endpoint as a message may show it: shortened, and never what precedes an @ (a user
    and password someone wrote into the URL)."""
    bare = _USERINFO.sub("//", text)
    return repr(bare if len(bare) <= 80 else bare[:77] + "...")


def check_prefix(prefix: str) -> str:
    text = prefix.strip()
    if not _PREFIX.fullmatch(text) or "//" in text or text.rstrip("/") == "":
        raise InvalidRequest(
            f"invalid etcd prefix {prefix!r}: expected an absolute key prefix such as "
            f"{DEFAULT_PREFIX} (letters, digits, '.', '_', '-', '~', '/')"
        )
    return text.rstrip("/")


def _check_timeout(timeout: float) -> float:
    # Above a few seconds a dead cluster would hold every `docker run` that needs a block for
    # 3 * timeout; Docker gives up on a plugin call after 30 s.
    if not 0.05 <= timeout <= 10:
        raise InvalidRequest(f"the etcd timeout must be 0.05-10 seconds, not {timeout:g}")
    return float(timeout)


def _check_sweep(seconds: float) -> float:
    if not 0.1 <= seconds <= 86400:
        raise InvalidRequest(
            f"the cluster sweep interval must be 0.1-86400 seconds, not {seconds:g}"
        )
    return float(seconds)


def check_node_name(node: str) -> str:
    """The node name goes into etcd keys: the same characters as in address plans."""
    if not _NODE_NAME.fullmatch(node):
        raise InvalidRequest(
            f"the node name {node!r} cannot be used in cluster mode: use letters, digits, '.', "
            "'_' and '-' (set PYMACVLAN_NODE_NAME)"
        )
    return node
