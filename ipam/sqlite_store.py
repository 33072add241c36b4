"""The SQLite implementation of `IpamStore`: `ipam.sqlite3` in the state directory.

Rules:

* The file is opened (created, migrated) by the daemon's one state-file policy, handed in as
  `StateFiles` (ipam/state_file.py): owner-only, WAL journal and `synchronous=FULL`, so `commit`
  returns only after the change is on disk and an answer Docker has seen survives `kill -9` and
  power loss; a database from a newer pymacvlan is refused, not guessed at.
* One transaction per `Change`: a change is either wholly there or wholly absent after a crash.
* `SCHEMA_VERSION` and `_MIGRATIONS[n]` (version n to n + 1) are this store's schema.
* Foreign keys are on: an allocation or cursor row can only name a live lease, so a bug cannot
  leave holdings behind that no pool ID will ever release.
* The file is opened by the first `load`, never by the constructor; `probe` creates nothing.
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
    DhcpLeaseRecord,
    Kind,
    LeaseRecord,
    QuarantineRecord,
    Snapshot,
)
from ipam.state_file import StateFile, StateFiles
from ipam.store import FileSummary, damaged_record

SCHEMA_VERSION = 3


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
    # v3: addresses found in use on the LAN (probing), and leases from the LAN's DHCP server.
    2: """
ALTER TABLE quarantine ADD COLUMN lan_mac TEXT;
CREATE TABLE dhcp_leases (
    pool_id        TEXT NOT NULL REFERENCES leases (pool_id),
    address        TEXT NOT NULL,
    prefixlen      INTEGER NOT NULL,
    mac            TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    hostname       TEXT,
    endpoint       TEXT,
    server_id      TEXT NOT NULL,
    server_mac     TEXT NOT NULL,
    router         TEXT,
    lease_seconds  INTEGER NOT NULL,
    renew_seconds  INTEGER NOT NULL,
    rebind_seconds INTEGER NOT NULL,
    acquired_at    REAL NOT NULL,
    state          TEXT NOT NULL,
    problem        TEXT,
    PRIMARY KEY (pool_id, address)
) WITHOUT ROWID;
""",
}


class SqliteStore:
    """`IpamStore` on one SQLite file."""

    FILE_NAME = "ipam.sqlite3"

    def __init__(self, path: Path, files: StateFiles) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self._files = files
        self._file: StateFile | None = None

    def _open(self) -> StateFile:
        if self._file is None:
            self._file = self._files.open(
                self.path, version=SCHEMA_VERSION, migrations=_MIGRATIONS, error=StoreError
            )
        return self._file

    # ----------------------------------------------------------------- verbs

    def probe(self) -> FileSummary:
        peeked = self._files.peek(self.path, version=SCHEMA_VERSION, error=StoreError)
        try:
            if peeked.blank is not None:
                return FileSummary(str(self.path), peeked.blank, None, ())
            with peeked.read() as conn:
                pools = conn.execute("SELECT count(*) FROM leases").fetchone()[0]
                allocations = conn.execute("SELECT count(*) FROM allocations").fetchone()[0]
            holds = (("pool", int(pools)), ("allocation", int(allocations)))
            return FileSummary(str(self.path), None, peeked.state_id, holds)
        finally:
            peeked.close()

    def load(self) -> Snapshot:
        with self._open().read() as conn:  # one consistent read of all four tables
            try:
                return self._rows(conn)
            except (ValueError, KeyError, TypeError) as exc:
                # Only something else than this code writes a row that does not decode.
                reason = f"{type(exc).__name__}: {exc}"[:200]
                raise StoreError(damaged_record(self.name, reason)) from exc

    @staticmethod
    def _rows(conn: sqlite3.Connection) -> Snapshot:
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
                "SELECT table_key, address, released_at, until, endpoint, lan_mac FROM quarantine"
                " ORDER BY released_at"
            )
        )
        cursors = tuple(
            CursorRecord(*row) for row in conn.execute("SELECT pool_id, address FROM cursors")
        )
        dhcp_leases = tuple(
            DhcpLeaseRecord(*row)
            for row in conn.execute(
                "SELECT pool_id, address, prefixlen, mac, client_id, hostname, endpoint,"
                " server_id, server_mac, router, lease_seconds, renew_seconds, rebind_seconds,"
                " acquired_at, state, problem FROM dhcp_leases"
            )
        )
        return Snapshot(leases, allocations, quarantine, cursors, dhcp_leases)

    def commit(self, change: Change) -> None:
        with self._open().write() as conn:
            self._write(conn, change)

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
                " endpoint, lan_mac) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (q.table_key, q.address, q.released_at, q.until, q.endpoint, q.lan_mac)
                    for q in change.put_quarantine
                ],
            )
        if change.put_cursors:
            conn.executemany(
                "INSERT OR REPLACE INTO cursors (pool_id, address) VALUES (?, ?)",
                [(c.pool_id, c.address) for c in change.put_cursors],
            )
        if change.delete_dhcp_leases:
            conn.executemany(
                "DELETE FROM dhcp_leases WHERE pool_id = ? AND address = ?",
                change.delete_dhcp_leases,
            )
        if change.put_dhcp_leases:
            conn.executemany(
                "INSERT OR REPLACE INTO dhcp_leases VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [tuple(d) for d in change.put_dhcp_leases],
            )
        if change.delete_leases:
            ids = [(pool_id,) for pool_id in change.delete_leases]
            conn.executemany("DELETE FROM cursors WHERE pool_id = ?", ids)
            conn.executemany("DELETE FROM leases WHERE pool_id = ?", ids)

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()
