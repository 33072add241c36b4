"""The SQLite implementation of `IpamStore`: `ipam.sqlite3` in the state directory.

Rules:

* WAL journal, `synchronous=FULL`: `commit` returns only after the change is in the log on disk,
  so an answer Docker has seen survives `kill -9` and power loss, and a change is either wholly
  there or wholly absent after a crash.
* One transaction per `Change` (`BEGIN IMMEDIATE` ... `COMMIT`, `ROLLBACK` on any error).
* `PRAGMA user_version` is the schema version; `_MIGRATIONS[n]` turns version n into n + 1,
  inside a transaction. A database from a newer pymacvlan is refused, not guessed at.
* Foreign keys are on: an allocation or cursor row can only name a live lease, so a bug cannot
  leave holdings behind that no pool ID will ever release.
* The connection lives on the one store thread that calls it (the service guarantees that).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ipam.errors import StoreError
from ipam.records import (
    AllocationRecord,
    Change,
    CursorRecord,
    Kind,
    LeaseRecord,
    QuarantineRecord,
    Snapshot,
)
from ipam.sqlite_file import connect_durable, write_transaction

SCHEMA_VERSION = 2


_SCHEMA_V1 = """
CREATE TABLE leases (
    pool_id       TEXT PRIMARY KEY,
    address_space TEXT NOT NULL,
    lan           TEXT NOT NULL,
    subnet        TEXT NOT NULL,
    sub_pool      TEXT NOT NULL,          -- '' when the lease has no ip-range
    options       TEXT NOT NULL,          -- JSON object: the user's --ipam-opt map
    refcount      INTEGER NOT NULL CHECK (refcount > 0),
    created_at    REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE allocations (
    pool_id      TEXT NOT NULL REFERENCES leases (pool_id),
    address      TEXT NOT NULL,
    table_key    TEXT NOT NULL,            -- address space/lan/subnet
    kind         TEXT NOT NULL CHECK (kind IN ('gateway', 'reserved', 'static', 'dynamic')),
    refcount     INTEGER NOT NULL CHECK (refcount > 0),
    mac          TEXT,
    endpoint     TEXT,
    allocated_at REAL NOT NULL,
    PRIMARY KEY (pool_id, address)
) WITHOUT ROWID;

CREATE TABLE quarantine (
    table_key   TEXT NOT NULL,
    address     TEXT NOT NULL,
    released_at REAL NOT NULL,
    until       REAL NOT NULL,
    PRIMARY KEY (table_key, address)
) WITHOUT ROWID;

CREATE TABLE cursors (
    pool_id TEXT PRIMARY KEY REFERENCES leases (pool_id),
    address TEXT NOT NULL
) WITHOUT ROWID;
"""

# _MIGRATIONS[n] is the SQL that turns schema version n into n + 1. The runner wraps it, together
# with the new user_version, in one transaction, so a crash mid-migration leaves version n intact.
_MIGRATIONS: dict[int, str] = {
    0: _SCHEMA_V1,
    # v2: remember which endpoint released a resting address, to give it back on its return.
    1: "ALTER TABLE quarantine ADD COLUMN endpoint TEXT;",
}


class SqliteStore:
    """`IpamStore` on one SQLite file."""

    FILE_NAME = "ipam.sqlite3"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self.notes: list[str] = []

    # ------------------------------------------------------------------ open

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        try:
            conn, mode = connect_durable(self.path)
            if mode != "wal":
                self.notes.append(
                    f"{self.path}: the file system does not support WAL; using the {mode} "
                    "journal (still durable, slower)"
                )
            conn.execute("PRAGMA foreign_keys=ON")
            self._migrate(conn)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the IPAM state {self.path}: {exc}") from exc
        self._conn = conn
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the IPAM state {self.path} has schema version {version}, written by a newer "
                f"pymacvlan; this version understands up to {SCHEMA_VERSION}"
            )
        while version < SCHEMA_VERSION:
            script = (
                f"BEGIN IMMEDIATE;\n{_MIGRATIONS[version]}\n"
                f"PRAGMA user_version = {version + 1};\nCOMMIT;"
            )
            try:
                conn.executescript(script)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            version += 1

    # ----------------------------------------------------------------- verbs

    def load(self) -> Snapshot:
        conn = self._connect()
        try:
            conn.execute("BEGIN")  # one consistent read of all four tables
            try:
                leases = tuple(
                    LeaseRecord(pool_id, space, lan, subnet, sub_pool, json.loads(opts), refs, at)
                    for pool_id, space, lan, subnet, sub_pool, opts, refs, at in conn.execute(
                        "SELECT pool_id, address_space, lan, subnet, sub_pool, options, refcount,"
                        " created_at FROM leases"
                    )
                )
                kinds = {kind.value: kind for kind in Kind}
                allocations = tuple(
                    AllocationRecord(table_key, address, pool_id, kinds[kind], refs, mac, ep, at)
                    for table_key, address, pool_id, kind, refs, mac, ep, at in conn.execute(
                        "SELECT table_key, address, pool_id, kind, refcount, mac, endpoint,"
                        " allocated_at FROM allocations"
                    )
                )
                quarantine = tuple(
                    QuarantineRecord(*row)
                    for row in conn.execute(
                        "SELECT table_key, address, released_at, until, endpoint FROM quarantine"
                        " ORDER BY released_at"
                    )
                )
                cursors = tuple(
                    CursorRecord(*row)
                    for row in conn.execute("SELECT pool_id, address FROM cursors")
                )
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the IPAM state {self.path}: {exc}") from exc
        return Snapshot(leases, allocations, quarantine, cursors, tuple(self.notes))

    def commit(self, change: Change) -> None:
        conn = self._connect()
        try:
            with write_transaction(conn):
                self._write(conn, change)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the IPAM state {self.path}: {exc}") from exc

    @staticmethod
    def _write(conn: sqlite3.Connection, change: Change) -> None:
        if change.put_leases:
            conn.executemany(
                "INSERT INTO leases (pool_id, address_space, lan, subnet, sub_pool, options,"
                " refcount, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (pool_id) DO UPDATE SET refcount = excluded.refcount",
                [
                    (
                        r.pool_id,
                        r.address_space,
                        r.lan,
                        r.subnet,
                        r.sub_pool,
                        json.dumps(dict(r.options), sort_keys=True),
                        r.refcount,
                        r.created_at,
                    )
                    for r in change.put_leases
                ],
            )
        if change.delete_allocations:
            conn.executemany(
                "DELETE FROM allocations WHERE pool_id = ? AND address = ?",
                change.delete_allocations,
            )
        if change.delete_quarantine:
            conn.executemany(
                "DELETE FROM quarantine WHERE table_key = ? AND address = ?",
                change.delete_quarantine,
            )
        if change.put_allocations:
            conn.executemany(
                "INSERT OR REPLACE INTO allocations (pool_id, address, table_key, kind, refcount,"
                " mac, endpoint, allocated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        a.pool_id,
                        a.address,
                        a.table_key,
                        a.kind.value,
                        a.refcount,
                        a.mac,
                        a.endpoint,
                        a.allocated_at,
                    )
                    for a in change.put_allocations
                ],
            )
        if change.put_quarantine:
            conn.executemany(
                "INSERT OR REPLACE INTO quarantine (table_key, address, released_at, until,"
                " endpoint) VALUES (?, ?, ?, ?, ?)",
                [
                    (q.table_key, q.address, q.released_at, q.until, q.endpoint)
                    for q in change.put_quarantine
                ],
            )
        if change.put_cursors:
            conn.executemany(
                "INSERT OR REPLACE INTO cursors (pool_id, address) VALUES (?, ?)",
                [(c.pool_id, c.address) for c in change.put_cursors],
            )
        if change.delete_leases:
            ids = [(pool_id,) for pool_id in change.delete_leases]
            conn.executemany("DELETE FROM cursors WHERE pool_id = ?", ids)
            conn.executemany("DELETE FROM leases WHERE pool_id = ?", ids)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot close the IPAM state {self.path}: {exc}") from exc
            finally:
                self._conn = None
