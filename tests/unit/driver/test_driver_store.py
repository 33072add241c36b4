"""driver.sqlite3: opened by the daemon's state-file policy, lazily, with a schema version."""

from __future__ import annotations

import ipaddress
import sqlite3
from pathlib import Path

from driver.config import PoolData, parse_network
from driver.records import EndpointRecord, endpoint_to_json, network_to_json
from driver.store import SCHEMA_VERSION, SqliteDriverStore, open_store
from plugin.state_files import StateFiles

NET = "n" * 64
EP = "e" * 64

# driver.sqlite3 as the releases before schema versioning wrote it (user_version 1).
FIRST_RELEASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS networks (
    network_id TEXT PRIMARY KEY,
    config     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    endpoint_id TEXT PRIMARY KEY,
    network_id  TEXT NOT NULL REFERENCES networks(network_id) ON DELETE CASCADE,
    record      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS owned_links (
    name   TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
PRAGMA journal_mode=WAL;
PRAGMA user_version=1;
"""


def network() -> tuple[str, EndpointRecord]:
    config = parse_network(
        NET, {"com.docker.network.generic": {"parent": "lab0"}}, [PoolData("192.0.2.0/24")]
    )
    record = EndpointRecord(EP, NET, "pmv-eeee", ipv4=ipaddress.IPv4Interface("192.0.2.5/24"))
    return network_to_json(config), record


def test_a_file_of_the_first_release_opens_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "driver.sqlite3"
    config_json, record = network()
    with sqlite3.connect(path) as db:
        db.executescript(FIRST_RELEASE_SCHEMA)
        db.execute("INSERT INTO networks VALUES (?, ?)", (NET, config_json))
        db.execute("INSERT INTO endpoints VALUES (?, ?, ?)", (EP, NET, endpoint_to_json(record)))
    with sqlite3.connect(path) as db:
        schema_before = db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()

    store = SqliteDriverStore(path, StateFiles())
    state = store.load()
    store.close()
    assert [n.network_id for n in state.networks] == [NET]
    assert state.endpoints == (record,)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 1
        assert db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == (
            schema_before
        )


def test_the_store_opens_its_file_on_first_use_and_probes_without_creating_it(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path / "state", StateFiles())
    assert not (tmp_path / "state").exists()  # the constructor opens nothing
    summary = store.probe()
    assert (summary.blank, summary.holds) == ("is missing", ())
    assert not (tmp_path / "state").exists()
    config_json, record = network()
    store.load()
    with sqlite3.connect(tmp_path / "state" / "driver.sqlite3") as db:
        db.execute("INSERT INTO networks VALUES (?, ?)", (NET, config_json))
    store.put_endpoint(record)
    store.close()
    summary = open_store(tmp_path / "state", StateFiles()).probe()
    assert summary.file == str(tmp_path / "state" / "driver.sqlite3")
    assert (summary.blank, summary.holds) == (None, (("network", 1), ("endpoint", 1)))
