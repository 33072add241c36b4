"""Reading a state file for an operator (plugin/state_files.py, `ReadOnlyStateFiles`): nothing
is created, written or migrated, beside a running daemon or after it stopped."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from plugin.state_files import ReadOnlyStateFiles, StateFile, StateFiles

V1 = "CREATE TABLE things (name TEXT PRIMARY KEY);"
V2 = "ALTER TABLE things ADD COLUMN size INTEGER;"
MIGRATIONS = {0: V1, 1: V2}


class Oops(Exception):
    pass


def written(path: Path, version: int = 2, state_id: str | None = None) -> StateFile:
    """A state file as the daemon leaves it, still open (its -wal and -shm beside it)."""
    file = StateFiles(state_id).open(path, version=version, migrations=MIGRATIONS, error=Oops)
    with file.write() as db:
        db.execute("INSERT INTO things (name) VALUES ('a')")
    return file


def files_in(directory: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir()}


def read_names(path: Path, version: int = 2) -> list[str]:
    file = ReadOnlyStateFiles().open(path, version=version, migrations=MIGRATIONS, error=Oops)
    try:
        with file.read() as db:
            return [row[0] for row in db.execute("SELECT name FROM things")]
    finally:
        file.close()


def test_a_stopped_daemons_file_is_read_and_nothing_appears_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    written(path, state_id="s1").close()
    before = files_in(tmp_path)
    assert set(before) == {"x.sqlite3"}  # a clean stop leaves no -wal, no -shm
    assert read_names(path) == ["a"]
    peeked = ReadOnlyStateFiles().peek(path, version=2, error=Oops)
    assert peeked.state_id == "s1"
    peeked.close()
    assert files_in(tmp_path) == before


def test_a_running_daemons_file_is_read_with_its_latest_change(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    daemon = written(path)
    with daemon.write() as db:
        db.execute("INSERT INTO things (name) VALUES ('b')")  # in the -wal only
    before = files_in(tmp_path)
    assert {"x.sqlite3-wal", "x.sqlite3-shm"} <= set(before)
    assert sorted(read_names(path)) == ["a", "b"]
    with daemon.write() as db:  # the daemon goes on writing
        db.execute("INSERT INTO things (name) VALUES ('c')")
    daemon.close()


def test_it_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    written(path).close()
    file = ReadOnlyStateFiles().open(path, version=2, migrations=MIGRATIONS, error=Oops)
    with pytest.raises(Oops, match="opened read-only"), file.write():
        pass
    with pytest.raises(Oops, match="readonly database"), file.read() as db:
        db.execute("INSERT INTO things (name) VALUES ('x')")
    file.close()


def test_an_older_or_newer_schema_is_refused_not_migrated(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    written(path, version=1).close()
    with pytest.raises(Oops, match=r"older pymacvlan \(schema version 1; this one reads 2\)"):
        read_names(path, version=2)
    with pytest.raises(Oops, match="newer pymacvlan"):
        read_names(path, version=0)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1


def test_missing_empty_and_foreign_files(tmp_path: Path) -> None:
    files = ReadOnlyStateFiles()
    assert files.peek(tmp_path / "none", version=1, error=Oops).blank == "is missing"
    with pytest.raises(Oops, match="none is missing"):
        files.open(tmp_path / "none", version=1, migrations=MIGRATIONS, error=Oops)
    (tmp_path / "empty").write_bytes(b"")
    assert files.peek(tmp_path / "empty", version=1, error=Oops).blank == "is empty (0 bytes)"
    (tmp_path / "text").write_text("not a database, but long enough to be read as one" * 100)
    with pytest.raises(Oops, match="is not a pymacvlan state file"):
        files.open(tmp_path / "text", version=1, migrations=MIGRATIONS, error=Oops)
    assert not (tmp_path / "none").exists()


def test_a_wal_without_its_shm_is_refused_rather_than_made(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    written(path).close()
    (tmp_path / "x.sqlite3-wal").write_bytes(b"")
    with pytest.raises(Oops, match=r"has no x\.sqlite3-shm"):
        read_names(path)
    assert not (tmp_path / "x.sqlite3-shm").exists()
