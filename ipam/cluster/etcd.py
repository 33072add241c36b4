"""`KeyValue` on a real etcd v3 cluster, through its JSON gateway (`POST /v3/kv/range`, ...).

Why the gateway and aiohttp rather than a client library: the daemon needs five calls (range,
txn, lease grant/keepalive/revoke); every etcd since 3.4 serves them as JSON at `/v3/`, and aiohttp
is already a dependency. The asyncio clients on PyPI (aetcd, etcd3aio, ...) speak gRPC, which
would add grpcio and protobuf wheels to the plugin image for no gain here; the maintained gateway
client (etcd3gw) is synchronous and would need a thread per call. This is the one module of
`ipam/` that does network I/O, as `ipam/sqlite_store.py` is the one that does disk I/O; it knows
etcd's wire format and nothing of Docker's protocol.

Rules:

* **Bounded.** One request to one endpoint may take `timeout` seconds; one call (all attempts
  together) at most `3 * timeout`. Docker's plugin client gives up on a request after 30 s, and a
  call that waits long for a dead cluster would hold a `docker run` for nothing.
* **Failover.** Endpoints are tried in turn, starting with the last one that answered, on
  connection errors, timeouts and etcd's "unavailable" answers (a member without quorum, a
  leader election). Two rounds at most, with a short pause between them for an election to end.
  Anything else etcd refuses is a `ClusterError`, not retried.
* **Retries are safe because the callers make them so.** A transaction that timed out may still
  have been applied; every caller compares first and reads back after a failed compare (a claim
  that finds its own record adopts it, a release that finds the key gone is done).
* **Never the environment's proxy** (`trust_env=False`): etcd endpoints are direct addresses.
* **Secured when configured** (`ipam/cluster/security.py`): `https://` endpoints with the
  configured CA and client certificate, server name checked; an etcd user authenticates
  (`auth/authenticate`) before its first call and sends the token with every call; a token
  that etcd no longer takes (expired: `--auth-token-ttl`; etcd restarted) is renewed once per
  call. Refusals of this host (a certificate either side does not trust, a wrong password, a
  missing permission) are `EtcdAccessDenied`: one line that says which and what to change,
  never the password.
* **Counted.** Every call's outcome and duration (all attempts together) go into `EtcdStats`,
  plain numbers that the daemon's metrics read when they are scraped (`ipam/` knows no metrics
  library).
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import json
import ssl
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ipam.cluster.config import ClusterConfig
from ipam.cluster.kv import Absent, Compare, Entry, Op, Put
from ipam.cluster.security import (
    EtcdAuth,
    EtcdTls,
    auth_refusal,
    gateway_refusal,
    tls_refusal,
    token_refused,
)
from ipam.errors import ClusterError, ClusterUnavailable, EtcdAccessDenied

# gRPC status codes that mean "this member cannot answer now, another may" (etcd maps them to
# HTTP 503/504 on the gateway): DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNAVAILABLE; and
# CANCELED (HTTP 408), which a member answers while it shuts down ("grpc: the client connection
# is closing": its gateway's own connection to it), seen when a member was stopped under load.
_RETRY_CODES = {1, 4, 8, 14}
_NOT_FOUND = 5
_ROUND_PAUSE = 0.1  # seconds between two rounds over the endpoints
_AUTHENTICATE = "auth/authenticate"
_JSON_HEADERS = {"Content-Type": "application/json"}


# Upper bounds (seconds) of the call durations counted in `EtcdStats`: etcd on a LAN answers in
# milliseconds, and one call may take up to three timeouts (3 s by default) when members fail.
LATENCY_BOUNDS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# How a call ended: answered; no endpoint answered (`ClusterUnavailable`); etcd refused it
# (`ClusterError`); its caller stopped waiting (a claim's budget ran out, shutdown).
CALL_OUTCOMES = ("ok", "unavailable", "refused", "cancelled")


@dataclass
class CallStats:
    """The calls of one kind (``kv/range``, ``kv/txn``, ``lease/grant``, ...) since the start."""

    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CALL_OUTCOMES, 0))
    # Calls per duration bucket: index i counts durations <= LATENCY_BOUNDS[i] (and above the
    # bound before it); the last entry counts the longer ones.
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))
    seconds: float = 0.0  # all calls' durations added up
    # JSON bytes of the attempts that got an answer, both ways (HTTP headers not included):
    # what the scale benchmark reports per host, to show how the traffic grows with the cluster.
    sent: int = 0
    received: int = 0

    def record(self, outcome: str, seconds: float) -> None:
        self.outcomes[outcome] += 1
        self.buckets[bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.seconds += seconds


@dataclass
class EtcdStats:
    """What the client's calls did, by kind of call: read by the daemon's metrics."""

    calls: dict[str, CallStats] = field(default_factory=dict)

    def record(self, call: str, outcome: str, seconds: float) -> None:
        self.calls.setdefault(call, CallStats()).record(outcome, seconds)

    def transfer(self, call: str, sent: int, received: int) -> None:
        stats = self.calls.setdefault(call, CallStats())
        stats.sent += sent
        stats.received += received


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


class EtcdClient:
    """`KeyValue` over etcd's JSON gateway, with failover across `endpoints`."""

    def __init__(
        self,
        endpoints: Sequence[str],
        timeout: float,
        *,
        tls: EtcdTls | None = None,
        auth: EtcdAuth | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = tuple(e.rstrip("/") for e in endpoints)
        self.timeout = timeout
        self.deadline = 3 * timeout
        self._preferred = 0
        self._session: aiohttp.ClientSession | None = None
        self.stats = EtcdStats()
        self._tls = tls
        self._auth = auth
        # The etcd user's token: None before the first authentication, "" when etcd has
        # authentication off (calls go without one until etcd asks for it).
        self._token: str | None = None
        self._auth_lock = asyncio.Lock()

    @classmethod
    def for_config(cls, config: ClusterConfig) -> EtcdClient:
        return cls(config.endpoints, config.timeout, tls=config.tls, auth=config.auth)

    def describe(self) -> str:
        return "endpoints " + ", ".join(self.endpoints)

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop (aiohttp binds a session to its loop).
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None),  # asyncio.timeout bounds each attempt
                connector=aiohttp.TCPConnector(
                    limit=16,
                    force_close=False,
                    # The configured CA and client certificate; names always checked.
                    ssl=self._tls.context if self._tls is not None else True,
                ),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --------------------------------------------------------------- transport

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to `/v3/<path>` of the first endpoint that answers, as this client's etcd
        user when it has one; see the rules above."""
        if self._auth is None:
            return await self._counted(path, self._exchange(path, body))
        token = self._token if self._token is not None else await self._authenticate(None)
        try:
            return await self._counted(path, self._exchange(path, body, token))
        except _TokenRefused:
            # Expired (etcd's --auth-token-ttl) or forgotten (etcd restarted): a new one, once.
            token = await self._authenticate(token)
            try:
                return await self._counted(path, self._exchange(path, body, token))
            except _TokenRefused as exc:
                raise ClusterError(
                    f"etcd refused the token it had just given to {self._auth.describe()}: {exc}"
                ) from None

    async def _authenticate(self, stale: str | None) -> str:
        """A token for this client's user; `stale` is the one etcd refused (None: none yet).
        Calls that find theirs refused together authenticate once."""
        auth = self._auth
        assert auth is not None
        async with self._auth_lock:
            if self._token is not None and self._token != stale:
                return self._token  # another call renewed it meanwhile
            self._token = None
            body = {"name": auth.user, "password": auth.password}
            data = await self._counted(_AUTHENTICATE, self._exchange(_AUTHENTICATE, body))
            token = data.get("token")
            self._token = token if isinstance(token, str) else ""
            return self._token

    async def _counted(self, path: str, call: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        """`call`'s answer; its outcome and duration go into `stats`."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome = "cancelled"  # unless it ends below: only a cancellation gets past them
        try:
            answer = await call
            outcome = "ok"
            return answer
        except EtcdAccessDenied:
            outcome = "refused"
            raise
        except ClusterUnavailable:
            outcome = "unavailable"
            raise
        except ClusterError:
            outcome = "refused"
            raise
        finally:
            self.stats.record(path, outcome, loop.time() - started)

    async def _exchange(
        self, path: str, body: dict[str, Any], token: str | None = None
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline
        session = self._client()
        payload = json.dumps(body).encode()
        headers = {**_JSON_HEADERS, "Authorization": token} if token else _JSON_HEADERS
        failures: dict[str, str] = {}
        denied: dict[str, str] = {}  # endpoints whose TLS handshake refused this host, and why
        count = len(self.endpoints)
        for attempt in range(2 * count):
            if attempt == count:
                await asyncio.sleep(min(_ROUND_PAUSE, max(0.0, deadline - loop.time())))
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            index = (self._preferred + attempt) % count
            endpoint = self.endpoints[index]
            limit = min(self.timeout, remaining)
            try:
                async with asyncio.timeout(limit):
                    async with session.post(
                        f"{endpoint}/v3/{path}", data=payload, headers=headers
                    ) as response:
                        status = response.status
                        raw = await response.read()
                self.stats.transfer(path, len(payload), len(raw))
            except TimeoutError:
                failures[endpoint] = f"no answer within {limit:.1f} s"
                continue
            except (aiohttp.ClientError, OSError) as exc:
                # A TLS refusal either way is the same at every member: settings to fix. The
                # other members are still tried (one member's certificate may be the problem).
                tls_error = _ssl_error(exc)
                refusal = tls_refusal(tls_error, self._tls) if tls_error is not None else None
                if refusal is not None:
                    denied[endpoint] = refusal
                elif isinstance(exc, aiohttp.ClientConnectorError):
                    failures[endpoint] = _connect_error(exc)
                elif isinstance(exc, aiohttp.ServerDisconnectedError) and self._tls is None:
                    # What a member that serves TLS does to a plain HTTP request.
                    failures[endpoint] = (
                        "closed the connection without an answer (does it serve https://?)"
                    )
                else:
                    failures[endpoint] = f"{type(exc).__name__}: {exc}".rstrip(": ")
                continue
            try:
                data = json.loads(raw) if raw else {}
            except ValueError:
                refusal = gateway_refusal(status, raw)
                if refusal is not None:
                    raise EtcdAccessDenied(f"etcd at {endpoint} {refusal}") from None
                failures[endpoint] = f"HTTP {status} with a body that is not JSON"
                continue
            if not isinstance(data, dict):
                failures[endpoint] = f"HTTP {status} with an unexpected body"
                continue
            if status == 200:
                self._preferred = index
                return data
            code = data.get("code")
            message = str(data.get("message") or data.get("error") or f"HTTP {status}")
            if code == _NOT_FOUND and path == "lease/revoke":
                return {}  # revoking a lease that expired already: the goal is reached
            if self._auth is not None and path != _AUTHENTICATE and token_refused(message):
                raise _TokenRefused(message)
            if path == _AUTHENTICATE and "authentication is not enabled" in message:
                return {}  # no token needed (yet): calls go without one
            if code in _RETRY_CODES or (code is None and status >= 500):
                failures[endpoint] = message
                continue
            refusal = auth_refusal(message, self._auth)
            if refusal is not None:
                raise EtcdAccessDenied(f"etcd at {endpoint} {refusal}")
            raise ClusterError(f"etcd at {endpoint} refused {path}: {message}")
        reasons = "; ".join(f"{e}: {why}" for e, why in failures.items()) or (
            f"no answer within {self.deadline:.1f} s"
        )
        if denied:
            raise EtcdAccessDenied(_grouped(denied) + (f"; {reasons}" if failures else ""))
        raise ClusterUnavailable(reasons)

    # -------------------------------------------------------------------- verbs

    async def range(
        self, key: str, range_end: str = "", *, limit: int = 0, descending: bool = False
    ) -> list[Entry]:
        body: dict[str, Any] = {"key": _b64(key)}
        if range_end:
            body["range_end"] = _b64(range_end)
        if limit:
            body["limit"] = limit
        if descending:
            body["sort_order"] = "DESCEND"
            body["sort_target"] = "KEY"
        data = await self._post("kv/range", body)
        return [_entry(kv) for kv in data.get("kvs", ())]

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op]) -> bool:
        body = {
            "compare": [_compare(c) for c in compares],
            "success": [_op(o) for o in success],
        }
        data = await self._post("kv/txn", body)
        # The gateway leaves out fields at their default value: a failed compare has no
        # "succeeded" at all.
        return bool(data.get("succeeded", False))

    async def grant(self, ttl: int) -> int:
        data = await self._post("lease/grant", {"TTL": ttl})
        if data.get("error"):
            raise ClusterError(f"etcd refused a lease: {data['error']}")
        return int(data["ID"])

    async def keepalive(self, lease: int) -> int:
        data = await self._post("lease/keepalive", {"ID": str(lease)})
        result = data.get("result", {})
        return int(result.get("TTL", 0)) if isinstance(result, dict) else 0

    async def revoke(self, lease: int) -> None:
        await self._post("lease/revoke", {"ID": str(lease)})


def _entry(kv: dict[str, Any]) -> Entry:
    return Entry(
        key=_unb64(kv["key"]).decode(),
        value=_unb64(kv.get("value", "")),
        create_revision=int(kv.get("create_revision", 0)),
        mod_revision=int(kv.get("mod_revision", 0)),
        lease=int(kv.get("lease", 0)),
    )


def _compare(compare: Compare) -> dict[str, Any]:
    if isinstance(compare, Absent):
        # "version == 0" over a key range holds when no key exists in it (etcd >= 3.3).
        body: dict[str, Any] = {
            "key": _b64(compare.key),
            "target": "VERSION",
            "result": "EQUAL",
            "version": "0",
        }
        if compare.range_end:
            body["range_end"] = _b64(compare.range_end)
        return body
    return {
        "key": _b64(compare.key),
        "target": "MOD",
        "result": "EQUAL",
        "mod_revision": str(compare.mod_revision),
    }


def _op(op: Op) -> dict[str, Any]:
    if isinstance(op, Put):
        put: dict[str, Any] = {"key": _b64(op.key), "value": base64.b64encode(op.value).decode()}
        if op.lease:
            put["lease"] = str(op.lease)
        return {"request_put": put}
    return {"request_delete_range": {"key": _b64(op.key)}}


class _TokenRefused(ClusterError):
    """etcd did not take the token sent (expired, or etcd restarted): authenticate again."""


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error under an aiohttp one: a certificate aiohttp checked (`certificate_error`),
    a handshake that failed (`os_error`), an alert read after it (the cause)."""
    seen: BaseException | None = exc
    for _ in range(4):
        # aiohttp's own TLS errors subclass ssl.SSLError too, without its details.
        if seen is None or (
            isinstance(seen, ssl.SSLError) and not isinstance(seen, aiohttp.ClientError)
        ):
            return seen
        seen = (
            getattr(seen, "certificate_error", None)
            or getattr(seen, "os_error", None)
            or seen.__cause__
        )
    return None


def _grouped(denied: dict[str, str]) -> str:
    """One "etcd at A, B <reason>" per reason: the same refusal from every member is said once."""
    by_reason: dict[str, list[str]] = {}
    for endpoint, reason in denied.items():
        by_reason.setdefault(reason, []).append(endpoint)
    return "; ".join(f"etcd at {', '.join(where)} {why}" for why, where in by_reason.items())


def _connect_error(exc: aiohttp.ClientConnectorError) -> str:
    cause = exc.os_error
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    return cause.strerror or str(cause)
