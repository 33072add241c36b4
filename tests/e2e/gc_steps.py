"""Steps of the `pymacvlan gc` test against the managed plugin (tests/e2e/test_managed_plugin.py):
an allocation Docker never knew, made on the plugin's own socket; `pymacvlan gc` run as a user
runs it, with DOCKER_HOST naming the test's dockerd."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.managed import ManagedPlugin
from tests.harness.proc import HarnessError
from tests.harness.unixhttp import request

DOCKER_ACCEPT = "application/vnd.docker.plugins.v1.2+json"


def pool_of(p: ManagedPlugin, address: str) -> str:
    """The pool ID holding `address`, read-only from the plugin's state (Docker does not show
    pool IDs)."""
    if p.state_dir is None:
        raise HarnessError(f"{p.name} has no state directory of the test's")
    db = p.state_dir / "ipam.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        row = conn.execute(
            "SELECT pool_id FROM allocations WHERE address = ?", (address,)
        ).fetchone()
    if row is None:
        raise HarnessError(f"no allocation of {address} in {db}")
    return str(row[0])


def request_address_behind_dockers_back(p: ManagedPlugin, pool_id: str) -> str:
    """`IpamDriver.RequestAddress` on the plugin's socket, as dockerd sends it; the address.
    Docker never hears of it: what a dockerd that died before CreateEndpoint leaves behind."""
    body = json.dumps({"PoolID": pool_id, "Address": "", "Options": {}}).encode()
    headers = {"Content-Type": "application/json", "Accept": DOCKER_ACCEPT}
    status, raw = request(p.socket_path, "POST", "/IpamDriver.RequestAddress", body, headers)
    if status != 200:
        raise HarnessError(f"RequestAddress answered {status}: {raw[:500]!r}")
    return str(json.loads(raw)["Address"]).split("/")[0]


def pymacvlan(p: ManagedPlugin, *args: str) -> subprocess.CompletedProcess[str]:
    """The `pymacvlan` command of this checkout's virtualenv, with DOCKER_HOST naming the
    test's dockerd (and no socket path: it finds the managed plugin itself)."""
    script = shutil.which("pymacvlan", path=str(Path(sys.executable).parent))
    argv = [script] if script else [sys.executable, "-m", "plugin.cli"]
    return subprocess.run(
        [*argv, *args], env=p.dockerd.env(), capture_output=True, text=True, timeout=120
    )


def gc_json(p: ManagedPlugin, *args: str) -> dict[str, Any]:
    """`pymacvlan gc --json ARGS`: its answer (exit 0 required)."""
    result = pymacvlan(p, "gc", "--json", *args)
    if result.returncode != 0:
        raise AssertionError(f"pymacvlan gc exited {result.returncode}:\n{result.stderr}")
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer
