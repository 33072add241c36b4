"""Allocate and release in a loop on a SQLite-backed service, printing every answered call.

Run by `test_ipam_sqlite.py`, which kills this process with SIGKILL at a random moment and then
checks that everything printed (= answered to Docker) survived. Usage: crash_worker.py STATE_DIR
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from ipam.defaults import builtin_default_pools
from ipam.service import IpamService, IpamSettings
from plugin.state_files import StateFiles


async def main(state_dir: Path) -> None:
    service = IpamService.open_sqlite(
        state_dir, IpamSettings("hostA", builtin_default_pools("hostA"), 300.0), files=StateFiles()
    )
    await service.load()
    grant = await service.request_pool(
        address_space="local", pool="198.18.0.0/16", sub_pool="", options={}, v6=False
    )
    print(f"P {grant.pool_id}", flush=True)
    n = 0
    while True:
        n += 1
        answer = await service.request_address(
            pool_id=grant.pool_id,
            address="",
            options={"com.docker.network.endpoint.name": f"c{n}"},
        )
        address = answer.address.split("/")[0]
        print(f"A {address}", flush=True)
        if n % 3 == 0:
            await service.release_address(pool_id=grant.pool_id, address=address)
            print(f"R {address}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
