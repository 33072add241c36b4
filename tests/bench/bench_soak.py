"""Soak: 10,000 container-like cycles on a real daemon, a kill -9 and restart every 1,000.

    .venv/bin/python -m tests.bench.bench_soak                  # the three parts below (root)
    .venv/bin/python -m tests.bench.bench_soak --cycles 2000 --life-cycles 1000
    .venv/bin/python -m tests.bench.bench_soak --json out.json

Each cycle is `docker run --rm` as dockerd drives the plugin (RequestAddress, CreateEndpoint,
Join, Leave, DeleteEndpoint, ReleaseAddress; tests/harness/soak.py), with four containers alive
at any time, on a veth parent in a namespace of its own. Three parts, a table each for
docs/performance.md; every column must stay flat:

1. `--cycles` (10,000) with a kill -9 and restart every `--kill-every` (1,000): the daemon's RSS
   (sampled just before each kill, after 1,000 cycles of one daemon's life), open fds, threads,
   links in its namespace, state rows and file sizes.
2. `--life-cycles` (5,000) in one daemon's life, a sample every 500: what months without a
   restart look like.
3. `--network-cycles` (2,000) `docker network create` + `rm` on that same daemon.

An address handed out twice or a request that fails stops the run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from tests.bench.report import Column, num, plain, table
from tests.harness.netns import NetnsLab
from tests.harness.plugind import PluginDaemons
from tests.harness.soak import Sample, Soak, SoakResult


def row(sample: Sample) -> dict[str, object]:
    return {
        "cycles": sample.cycles,
        "restarts": sample.restarts,
        "rss_mib": f"{sample.rss_kib / 1024:.1f}",
        "fds": sample.fds,
        "packet_sockets": sample.packet_sockets,
        "threads": sample.threads,
        "links": sample.links,
        "endpoints": sample.rows["endpoints"],
        "allocations": sample.rows["allocations"],
        "quarantine": sample.rows["quarantine"],
        "ipam_kib": sample.file_kib.get("ipam.sqlite3", 0)
        + sample.file_kib.get("ipam.sqlite3-wal", 0),
        "driver_kib": sample.file_kib.get("driver.sqlite3", 0)
        + sample.file_kib.get("driver.sqlite3-wal", 0),
        "seconds": sample.seconds,
    }


COLUMNS: list[Column] = [
    ("cycles", "cycles", num),
    ("restarts", "kill -9s", num),
    ("rss_mib", "RSS MiB", plain),
    ("fds", "fds (no packet sockets)", num),
    ("packet_sockets", "packet sockets", num),
    ("threads", "threads", num),
    ("links", "links", num),
    ("endpoints", "endpoints", num),
    ("allocations", "allocations", num),
    ("quarantine", "resting", num),
    ("ipam_kib", "ipam.sqlite3 (+wal) KiB", num),
    ("driver_kib", "driver.sqlite3 (+wal) KiB", num),
    ("seconds", "elapsed s", num),
]


NETWORK_COLUMNS: list[Column] = [
    ("cycles", "networks created and removed", num),
    ("rss_mib", "RSS MiB", plain),
    ("fds", "fds", num),
    ("links", "links", num),
    ("ipam_kib", "ipam.sqlite3 (+wal) KiB", num),
    ("driver_kib", "driver.sqlite3 (+wal) KiB", num),
    ("seconds", "elapsed s", num),
]


def _progress(sample: Sample) -> None:
    print(
        f"  {sample.cycles:>6} cycles  RSS {sample.rss_kib / 1024:6.1f} MiB  "
        f"fds {sample.fds}  links {sample.links}  {sample.seconds:.0f} s",
        file=sys.stderr,
        flush=True,
    )


def _summary(result: SoakResult) -> str:
    return (
        f"{result.addresses_handed_out:,} addresses handed out ({result.distinct_addresses} "
        f"distinct), none twice at once; links left behind: {len(result.leftover_links)}; "
        f"rows at the end: {result.final_rows}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--kill-every", type=int, default=1_000)
    parser.add_argument("--life-cycles", type=int, default=5_000)
    parser.add_argument("--network-cycles", type=int, default=2_000)
    parser.add_argument(
        "--quick", action="store_true", help="2,000 cycles, 1,000 in one life, 500 networks"
    )
    parser.add_argument("--json", type=Path, help="also write the samples here")
    args = parser.parse_args(argv)
    if args.quick:
        args.cycles, args.life_cycles, args.network_cycles = 2_000, 1_000, 500
    if os.geteuid() != 0:
        print("bench_soak needs root (namespaces, links)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="pmv-soak-") as tmp:
        lab = NetnsLab(Path(tmp))
        daemons = PluginDaemons(Path(tmp))
        try:
            print(f"1. {args.cycles:,} cycles, kill -9 every {args.kill_every:,}", file=sys.stderr)
            killed = Soak(lab, daemons, window=4, label="kill").run(
                args.cycles,
                checkpoint_every=args.kill_every,
                kill_every=args.kill_every,
                on_sample=_progress,
            )
            print(f"2. {args.life_cycles:,} cycles, one daemon", file=sys.stderr)
            soak = Soak(lab, daemons, window=4, label="life")
            life = soak.run(
                args.life_cycles,
                checkpoint_every=max(1, args.life_cycles // 10),
                on_sample=_progress,
            )
            print(f"3. {args.network_cycles:,} networks", file=sys.stderr)
            networks = soak.network_churn(
                args.network_cycles,
                checkpoint_every=max(1, args.network_cycles // 4),
                on_sample=_progress,
            )
        finally:
            daemons.cleanup()
            lab.cleanup()
    print(f"1. {args.cycles:,} container cycles, kill -9 and restart every {args.kill_every:,}:")
    print()
    print(table([row(s) for s in killed.samples], COLUMNS))
    print()
    print(_summary(killed))
    print()
    print(f"2. {args.life_cycles:,} container cycles, one daemon's life:")
    print()
    print(table([row(s) for s in life.samples], COLUMNS))
    print()
    print(_summary(life))
    print()
    print(f"3. `docker network create` + `rm`, {args.network_cycles:,} times, the same daemon:")
    print()
    print(table([row(s) for s in networks], NETWORK_COLUMNS))
    if args.json:
        samples = {
            "killed": [s.as_json() for s in killed.samples],
            "life": [s.as_json() for s in life.samples],
            "networks": [s.as_json() for s in networks],
        }
        args.json.write_text(json.dumps(samples, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
