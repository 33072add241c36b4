"""The driver's durable state: networks, endpoints and the links the plugin owns, in SQLite.

Docker never sends CreateNetwork again after it (or the plugin) restarts, so every network lives
here from the moment CreateNetwork succeeds until DeleteNetwork. Each method is one transaction
(WAL journal, ``synchronous=FULL``): when it returns, the change survives a crash or a power cut.
The driver calls these methods from a worker thread, one at a time, under its own lock.
"""

from __future__ import annotations

import ipaddress
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driver.config import NetworkConfig, Parent, Subnet
from driver.errors import DriverError

SCHEMA_VERSION = 1

_SCHEMA = """
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


class StoreError(DriverError):
    """The state directory cannot be read or written."""


@dataclass(frozen=True)
class EndpointRecord:
    endpoint_id: str
    network_id: str
    link_name: str
    mac: str = ""  # the MAC the link gets ("" → the kernel's choice, ipvlan: the parent's)
    mac_generated: bool = False  # we chose it (and told Docker), rather than Docker
    ipv4: ipaddress.IPv4Interface | None = None
    ipv6: ipaddress.IPv6Interface | None = None


@dataclass(frozen=True)
class OwnedLink:
    """A link the plugin created and may delete: enough to recreate it after a reboot."""

    name: str
    kind: str  # "vlan" | "dummy" | "bridge" | "macvlan" | "ipvlan" (shims)
    alias: str
    base: str = ""  # the VLAN's (or shim's) parent
    vlan_id: int = 0
    mode: str = ""  # shim: macvlan/ipvlan mode


@dataclass(frozen=True)
class DriverState:
    networks: tuple[NetworkConfig, ...]
    endpoints: tuple[EndpointRecord, ...]
    owned_links: tuple[OwnedLink, ...]


class SqliteDriverStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # The driver serialises all access and hops between worker threads.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            # CREATE ... IF NOT EXISTS is idempotent; executescript commits on its own.
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the driver state {path}: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the driver state {self.path}: {exc}") from exc

    def load(self) -> DriverState:
        try:
            nets = self._db.execute("SELECT config FROM networks").fetchall()
            eps = self._db.execute("SELECT record FROM endpoints").fetchall()
            links = self._db.execute("SELECT record FROM owned_links").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the driver state {self.path}: {exc}") from exc
        return DriverState(
            networks=tuple(network_from_json(r[0]) for r in nets),
            endpoints=tuple(endpoint_from_json(r[0]) for r in eps),
            owned_links=tuple(OwnedLink(**json.loads(r[0])) for r in links),
        )

    def put_network(self, config: NetworkConfig, new_links: tuple[OwnedLink, ...] = ()) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO networks VALUES (?, ?)",
                (config.network_id, network_to_json(config)),
            )
            for link in new_links:
                db.execute(
                    "INSERT OR REPLACE INTO owned_links VALUES (?, ?)",
                    (link.name, json.dumps(link.__dict__)),
                )

    def delete_network(self, network_id: str, dropped_links: tuple[str, ...] = ()) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM networks WHERE network_id = ?", (network_id,))
            db.executemany("DELETE FROM owned_links WHERE name = ?", [(n,) for n in dropped_links])

    def put_owned_link(self, link: OwnedLink) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO owned_links VALUES (?, ?)",
                (link.name, json.dumps(link.__dict__)),
            )

    def delete_owned_link(self, name: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM owned_links WHERE name = ?", (name,))

    def put_endpoint(self, record: EndpointRecord) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO endpoints VALUES (?, ?, ?)",
                (record.endpoint_id, record.network_id, endpoint_to_json(record)),
            )

    def delete_endpoint(self, endpoint_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM endpoints WHERE endpoint_id = ?", (endpoint_id,))

    def close(self) -> None:
        self._db.close()


def network_to_json(c: NetworkConfig) -> str:
    return json.dumps(
        {
            "network_id": c.network_id,
            "kind": c.kind,
            "parent": c.parent.__dict__,
            "macvlan_mode": c.macvlan_mode,
            "ipvlan_mode": c.ipvlan_mode,
            "ipvlan_flag": c.ipvlan_flag,
            "mtu": c.mtu,
            "internal": c.internal,
            "host_address": c.host_address,
            "ipv4": [_subnet_to_dict(s) for s in c.ipv4],
            "ipv6": [_subnet_to_dict(s) for s in c.ipv6],
        },
        sort_keys=True,
    )


def network_from_json(text: str) -> NetworkConfig:
    d = json.loads(text)
    return NetworkConfig(
        network_id=d["network_id"],
        kind=d["kind"],
        parent=Parent(**d["parent"]),
        macvlan_mode=d["macvlan_mode"],
        ipvlan_mode=d["ipvlan_mode"],
        ipvlan_flag=d["ipvlan_flag"],
        mtu=d["mtu"],
        internal=d["internal"],
        host_address=d.get("host_address", ""),
        ipv4=tuple(_subnet_from_dict(s) for s in d["ipv4"]),
        ipv6=tuple(_subnet_from_dict(s) for s in d["ipv6"]),
    )


def _subnet_to_dict(s: Subnet) -> dict[str, Any]:
    return {
        "pool": str(s.pool),
        "gateway": str(s.gateway) if s.gateway else "",
        "aux": {k: str(v) for k, v in s.aux_addresses.items()},
    }


def _subnet_from_dict(d: dict[str, Any]) -> Subnet:
    return Subnet(
        pool=ipaddress.ip_network(d["pool"]),
        gateway=ipaddress.ip_address(d["gateway"]) if d["gateway"] else None,
        aux_addresses={k: ipaddress.ip_address(v) for k, v in d["aux"].items()},
    )


def endpoint_to_json(r: EndpointRecord) -> str:
    return json.dumps(
        {
            "endpoint_id": r.endpoint_id,
            "network_id": r.network_id,
            "link_name": r.link_name,
            "mac": r.mac,
            "mac_generated": r.mac_generated,
            "ipv4": str(r.ipv4) if r.ipv4 else "",
            "ipv6": str(r.ipv6) if r.ipv6 else "",
        },
        sort_keys=True,
    )


def endpoint_from_json(text: str) -> EndpointRecord:
    d = json.loads(text)
    return EndpointRecord(
        endpoint_id=d["endpoint_id"],
        network_id=d["network_id"],
        link_name=d["link_name"],
        mac=d["mac"],
        mac_generated=d["mac_generated"],
        ipv4=ipaddress.IPv4Interface(d["ipv4"]) if d["ipv4"] else None,
        ipv6=ipaddress.IPv6Interface(d["ipv6"]) if d["ipv6"] else None,
    )


def open_store(state_dir: Path) -> SqliteDriverStore:
    return SqliteDriverStore(state_dir / "driver.sqlite3")
