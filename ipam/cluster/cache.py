"""This host's own record of the blocks it holds: `cluster.sqlite3` in the state directory.

Rules:

* The blocks a host holds are cached on its disk, so a restart, or a restart while etcd is down,
  never forgets them: allocation inside them needs no etcd at all.
* Order of writes, so that a crash at any point is safe: a claim is written to etcd first and to
  this cache after (a crash in between leaves a block that etcd says is ours and we do not know:
  the next claim or sweep adopts it); a give-back drops the block from memory, then etcd, then
  this cache (a crash before the last step leaves a cached block that etcd no longer has: the
  next sweep claims it again, or finds another host took it and drops it). The reverse orders
  could leave this host handing out addresses of a block another host owns.
* The node instance ID, random, is made once here: it is this state directory's identity in the
  cluster (`ipam.cluster.layout`).
* The daemon's one state-file policy opens the file (handed in as `StateFiles`, see
  ipam/state_file.py): owner-only, WAL journal, `synchronous=FULL`, one transaction per change,
  `PRAGMA user_version` as the schema version (a newer one is refused, not guessed at).
* All calls come from one worker thread (the caller guarantees it), so no locking here.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from ipam.addresses import Subnet, parse_subnet
from ipam.cluster.layout import Scope
from ipam.errors import StoreError
from ipam.state_file import StateFile, StateFiles

SCHEMA_VERSION = 1

_SCHEMA_V1 = """
CREATE TABLE blocks (
    address_space TEXT NOT NULL,
    lan           TEXT NOT NULL,
    block         TEXT NOT NULL,       -- CIDR
    pool          TEXT NOT NULL,       -- the subnet it was claimed for
    claimed_at    REAL NOT NULL,
    PRIMARY KEY (address_space, lan, block)
) WITHOUT ROWID;

CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""

# _MIGRATIONS[n] turns schema version n into n + 1.
_MIGRATIONS: dict[int, str] = {0: _SCHEMA_V1}


@dataclass(frozen=True, slots=True)
class CachedBlock:
    scope: Scope
    block: Subnet
    pool: str
    claimed_at: float


class BlockCache:
    """The cluster block cache on one SQLite file."""

    FILE_NAME = "cluster.sqlite3"

    def __init__(self, path: Path, files: StateFiles) -> None:
        self.path = Path(path)
        self._files = files
        self._file: StateFile | None = None

    def _open(self) -> StateFile:
        if self._file is None:
            self._file = self._files.open(
                self.path, version=SCHEMA_VERSION, migrations=_MIGRATIONS, error=StoreError
            )
        return self._file

    def open(self) -> tuple[str, list[CachedBlock]]:
        """The instance ID (made on first use) and every cached block."""
        with self._open().write() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = 'instance'").fetchone()
            if row is None:
                instance = secrets.token_hex(8)
                conn.execute("INSERT INTO meta (name, value) VALUES ('instance', ?)", (instance,))
            else:
                instance = str(row[0])
            rows = conn.execute(
                "SELECT address_space, lan, block, pool, claimed_at FROM blocks"
            ).fetchall()
        return instance, _decoded(rows)

    def read(self) -> tuple[str | None, list[CachedBlock]]:
        """The instance ID (None if never made) and every cached block, writing nothing (a
        stopped daemon's file, opened read-only by `pymacvlan status`)."""
        with self._open().read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = 'instance'").fetchone()
            rows = conn.execute(
                "SELECT address_space, lan, block, pool, claimed_at FROM blocks"
            ).fetchall()
        return (None if row is None else str(row[0])), _decoded(rows)

    def add(self, blocks: list[CachedBlock]) -> None:
        self._write(
            "INSERT OR REPLACE INTO blocks (address_space, lan, block, pool, claimed_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (b.scope.address_space, b.scope.lan, str(b.block), b.pool, b.claimed_at)
                for b in blocks
            ],
        )

    def remove(self, blocks: list[tuple[Scope, Subnet]]) -> None:
        self._write(
            "DELETE FROM blocks WHERE address_space = ? AND lan = ? AND block = ?",
            [(scope.address_space, scope.lan, str(block)) for scope, block in blocks],
        )

    def _write(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        if not rows:
            return
        with self._open().write() as conn:
            conn.executemany(sql, rows)

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()


def _decoded(rows: list[tuple[str, str, str, str, float]]) -> list[CachedBlock]:
    blocks = []
    for space, lan, text, pool, claimed_at in rows:
        block = parse_subnet(text)
        blocks.append(CachedBlock(Scope(space, lan, block.family), block, pool, float(claimed_at)))
    return blocks
