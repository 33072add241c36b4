"""The one durability policy of every state file (plugin/state_files.py)."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from plugin.state_files import StateFile, StateFiles

V1 = "CREATE TABLE things (name TEXT PRIMARY KEY);"
V2 = "ALTER TABLE things ADD COLUMN size INTEGER;"


class Oops(Exception):
    """A store's own error class: the policy raises what the store hands it."""


def open_v(files: StateFiles, path: Path, version: int = 1, **migrations: str) -> StateFile:
    steps = {0: V1, 1: V2} | {int(k[1:]): v for k, v in migrations.items()}
    return files.open(path, version=version, migrations=steps, error=Oops)


def test_a_new_file_is_owner_only_in_an_owner_only_directory(tmp_path: Path) -> None:
    path = tmp_path / "state" / "x.sqlite3"
    file = open_v(StateFiles(), path)
    with file.write() as db:
        db.execute("INSERT INTO things VALUES ('a')")
    file.close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_connection_is_durable_and_waits_for_a_busy_file(tmp_path: Path) -> None:
    file = open_v(StateFiles(), tmp_path / "x.sqlite3")
    with file.read() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    file.close()


def test_migrations_bring_a_file_to_the_version_and_record_when_it_was_made(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.sqlite3"
    open_v(StateFiles(), path, version=1).close()
    file = open_v(StateFiles(), path, version=2)
    with file.write() as db:
        db.execute("INSERT INTO things VALUES ('a', 3)")
    file.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
    assert set(meta) == {"created_at"}  # no state ID given: none written


def test_a_failed_migration_leaves_the_previous_version_whole(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    file = open_v(StateFiles(), path)
    with file.write() as db:
        db.execute("INSERT INTO things VALUES ('a')")
    file.close()
    with pytest.raises(Oops, match="no such table: gone"):
        open_v(StateFiles(), path, version=2, m1=f"{V2}\nDROP TABLE gone;")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        assert db.execute("SELECT * FROM things").fetchall() == [("a",)]


def test_a_file_that_fails_to_open_on_creation_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    with pytest.raises(Oops):
        open_v(StateFiles(), path, m0="CREATE TABLE broken (")
    assert list(tmp_path.iterdir()) == []


def test_a_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")
    attempts: tuple[Callable[[], object], ...] = (
        lambda: open_v(StateFiles(), path, version=2),
        lambda: StateFiles().peek(path, version=2, error=Oops),
    )
    for attempt in attempts:
        with pytest.raises(Oops) as caught:
            attempt()
        assert str(caught.value) == (
            f"{path} was written by a newer pymacvlan (schema version 7; this one knows up to "
            "2): upgrade pymacvlan, or restore the file from a backup made by this version; "
            "see docs/install.md#troubleshooting"
        )
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 7


def test_a_file_that_is_not_a_database_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    path.write_bytes(b"not sqlite at all\n" * 100)
    attempts: tuple[Callable[[], object], ...] = (
        lambda: open_v(StateFiles(), path),
        lambda: StateFiles().peek(path, version=1, error=Oops),
    )
    for attempt in attempts:
        with pytest.raises(Oops) as caught:
            attempt()
        assert str(caught.value) == (
            f"{path} is not a pymacvlan state file (file is not a database): restore it from "
            "a backup or move it aside, then restart pymacvlan; "
            "see docs/install.md#troubleshooting"
        )
    assert path.read_bytes() == b"not sqlite at all\n" * 100


def test_a_write_that_raises_is_rolled_back(tmp_path: Path) -> None:
    file = open_v(StateFiles(), tmp_path / "x.sqlite3")

    def insert_then_fail() -> None:
        with file.write() as db:
            db.execute("INSERT INTO things VALUES ('a')")
            raise ZeroDivisionError

    def insert_twice() -> None:
        with file.write() as db:
            db.execute("INSERT INTO things VALUES ('b')")
            db.execute("INSERT INTO things VALUES ('b')")

    with pytest.raises(ZeroDivisionError):
        insert_then_fail()
    with pytest.raises(Oops, match="UNIQUE constraint failed"):
        insert_twice()
    with file.read() as db:
        assert db.execute("SELECT * FROM things").fetchall() == []
    file.close()


@pytest.mark.parametrize(
    ("content", "blank"),
    [
        (None, "is missing"),
        (b"", "is empty (0 bytes)"),
        ("schema-less", "is empty (no tables)"),
    ],
)
def test_peek_reports_a_blank_file_and_creates_nothing(
    tmp_path: Path, content: bytes | str | None, blank: str
) -> None:
    path = tmp_path / "x.sqlite3"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        sqlite3.connect(path).execute("PRAGMA user_version = 0").connection.close()
        with sqlite3.connect(path) as db:  # a valid file with no table in it
            db.execute("CREATE TABLE t (x)")
            db.execute("DROP TABLE t")
    before = sorted(p.name for p in tmp_path.iterdir())
    peeked = StateFiles().peek(path, version=1, error=Oops)
    assert peeked.blank == blank
    peeked.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_peek_never_creates_the_state_directory(tmp_path: Path) -> None:
    peeked = StateFiles().peek(tmp_path / "state" / "x.sqlite3", version=1, error=Oops)
    assert peeked.blank == "is missing"
    assert not (tmp_path / "state").exists()


def test_peek_reads_without_migrating(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    file = open_v(StateFiles("id-1"), path)
    with file.write() as db:
        db.execute("INSERT INTO things VALUES ('a')")
    file.close()
    peeked = StateFiles().peek(path, version=2, error=Oops)
    assert (peeked.blank, peeked.state_id) == (None, "id-1")
    with peeked.read() as db:
        assert db.execute("SELECT count(*) FROM things").fetchone()[0] == 1
    peeked.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1


def test_the_state_id_is_written_adopted_and_required(tmp_path: Path) -> None:
    made = tmp_path / "made.sqlite3"
    file = open_v(StateFiles("id-1"), made)
    assert file.state_id == "id-1"
    file.close()
    older = tmp_path / "older.sqlite3"  # written before state IDs: adopts the one given
    with sqlite3.connect(older) as db:
        db.executescript(f"{V1}\nPRAGMA user_version = 1;")
    assert open_v(StateFiles(), older).state_id is None  # nothing given: nothing written
    file = open_v(StateFiles("id-1"), older)
    assert file.state_id == "id-1"
    file.close()
    with pytest.raises(Oops) as caught:
        open_v(StateFiles("id-2"), made)
    assert str(caught.value).startswith(
        f"{made} belongs to another pymacvlan state directory (state ID id-1, this one is id-2)"
    )


def test_a_state_directory_that_is_a_file_is_one_clear_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("not a directory\n")
    attempts: tuple[Callable[[], object], ...] = (
        lambda: open_v(StateFiles(), state / "x.sqlite3"),
        lambda: StateFiles().peek(state / "x.sqlite3", version=1, error=Oops),
    )
    for attempt in attempts:
        with pytest.raises(Oops) as caught:
            attempt()
        assert str(caught.value).startswith(
            f"the state directory {state} is not a directory: move that file aside or choose "
            "another --state-dir"
        )
