"""The driver's durable state: networks, endpoints and the links the plugin owns, in SQLite.

Docker never sends CreateNetwork again after it (or the plugin) restarts, so every network lives
here from the moment CreateNetwork succeeds until DeleteNetwork. Each method is one transaction:
when it returns, the change survives a crash or a power cut. How the file is created, opened,
migrated and written (owner-only, WAL, ``synchronous=FULL``, schema versions, one-line errors) is
the daemon's one policy for every state file, handed in as `StateFiles` (plugin/state_files.py);
this module declares only its schema and what it reads and writes. The file is opened by the
first call (`probe` never creates it), not by the constructor. The driver calls these methods
from a worker thread, one at a time, under its own lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from driver.config import NetworkConfig
from driver.errors import DriverError, StoreError
from driver.records import (
    DriverState,
    EndpointRecord,
    OwnedLink,
    endpoint_from_json,
    endpoint_to_json,
    network_from_json,
    network_to_json,
    owned_link_from_json,
    owned_link_to_json,
)

__all__ = ["FileSummary", "SqliteDriverStore", "StateFiles", "StoreError", "open_store"]

_Record = TypeVar("_Record")

SCHEMA_VERSION = 1
FILE_NAME = "driver.sqlite3"

# Version 1, as the first releases wrote it (IF NOT EXISTS: they could leave these tables behind
# with user_version still 0).
_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS networks (
    network_id TEXT PRIMARY KEY,
    config     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    endpoint_id TEXT PRIMARY KEY,
    network_id  TEXT NOT NULL REFERENCES networks(network_id) ON DELETE CASCADE,
    record      TEXT NOT NULL
);
-- Links the plugin created (VLAN parents, dummy parents, host shims). A link is deleted only if
-- it is listed here AND its alias still says it is ours AND no network uses it any more.
CREATE TABLE IF NOT EXISTS owned_links (
    name   TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
"""

# _MIGRATIONS[n] turns schema version n into n + 1 (the policy runs each in one transaction).
_MIGRATIONS: dict[int, str] = {0: _SCHEMA_V1}


def damaged_record(path: Path, detail: str) -> str:
    return (
        f"{path} holds a record pymacvlan cannot read ({detail}): the file is damaged; restore "
        "the file from a backup, or move it aside to start over (then remove the old networks "
        "with docker network rm); see docs/install.md#troubleshooting"
    )


class StateFile(Protocol):
    """One open state file, as the daemon's state-file policy hands it out."""

    @property
    def blank(self) -> str | None:
        """From `peek`: why the file holds nothing ("is missing", "is empty (0 bytes)")."""
        ...

    @property
    def state_id(self) -> str | None: ...

    def read(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def write(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def close(self) -> None: ...


class StateFiles(Protocol):
    """The daemon's policy for its state files (plugin/state_files.py); errors come back as
    ``error(one line naming the file and what to do)``."""

    def open(
        self,
        path: Path,
        *,
        version: int,
        migrations: Mapping[int, str],
        error: Callable[[str], Exception],
    ) -> StateFile: ...

    def peek(self, path: Path, *, version: int, error: Callable[[str], Exception]) -> StateFile: ...


@dataclass(frozen=True)
class FileSummary:
    """What the state file holds, read without creating it: the daemon compares the driver's and
    the IPAM's files before it opens either (plugin/state_check.py)."""

    file: str
    blank: str | None  # why it holds nothing at all; None: it is a state file
    state_id: str | None
    holds: tuple[tuple[str, int], ...]  # ("network", 2), ("endpoint", 3)


class SqliteDriverStore:
    def __init__(self, path: Path, files: StateFiles) -> None:
        self.path = path
        self._files = files
        self._file: StateFile | None = None

    def _open(self) -> StateFile:
        if self._file is None:
            self._file = self._files.open(
                self.path, version=SCHEMA_VERSION, migrations=_MIGRATIONS, error=StoreError
            )
        return self._file

    def probe(self) -> FileSummary:
        peeked = self._files.peek(self.path, version=SCHEMA_VERSION, error=StoreError)
        try:
            if peeked.blank is not None:
                return FileSummary(str(self.path), peeked.blank, None, ())
            with peeked.read() as db:
                networks = db.execute("SELECT count(*) FROM networks").fetchone()[0]
                endpoints = db.execute("SELECT count(*) FROM endpoints").fetchone()[0]
            holds = (("network", int(networks)), ("endpoint", int(endpoints)))
            return FileSummary(str(self.path), None, peeked.state_id, holds)
        finally:
            peeked.close()

    def load(self) -> DriverState:
        with self._open().read() as db:  # one consistent read of the three tables
            nets = db.execute("SELECT config FROM networks").fetchall()
            eps = db.execute("SELECT record FROM endpoints").fetchall()
            links = db.execute("SELECT record FROM owned_links").fetchall()
        return DriverState(
            networks=tuple(self._decoded("network", network_from_json, r[0]) for r in nets),
            endpoints=tuple(self._decoded("endpoint", endpoint_from_json, r[0]) for r in eps),
            owned_links=tuple(
                self._decoded("owned link", owned_link_from_json, r[0]) for r in links
            ),
        )

    def _decoded(self, what: str, decode: Callable[[str], _Record], text: str) -> _Record:
        """One stored record, or one line saying the file is damaged (a record written by this
        code always decodes: one that does not was changed by something else)."""
        try:
            return decode(text)
        except (ValueError, KeyError, TypeError, AttributeError, DriverError) as exc:
            reason = f"{type(exc).__name__}: {exc}"[:200]
            raise StoreError(damaged_record(self.path, f"a {what}: {reason}")) from exc

    def put_network(self, config: NetworkConfig, new_links: tuple[OwnedLink, ...] = ()) -> None:
        with self._open().write() as db:
            db.execute(
                "INSERT OR REPLACE INTO networks VALUES (?, ?)",
                (config.network_id, network_to_json(config)),
            )
            for link in new_links:
                db.execute(
                    "INSERT OR REPLACE INTO owned_links VALUES (?, ?)",
                    (link.name, owned_link_to_json(link)),
                )

    def delete_network(self, network_id: str, dropped_links: tuple[str, ...] = ()) -> None:
        with self._open().write() as db:
            db.execute("DELETE FROM networks WHERE network_id = ?", (network_id,))
            db.executemany("DELETE FROM owned_links WHERE name = ?", [(n,) for n in dropped_links])

    def delete_owned_link(self, name: str) -> None:
        with self._open().write() as db:
            db.execute("DELETE FROM owned_links WHERE name = ?", (name,))

    def put_endpoint(self, record: EndpointRecord) -> None:
        with self._open().write() as db:
            db.execute(
                "INSERT OR REPLACE INTO endpoints VALUES (?, ?, ?)",
                (record.endpoint_id, record.network_id, endpoint_to_json(record)),
            )

    def delete_endpoint(self, endpoint_id: str) -> None:
        with self._open().write() as db:
            db.execute("DELETE FROM endpoints WHERE endpoint_id = ?", (endpoint_id,))

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()


def open_store(state_dir: Path, files: StateFiles) -> SqliteDriverStore:
    """The store on ``state_dir/driver.sqlite3``; the file is opened by the first call."""
    return SqliteDriverStore(state_dir / FILE_NAME, files)
