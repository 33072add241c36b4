"""The one durability policy of every state file (driver.sqlite3, ipam.sqlite3, cluster.sqlite3).

Each store declares its own schema (a version and the migrations up to it) and the small protocol
it needs (`driver/store.py`, `ipam/state_file.py`); the composition root (plugin/services.py)
hands every store a `StateFiles`, so driver/ and ipam/ import nothing from here and nothing from
each other. The rules, written once:

* A file is created owner-only (0600: it names every container's address) in an owner-only state
  directory, and the directory entry is fsynced before the first commit: a new state file cannot
  vanish in a crash after it has answered Docker.
* WAL journal and `synchronous=FULL`: a commit returns only once it is on disk. Foreign keys on.
  A busy timeout, so that a reader by hand (a backup, the sqlite3 shell) delays a write instead of
  failing it.
* Writes are `BEGIN IMMEDIATE` ... `COMMIT`, rolled back on any error: all of a change or none.
* `PRAGMA user_version` is the schema version; `migrations[n]` turns version n into n + 1 in one
  transaction together with the new version number. A file written by a newer pymacvlan is
  refused, never guessed at nor downgraded.
* Identity: a `meta` table (name, value) holds `created_at` and `state_id`. The files of one state
  directory share one state ID (set by the start-up check, plugin/state_check.py), so a file put
  back from another state directory is recognised.
* Every failure becomes ONE line that names the file and what to do, raised as the store's own
  error class (`error`), so each domain keeps its one exception hierarchy.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

from plugin.logs import get_logger

log = get_logger(__name__)

ErrorFactory = Callable[[str], Exception]

TROUBLESHOOTING = "see docs/install.md#troubleshooting"
BUSY_TIMEOUT_MS = 5000

# The policy's own table, created with the first schema (after the store's own first migration,
# whose tables may include a `meta` of the same shape: cluster.sqlite3 keeps its instance ID there).
_META_TABLE = """
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID"""
_CREATED_AT = (
    "INSERT OR IGNORE INTO meta (name, value)"
    " VALUES ('created_at', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))"
)

_UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


# ------------------------------------------------------------------------------- messages


def not_a_state_file(path: Path, reason: str) -> str:
    return (
        f"{path} is not a pymacvlan state file ({reason}): restore it from a backup or move it "
        f"aside, then restart pymacvlan; {TROUBLESHOOTING}"
    )


def unwritable(directory: Path, what: str) -> str:
    return (
        f"{what}: the state directory {directory} must be writable by pymacvlan; fix its mount "
        f"or permissions, then restart pymacvlan; {TROUBLESHOOTING}"
    )


def written_by_newer(path: Path, version: int, known: int) -> str:
    return (
        f"{path} was written by a newer pymacvlan (schema version {version}; this one knows up "
        f"to {known}): upgrade pymacvlan, or restore the file from a backup made by this "
        f"version; {TROUBLESHOOTING}"
    )


def explain(path: Path, exc: BaseException, doing: str) -> str:
    """One line for a failure of SQLite or of the file system on `path` while `doing` it."""
    name = str(getattr(exc, "sqlite_errorname", ""))
    code = exc.errno if isinstance(exc, OSError) else None
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if name == "SQLITE_NOTADB" or name.startswith("SQLITE_CORRUPT"):
        return not_a_state_file(path, reason)
    if name.startswith("SQLITE_READONLY") or code in _UNWRITABLE:
        return unwritable(path.parent, f"cannot {doing} {path} ({reason})")
    if code == errno.ENOTDIR:
        return (
            f"the state directory {path.parent} is not a directory: move that file aside or "
            f"choose another --state-dir, then restart pymacvlan; {TROUBLESHOOTING}"
        )
    if name == "SQLITE_FULL" or code == errno.ENOSPC:
        return f"cannot {doing} {path}: the disk is full; free space on it; {TROUBLESHOOTING}"
    return f"cannot {doing} {path}: {reason}; {TROUBLESHOOTING}"


# ------------------------------------------------------------------------------ one file


class StateFile:
    """One state file: its connection and the policy's transactions.

    A file that `StateFiles.peek` found holding nothing (missing, 0 bytes, no tables) comes with
    `blank` saying which, and without a connection.
    """

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection | None,
        error: ErrorFactory,
        *,
        blank: str | None = None,
        state_id: str | None = None,
    ) -> None:
        self.path = path
        self.blank = blank
        self.state_id = state_id
        self._conn = conn
        self._error = error

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise self._error(f"{self.path} is not open")
        return self._conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """One consistent read of several tables."""
        with self._transaction("BEGIN", "read") as conn:
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with self._transaction("BEGIN IMMEDIATE", "write") as conn:
            yield conn

    @contextlib.contextmanager
    def _transaction(self, begin: str, doing: str) -> Iterator[sqlite3.Connection]:
        try:
            with _transaction(self._connection(), begin) as conn:
                yield conn
        except (sqlite3.Error, OSError) as exc:
            raise self._error(explain(self.path, exc, doing)) from exc

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as exc:
                raise self._error(explain(self.path, exc, "close")) from exc


# ------------------------------------------------------------------------------ the policy


class StateFiles:
    """Opens state files by the policy above. `state_id`, once the start-up check has set it, is
    written into files that have none and required of files that have one."""

    def __init__(self, state_id: str | None = None) -> None:
        self.state_id = state_id

    def open(
        self,
        path: Path,
        *,
        version: int,
        migrations: Mapping[int, str],
        error: ErrorFactory,
    ) -> StateFile:
        """The file at `path`, created (with its directory) if missing, migrated to `version`."""
        created = False
        try:
            _make_directory(path.parent)
            _require_writable(path)
            created = _create_owner_only(path)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                _configure(conn, path)
                _migrate(conn, path, version, migrations, error)
                state_id = self._identify(conn, path, error)
            except BaseException:
                conn.close()
                raise
        except BaseException as exc:
            if created:  # a start that failed leaves nothing made up behind
                _remove(path)
            if isinstance(exc, _Explained):
                raise error(str(exc)) from exc.__cause__
            if isinstance(exc, sqlite3.Error | OSError):
                raise error(explain(path, exc, "open")) from exc
            raise
        return StateFile(path, conn, error, state_id=state_id)

    def peek(self, path: Path, *, version: int, error: ErrorFactory) -> StateFile:
        """The file as it is, for the start-up check: creates nothing (no file, no directory),
        migrates nothing. Refuses what `open` would refuse (not a database, a newer schema, a
        state directory that is not writable)."""
        try:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                return StateFile(path, None, error, blank="is missing")
            _require_writable(path)
            if size == 0:
                return StateFile(path, None, error, blank="is empty (0 bytes)")
            # mode=rw: an existing file only, never a new one.
            conn = sqlite3.connect(
                f"file:{quote(str(path))}?mode=rw",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                found = int(conn.execute("PRAGMA user_version").fetchone()[0])
                if found > version:
                    raise error(written_by_newer(path, found, version))
                tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if found == 0 and tables == 0:
                    conn.close()
                    return StateFile(path, None, error, blank="is empty (no tables)")
                state_id = _meta(conn).get("state_id")
            except BaseException:
                conn.close()
                raise
        except _Explained as exc:
            raise error(str(exc)) from exc.__cause__
        except (sqlite3.Error, OSError) as exc:
            raise error(explain(path, exc, "read")) from exc
        return StateFile(path, conn, error, state_id=state_id)

    def _identify(self, conn: sqlite3.Connection, path: Path, error: ErrorFactory) -> str | None:
        """The file's state ID: adopts ours if it has none, refuses one that is not ours."""
        found = _meta(conn).get("state_id")
        wanted = self.state_id
        if wanted is None or found == wanted:
            return found
        if found is not None:
            raise error(
                f"{path} belongs to another pymacvlan state directory (state ID {found}, this "
                f"one is {wanted}): put back the file that belongs here, or restore the whole "
                f"state directory from one backup; {TROUBLESHOOTING}"
            )
        with _transaction(conn, "BEGIN IMMEDIATE"):
            conn.execute(_META_TABLE)
            conn.execute("INSERT INTO meta (name, value) VALUES ('state_id', ?)", (wanted,))
        return wanted


# ------------------------------------------------------------------- reading, by an operator


class _ReadOnlyFile(StateFile):
    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        raise self._error(f"{self.path} is opened read-only")
        yield  # pragma: no cover - makes this a generator


class ReadOnlyStateFiles:
    """Opens state files to read them and nothing else, for `pymacvlan status` on a stopped
    daemon's state directory: creates, migrates and writes nothing, and works while a daemon
    holds the directory (its lock is not taken).

    SQLite would create the `-wal` and `-shm` files of a WAL database that has none (a daemon
    that stopped cleanly removes them), even for a `mode=ro` connection. So: with both there (a
    daemon runs, or was killed), the file is read `mode=ro` through them, as any reader would;
    with neither, everything is in the file itself, which is read `immutable=1` (no locks, no
    side files). A `-wal` without its `-shm` is refused: reading it would create the `-shm`.
    """

    def open(
        self,
        path: Path,
        *,
        version: int,
        migrations: Mapping[int, str],
        error: ErrorFactory,
    ) -> StateFile:
        """The file at `path` read-only, if it is of schema `version` (`migrations` unused)."""
        opened = self.peek(path, version=version, error=error)
        if opened.blank is not None:
            raise error(f"{path} {opened.blank}")
        return opened

    def peek(self, path: Path, *, version: int, error: ErrorFactory) -> StateFile:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return _ReadOnlyFile(path, None, error, blank="is missing")
        except OSError as exc:
            raise error(explain(path, exc, "read")) from exc
        if size == 0:
            return _ReadOnlyFile(path, None, error, blank="is empty (0 bytes)")
        wal, shm = (path.with_name(path.name + suffix).exists() for suffix in ("-wal", "-shm"))
        if wal and not shm:
            raise error(
                f"cannot read {path} without writing beside it: its {path.name}-wal has no "
                f"{path.name}-shm; start pymacvlan (it reads the last changes back), then ask it"
            )
        mode = "mode=ro" if wal else "immutable=1"
        try:
            conn = sqlite3.connect(
                f"file:{quote(str(path))}?{mode}",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                found = int(conn.execute("PRAGMA user_version").fetchone()[0])
                if found > version:
                    raise _Explained(written_by_newer(path, found, version))
                tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if found == 0 and tables == 0:
                    conn.close()
                    return _ReadOnlyFile(path, None, error, blank="is empty (no tables)")
                if found < version:
                    raise _Explained(
                        f"{path} was written by an older pymacvlan (schema version {found}; "
                        f"this one reads {version}): start this pymacvlan once to upgrade it, "
                        "then ask it"
                    )
                state_id = _meta(conn).get("state_id")
            except BaseException:
                conn.close()
                raise
        except _Explained as exc:
            raise error(str(exc)) from exc.__cause__
        except (sqlite3.Error, OSError) as exc:
            raise error(explain(path, exc, "read")) from exc
        return _ReadOnlyFile(path, conn, error, state_id=state_id)


# ---------------------------------------------------------------------------- the steps


def _make_directory(directory: Path) -> None:
    """The state directory, owner-only, its own entry durable in its parent."""
    if directory.is_dir():
        return
    try:
        directory.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        if not directory.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(directory)) from None
        return  # made meanwhile by someone else
    except OSError as exc:
        what = f"cannot create the state directory {directory} ({exc.strerror})"
        if exc.errno in _UNWRITABLE:
            raise _Explained(unwritable(directory, what)) from exc
        raise _Explained(f"{what}; {TROUBLESHOOTING}") from exc
    _fsync_directory(directory.parent)


def _require_writable(path: Path) -> None:
    """Every state file is written (and SQLite writes its -wal and -shm beside it): say so now,
    in one clear line, rather than as the first failed write."""
    for target in (path.parent, path):
        if target.exists() and not os.access(target, os.W_OK):
            read_only = os.statvfs(target).f_flag & os.ST_RDONLY
            reason = "read-only file system" if read_only else "permission denied"
            raise _Explained(unwritable(path.parent, f"cannot write {target} ({reason})"))


def _create_owner_only(path: Path) -> bool:
    """Create `path` owner-only if it does not exist (True), with a durable directory entry."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    _fsync_directory(path.parent)
    return True


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):
            leftover.unlink()
    with contextlib.suppress(OSError):
        _fsync_directory(path.parent)


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
    if mode != "wal":
        log.warning(
            "state file without WAL",
            file=str(path),
            journal=mode,
            note="the file system does not support WAL; still durable, slower",
        )
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")


def _migrate(
    conn: sqlite3.Connection,
    path: Path,
    version: int,
    migrations: Mapping[int, str],
    error: ErrorFactory,
) -> None:
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > version:
        raise error(written_by_newer(path, found, version))
    while found < version:
        # executescript commits any open transaction first, so the script carries its own.
        extra = f"{_META_TABLE};\n{_CREATED_AT};" if found == 0 else ""
        script = (
            f"BEGIN IMMEDIATE;\n{migrations[found]}\n{extra}\n"
            f"PRAGMA user_version = {found + 1};\nCOMMIT;"
        )
        try:
            conn.executescript(script)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        found += 1


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, begin: str) -> Iterator[sqlite3.Connection]:
    conn.execute(begin)
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
        return {}
    return {str(name): str(value) for name, value in conn.execute("SELECT name, value FROM meta")}


class _Explained(Exception):
    """A failure already written as the one line the user reads."""
