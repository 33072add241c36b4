"""What the IPAM's two SQLite files (`ipam.sqlite3`, `cluster.sqlite3`) open and write alike.

* The file is created owner-only (it names every container's address), and its directory entry
  is made durable, so a new state file cannot vanish in a crash after its first commit.
* WAL journal and `synchronous=FULL`: a commit returns only once the change is on disk.
* Writes are `BEGIN IMMEDIATE` ... `COMMIT`, rolled back on any error: a change is wholly there
  or wholly absent.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def connect_durable(path: Path) -> tuple[sqlite3.Connection, str]:
    """The connection (autocommit: transactions are explicit) and the journal mode the file
    system allowed ("wal", or another one where WAL is not supported). Raises sqlite3.Error
    and OSError as they come."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    created = False
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        created = True
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        if created:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except BaseException:
        conn.close()
        raise
    return conn, mode


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed when the block ends, rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
