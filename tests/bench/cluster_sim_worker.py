"""Simulated hosts in a process of their own, so that `kill -9` is real.

    python -m tests.bench.cluster_sim_worker SPEC_JSON

Why a process and not tasks of the benchmark's own: `kill -9` of a host must mean that nothing
of it runs any more (no `finally`, no lease revoked, no block given back, its state files as the
kill left them, a claim cut off between its etcd write and its cache write). A cancelled task
would still run its cleanup; a process that gets SIGKILL runs nothing.

The hosts are `SimHost`s, the same code as in the benchmark's process. Protocol, one JSON object
per line on stdout, one command on stdin:

    -> {"event": "ready"}                                  imported, nothing opened yet
    <- go                                                  every host opens and allocates
    -> {"event": "hold", "host": H, "address": A, "inside": true}   per address granted
    -> {"event": "first", "host": H, "seconds": S}         H's first address, S after "go"
    -> {"event": "error", "host": H, "error": E}           a request that failed
    -> {"event": "booted", "host": H}                      H has its `boot` addresses

after which every host keeps asking for one more address every `interval` seconds until the
process is killed.

SPEC_JSON: {"settings": {SimSettings fields}, "root": DIR, "nodes": [...], "subnet": CIDR,
"block_size": N, "boot": N, "interval": S}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ipam.errors import IpamError
from tests.bench.cluster_sim import SimHost, SimSettings


def say(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def run_host(host: SimHost, spec: dict[str, Any], go: float) -> None:
    await host.open()
    pool_id = await host.pool(spec["subnet"], int(spec["block_size"]))
    granted = 0
    while True:
        try:
            address = await host.allocate(pool_id)
        except IpamError as exc:
            say(event="error", host=host.name, error=str(exc))
            await asyncio.sleep(float(spec["interval"]))
            continue
        inside = host.inside_blocks(pool_id, address)
        say(event="hold", host=host.name, address=address, inside=inside)
        granted += 1
        if granted == 1:
            say(event="first", host=host.name, seconds=time.perf_counter() - go)
        if granted == int(spec["boot"]):
            say(event="booted", host=host.name)
        if granted >= int(spec["boot"]):
            await asyncio.sleep(float(spec["interval"]))


async def main(spec: dict[str, Any]) -> None:
    settings = SimSettings(**spec["settings"])
    root = Path(spec["root"])
    hosts = [SimHost(node, root / node, settings) for node in spec["nodes"]]
    say(event="ready")
    command = await asyncio.to_thread(sys.stdin.readline)
    if command.strip() != "go":
        return
    go = time.perf_counter()
    # Until SIGKILL. Should the benchmark itself die, its end of stdin closes: stop then, as
    # abruptly as a kill (these hosts are never stopped cleanly).
    asyncio.get_running_loop().run_in_executor(None, orphaned)
    await asyncio.gather(*(run_host(host, spec, go) for host in hosts))


def orphaned() -> None:
    sys.stdin.readline()
    os._exit(3)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
