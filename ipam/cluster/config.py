"""Cluster mode's settings, checked once at start-up.

Rule: cluster mode is on exactly when etcd endpoints are configured; everything else has a
default. Values are refused with a message that shows the expected form, so a typo stops the
daemon at start instead of surfacing as "etcd unreachable" at the first `docker run`.

Not supported yet (and refused, so nobody believes they are protected): `https://` endpoints and
etcd authentication (docs/cluster.md says what to do meanwhile).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

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


@dataclass(frozen=True)
class ClusterConfig:
    """Where the etcd cluster is and how long to wait for it."""

    endpoints: tuple[str, ...]
    prefix: str = DEFAULT_PREFIX
    timeout: float = DEFAULT_TIMEOUT  # one request to one endpoint
    sweep_seconds: float = DEFAULT_SWEEP_SECONDS  # how often blocks are checked and given back
    node_ttl: int = NODE_TTL_SECONDS

    @classmethod
    def parse(
        cls,
        endpoints: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        sweep_seconds: float = DEFAULT_SWEEP_SECONDS,
    ) -> ClusterConfig | None:
        """The configuration, or None when `endpoints` is empty (cluster mode off)."""
        items = [item.strip() for item in endpoints.split(",") if item.strip()]
        if not items:
            return None
        checked = tuple(_check_endpoint(item) for item in items)
        if len(set(checked)) != len(checked):
            raise InvalidRequest(f"etcd endpoints {endpoints!r}: an endpoint is listed twice")
        return cls(
            endpoints=checked,
            prefix=check_prefix(prefix),
            timeout=_check_timeout(timeout),
            sweep_seconds=_check_sweep(sweep_seconds),
        )

    def describe(self) -> str:
        return "endpoints " + ", ".join(self.endpoints)


def _check_endpoint(text: str) -> str:
    expected = "expected http://HOST:PORT, such as http://127.0.0.1:2379"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"invalid etcd endpoint {text!r}: {exc}; {expected}") from None
    if parts.scheme == "https":
        raise InvalidRequest(
            f"invalid etcd endpoint {text!r}: TLS to etcd is not supported yet (see "
            'docs/cluster.md, "TLS and authentication")'
        )
    if parts.scheme != "http" or not parts.hostname or port is None:
        raise InvalidRequest(f"invalid etcd endpoint {text!r}: {expected}")
    if parts.username or parts.password:
        raise InvalidRequest(
            f"invalid etcd endpoint {text!r}: etcd authentication is not supported yet"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidRequest(f"invalid etcd endpoint {text!r}: {expected} (no path)")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"http://{host}:{port}"


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
