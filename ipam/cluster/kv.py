"""The narrow key-value interface cluster mode needs from etcd, and an in-memory fake of it.

Rule: the claim logic speaks only these verbs (a range read, a transaction of "absent" or
"unchanged" compares followed by puts and deletes, and leases for the node registration); it never
sees HTTP, endpoints or JSON. `EtcdClient` (`ipam.cluster.etcd`) implements them on a real etcd
cluster. `MemoryKV` implements them on a dict with etcd's semantics (one global revision,
compares over key ranges, leases that take their keys with them) for the unit tests of the claim
logic, and can be told to be unreachable. Every `MemoryKV` call yields to the event loop first, so
concurrent claimers interleave between their read and their transaction as they would against a
real server.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ipam.errors import ClusterUnavailable


@dataclass(frozen=True, slots=True)
class Entry:
    """One key as etcd returns it."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Absent:
    """Compare: no key exists in `[key, range_end)`, or exactly at `key` when `range_end` is ""."""

    key: str
    range_end: str = ""


@dataclass(frozen=True, slots=True)
class Unchanged:
    """Compare: `key` exists and was last written at `mod_revision`."""

    key: str
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    key: str


Compare = Absent | Unchanged
Op = Put | Delete


class KeyValue(Protocol):
    """What cluster mode asks of etcd. Every call either answers or raises an `IpamError`
    (`ClusterUnavailable` when no endpoint could be reached), within a bounded time."""

    def describe(self) -> str:
        """The endpoints, for messages ("endpoints http://127.0.0.1:2379, ...")."""
        ...

    async def range(
        self, key: str, range_end: str = "", *, limit: int = 0, descending: bool = False
    ) -> list[Entry]:
        """Keys in `[key, range_end)` (exactly `key` when `range_end` is ""), in key order."""
        ...

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op]) -> bool:
        """If every compare holds, apply `success` atomically and return True; else False."""
        ...

    async def grant(self, ttl: int) -> int:
        """A new lease of `ttl` seconds; returns its ID."""
        ...

    async def keepalive(self, lease: int) -> int:
        """Renew `lease`; returns its TTL, 0 when the lease no longer exists."""
        ...

    async def revoke(self, lease: int) -> None:
        """End `lease` and delete its keys (a lease that is already gone is fine)."""
        ...

    async def close(self) -> None: ...


class MemoryKV:
    """A dict-backed `KeyValue` with etcd's semantics, for unit tests."""

    def __init__(self) -> None:
        self.data: dict[str, Entry] = {}
        self.revision = 1
        self.leases: dict[int, int] = {}  # id -> ttl
        self._lease_ids = itertools.count(7001)
        self.unreachable: str | None = None  # set: every call raises ClusterUnavailable
        self.txns = 0

    def describe(self) -> str:
        return "endpoints memory://"

    async def _enter(self) -> None:
        await asyncio.sleep(0)
        if self.unreachable is not None:
            raise ClusterUnavailable(self.unreachable)

    def _keys(self, key: str, range_end: str) -> list[str]:
        if not range_end:
            return [key] if key in self.data else []
        return sorted(k for k in self.data if key <= k < range_end)

    async def range(
        self, key: str, range_end: str = "", *, limit: int = 0, descending: bool = False
    ) -> list[Entry]:
        await self._enter()
        keys = self._keys(key, range_end)
        if descending:
            keys.reverse()
        if limit:
            keys = keys[:limit]
        return [self.data[k] for k in keys]

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op]) -> bool:
        await self._enter()
        self.txns += 1
        for compare in compares:
            if isinstance(compare, Absent):
                if self._keys(compare.key, compare.range_end):
                    return False
            else:
                entry = self.data.get(compare.key)
                if entry is None or entry.mod_revision != compare.mod_revision:
                    return False
        if success:
            self.revision += 1
        for op in success:
            if isinstance(op, Put):
                if op.lease and op.lease not in self.leases:
                    raise ClusterUnavailable(f"lease {op.lease} not found")
                old = self.data.get(op.key)
                created = old.create_revision if old is not None else self.revision
                self.data[op.key] = Entry(op.key, op.value, created, self.revision, op.lease)
            else:
                self.data.pop(op.key, None)
        return True

    async def grant(self, ttl: int) -> int:
        await self._enter()
        lease = next(self._lease_ids)
        self.leases[lease] = ttl
        return lease

    async def keepalive(self, lease: int) -> int:
        await self._enter()
        return self.leases.get(lease, 0)

    async def revoke(self, lease: int) -> None:
        await self._enter()
        self.expire(lease)

    def expire(self, lease: int) -> None:
        """The lease ran out (its holder stopped renewing it): its keys go with it."""
        self.leases.pop(lease, None)
        for key in [k for k, e in self.data.items() if e.lease == lease]:
            del self.data[key]
        self.revision += 1

    def put_raw(self, key: str, value: bytes) -> None:
        """Write a key directly (tests that need a foreign or damaged record)."""
        self.revision += 1
        old = self.data.get(key)
        created = old.create_revision if old is not None else self.revision
        self.data[key] = Entry(key, value, created, self.revision)

    async def close(self) -> None:
        return None
