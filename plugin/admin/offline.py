"""The status report of a daemon that does not run, read from its state directory.

Read-only, always: the files are opened by `ReadOnlyStateFiles` (plugin/state_files.py), which
creates, migrates and writes nothing, and the directory's lock is not taken, so this works beside
a running daemon too. The rows are decoded by the stores themselves and the allocator is rebuilt
from them exactly as the daemon does at start-up (ipam/inventory.py), so the counts are the
daemon's. What only a running daemon knows (claims seen on the LAN) is absent (None).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from driver.errors import DriverError
from driver.records import DriverState
from driver.store import FILE_NAME as DRIVER_FILE
from driver.store import open_store
from ipam.addresses import Subnet
from ipam.allocator import Allocator
from ipam.cluster.cache import BlockCache
from ipam.cluster.layout import Scope
from ipam.cluster.mode import BlockPlan
from ipam.errors import IpamError
from ipam.hostranges import HostRanges, StaticPlan
from ipam.inventory import load_allocator
from ipam.records import Snapshot
from ipam.sqlite_store import SqliteStore
from plugin.admin.report import StatusReport
from plugin.admin.reporting import ClusterHoldings, Holdings, build_report
from plugin.state_files import ReadOnlyStateFiles

IPAM_FILE = SqliteStore.FILE_NAME
CLUSTER_FILE = BlockCache.FILE_NAME


class StateUnreadable(Exception):
    """The state directory cannot be read at all (one line: which directory, why, what to do)."""


def read_state_dir(state_dir: Path, node_name: str, now: float) -> StatusReport:
    """The report of the state in `state_dir`; `node_name` is the stopped daemon's (its address
    plans and cluster blocks are this node's). Raises `StateUnreadable`."""
    _check_directory(state_dir)
    files = ReadOnlyStateFiles()
    problems: list[str] = []
    present = {name: (state_dir / name).exists() for name in (DRIVER_FILE, IPAM_FILE)}
    if not any(present.values()):
        raise StateUnreadable(
            f"{state_dir} holds no pymacvlan state (neither {DRIVER_FILE} nor {IPAM_FILE}): "
            "give the daemon's --state-dir"
        )
    problems += [f"{state_dir / name} is missing" for name, there in present.items() if not there]

    driver: DriverState | None = None
    if present[DRIVER_FILE]:
        store = open_store(state_dir, files)
        try:
            driver = store.load()
        except DriverError as exc:
            problems.append(str(exc))
        finally:
            store.close()

    cluster: ClusterHoldings | None = None
    if (state_dir / CLUSTER_FILE).exists():
        cache = BlockCache(state_dir / CLUSTER_FILE, files)
        try:
            instance, blocks = cache.read()
            cluster = ClusterHoldings(blocks=blocks, instance=instance)
        except IpamError as exc:
            problems.append(str(exc))
        finally:
            cache.close()

    allocator: Allocator | None = None
    snapshot = Snapshot()
    if present[IPAM_FILE]:
        ipam = SqliteStore(state_dir / IPAM_FILE, files)
        try:
            snapshot = ipam.load()
            allocator = load_allocator(snapshot, _host_ranges(node_name, cluster), 0.0, ipam.name)
            allocator.prune(now)  # what has rested its time is free: the daemon forgets it too
        except IpamError as exc:
            problems.append(str(exc))
        finally:
            ipam.close()

    return build_report(
        Holdings(
            source="state-dir",
            state_dir=str(state_dir),
            node_name=node_name,
            now=now,
            health="unusable" if problems else "ready",
            problems=problems,
            driver=driver,
            allocator=allocator,
            dhcp_leases=snapshot.dhcp_leases if allocator is not None else (),
            cluster=cluster,
            notes=(*snapshot.notes, *(allocator.load_notes if allocator else ())),
        )
    )


def _check_directory(state_dir: Path) -> None:
    if not state_dir.exists():
        raise StateUnreadable(f"the state directory {state_dir} does not exist")
    if not state_dir.is_dir():
        raise StateUnreadable(f"{state_dir} is not a directory: give the daemon's --state-dir")
    if not os.access(state_dir, os.R_OK | os.X_OK):
        raise StateUnreadable(
            f"cannot read the state directory {state_dir}: permission denied (it is the "
            "daemon's, owner-only: run this as root, e.g. with sudo)"
        )


def _host_ranges(node_name: str, cluster: ClusterHoldings | None) -> HostRanges:
    """This host's ranges as the stopped daemon had them: its address plans, and in cluster
    mode the blocks it holds."""
    if cluster is None:
        return StaticPlan(node_name)
    by_scope: dict[Scope, list[Subnet]] = defaultdict(list)
    for block in cluster.blocks:
        by_scope[block.scope].append(block.block)

    def blocks(scope: Scope) -> list[Subnet]:
        return sorted(by_scope.get(scope, []))

    return BlockPlan(node_name, blocks)
