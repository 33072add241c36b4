"""kill -9 during an allocation storm loses nothing answered and never doubles an address."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

pytestmark = pytest.mark.asyncio

PYMACVLAN = [sys.executable, "-m", "plugin.cli"]


async def start(sock: Path, state: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *PYMACVLAN,
            "serve",
            "--socket",
            str(sock),
            "--state-dir",
            str(state),
            "--node-name",
            "node1",
            "--quarantine-seconds",
            "0",
            stdout=out,
            stderr=out,
            cwd=Path(__file__).resolve().parents[2],
        )
    for _ in range(200):
        # The killed daemon's socket file is still there: wait until someone answers on it.
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_unix_connection(str(sock))
            writer.close()
            return proc
        await asyncio.sleep(0.05)
    raise AssertionError(f"daemon did not bind {sock}: {log.read_text()}")


async def call(
    session: aiohttp.ClientSession, method: str, body: dict[str, object]
) -> dict[str, Any]:
    async with session.post(f"http://plugin/{method}", data=json.dumps(body)) as resp:
        answer: dict[str, Any] = await resp.json(content_type=None)
        answer["_status"] = resp.status
        return answer


async def storm(sock: Path, pool_id: str, answered: list[str], workers: int = 16) -> None:
    """Allocate until the daemon dies; record only the answers that arrived."""
    connector = aiohttp.UnixConnector(path=str(sock), limit=workers)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while True:
                answer = await call(session, "IpamDriver.RequestAddress", {"PoolID": pool_id})
                assert answer["_status"] == 200, answer
                answered.append(answer["Address"])

        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in pending:
            task.cancel()
        for task in done:
            # Dying mid-request is the point of the test; anything else is a failure.
            exc = task.exception()
            assert isinstance(exc, aiohttp.ClientError | ConnectionError), exc


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_kill_9_during_allocation_storm(tmp_path: Path, seed: int) -> None:
    sock, state, log = tmp_path / "p.sock", tmp_path / "state", tmp_path / "daemon.log"
    proc = await start(sock, state, log)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock))) as s:
            pool = await call(
                s, "IpamDriver.RequestPool", {"AddressSpace": "local", "Pool": "198.18.0.0/16"}
            )
        answered: list[str] = []
        storming = asyncio.create_task(storm(sock, pool["PoolID"], answered))
        await asyncio.sleep(random.Random(seed).uniform(0.3, 1.2))
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await asyncio.wait_for(storming, 30)
        assert len(answered) > 20, "the storm never got going"
        assert len(set(answered)) == len(answered), "an address was handed out twice"

        proc = await start(sock, state, log)
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock))) as s:
            # Every answered allocation is still held after the restart...
            for addr in answered:
                clash = await call(
                    s,
                    "IpamDriver.RequestAddress",
                    {"PoolID": pool["PoolID"], "Address": addr.split("/")[0]},
                )
                assert "Address already in use" in clash.get("Err", ""), (addr, clash)
            # ...and new allocations never reuse one.
            fresh = [
                (await call(s, "IpamDriver.RequestAddress", {"PoolID": pool["PoolID"]}))["Address"]
                for _ in range(50)
            ]
        assert not set(fresh) & set(answered)
        assert len(set(fresh)) == 50
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
