"""What the IPAM's SQLite stores (`ipam.sqlite3`, `cluster.sqlite3`) need of the daemon's
state-file policy.

The policy itself (owner-only files, durable directory entries, WAL and `synchronous=FULL`,
`BEGIN IMMEDIATE` writes, schema versions and migrations, refusal of a newer schema, one-line
errors) is written once for every store of the daemon, in plugin/state_files.py, and handed in
by the composition root; ipam/ declares here only the shape it uses, and imports nothing of it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol


class StateFile(Protocol):
    """One open state file."""

    @property
    def blank(self) -> str | None:
        """From `peek`: why the file holds nothing ("is missing", "is empty (0 bytes)")."""
        ...

    @property
    def state_id(self) -> str | None: ...

    def read(self) -> AbstractContextManager[sqlite3.Connection]:
        """One consistent read."""
        ...

    def write(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction, all or nothing, durable when the block ends."""
        ...

    def close(self) -> None: ...


class StateFiles(Protocol):
    """Opens state files; every failure comes back as ``error(one line naming the file and what
    to do)``, so a store raises only its own `StoreError`."""

    def open(
        self,
        path: Path,
        *,
        version: int,
        migrations: Mapping[int, str],
        error: Callable[[str], Exception],
    ) -> StateFile:
        """The file, created if missing, migrated to `version` (`migrations[n]`: n to n + 1)."""
        ...

    def peek(self, path: Path, *, version: int, error: Callable[[str], Exception]) -> StateFile:
        """The file as it is: creates and migrates nothing."""
        ...
