"""Docker end to end: ``docker run`` latency and container-to-container throughput, pymacvlan (the
managed plugin, built from this checkout) against Docker's built-in macvlan driver, on one parent.

    sudo .venv/bin/python -m tests.bench.bench_docker            # engine bookworm, ~3 minutes
    sudo PYMACVLAN_TEST_ENGINE=sid .venv/bin/python -m tests.bench.bench_docker
    sudo .venv/bin/python -m tests.bench.bench_docker --quick    # fewer rounds, 2 s iperf3
    sudo .venv/bin/python -m tests.bench.bench_docker --json docker-bench.json
    sudo .venv/bin/python -m tests.bench.bench_docker --rounds 30 --after-idle 5 --latency-only

It starts the test harness's dockerd (the machine-wide harness lock applies: it waits for other
test runs), builds the plugin on the debootstrap base exactly as the e2e suite does, and puts
four networks on one veth parent whose other end is a "LAN" namespace:

* ``builtin``: ``-d macvlan`` with Docker's default IPAM (198.51.100.0/24);
* ``pymacvlan``: ``-d <plugin> --ipam-driver <plugin>`` (203.0.113.0/24), probing on (the
  default: every address is asked of the LAN before it is handed out, docs/ipam.md);
* ``pymacvlan-probe-off``: the same with ``--ipam-opt probe=off`` (198.18.2.0/24), which shows
  what probing costs (latency only);
* ``pymacvlan-docker-ipam``: ``-d <plugin>`` with Docker's IPAM (198.18.1.0/24), which
  separates the driver's cost from the IPAM's.

Latency: ``docker run --rm --network NET busybox true`` as the user times it (CLI included; the
whole endpoint life: address, endpoint, join, leave, release), rounds taking the networks in
turn so that the machine's load hits all of them alike; ``--after-idle N`` adds N rounds each
after a pause longer than probing's memory of silent addresses (the first container after a
quiet while). Throughput: iperf3 between two containers of one network, run from the host inside
the containers' network namespaces (``nsenter -t PID -n iperf3``): the same kernel path as an
iperf3 inside the containers, without an iperf3 image. Traffic stays between the containers'
macvlan links (bridge mode).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.e2e.managed import (
    LAN_PEER,
    LAN_PEER_2,
    LAN_SUBNET,
    LAN_SUBNET_2,
    ManagedPlugin,
    build_plugin,
    make_lan,
)
from tests.harness import dockerd as engines
from tests.harness import images
from tests.harness.dockerd import Dockerd
from tests.harness.netns import NetnsLab
from tests.harness.paths import scratch_dir

PLUGIN = "pmv-bench"
IMAGE_SUBNET_3 = "198.18.1.0/24"
PROBE_OFF_SUBNET = "198.18.2.0/24"
# Longer than probing's "nobody answered" memory (ipam/probing.py VERIFIED_FOR, 30 s).
IDLE_PAUSE = 35.0


@dataclass
class LatencyRow:
    network: str
    runs: int
    median_ms: float
    p90_ms: float
    mean_ms: float
    vs_builtin: float  # median / built-in median


@dataclass
class ThroughputRow:
    network: str
    runs: int
    median_gbit_s: float
    min_gbit_s: float
    max_gbit_s: float
    vs_builtin: float  # median / built-in median


@contextlib.contextmanager
def harness_dockerd(engine_name: str) -> Iterator[Dockerd]:
    """The test harness's dockerd, with the same rules as the ``dockerd_session`` fixture: the
    machine lock, no foreign engine, docker0 and iptables put back afterwards."""
    engine = engines.engine(engine_name)
    if not engine.available():
        sys.exit(engine.missing_reason())
    lock = engines.MachineLock()
    if not lock.acquire(1800):
        sys.exit(f"another test run keeps the harness dockerd lock {lock.path}")
    try:
        with engines.running_dockerd(engine) as daemon:
            yield daemon
    except engines.ForeignEngine as exc:
        sys.exit(str(exc))
    finally:
        lock.release()


def docker_run_ms(dockerd: Dockerd, network: str, image: str) -> float:
    started = time.perf_counter()
    dockerd.cli("run", "--rm", "--network", network, image, "true")
    return (time.perf_counter() - started) * 1000


def latency(
    dockerd: Dockerd, networks: list[str], image: str, rounds: int, pause: float = 0.0
) -> list[LatencyRow]:
    """`rounds` runs per network, the networks taking turns; with `pause`, each round starts
    that many seconds after the last (the first `docker run` after a quiet while)."""
    if not pause:
        for network in networks:  # warm-up: image layers, the plugin's first calls
            for _ in range(2):
                docker_run_ms(dockerd, network, image)
    samples: dict[str, list[float]] = {n: [] for n in networks}
    for round_ in range(rounds):
        time.sleep(pause)
        # Rotate the order every round: no network always runs right after another.
        shift = round_ % len(networks)
        for network in networks[shift:] + networks[:shift]:
            samples[network].append(docker_run_ms(dockerd, network, image))
    base = statistics.median(samples[networks[0]])
    rows = []
    for network, values in samples.items():
        values.sort()
        rows.append(
            LatencyRow(
                network=network,
                runs=len(values),
                median_ms=round(statistics.median(values), 1),
                p90_ms=round(values[int(0.9 * (len(values) - 1))], 1),
                mean_ms=round(statistics.fmean(values), 1),
                vs_builtin=round(statistics.median(values) / base, 3),
            )
        )
    return rows


def container_pid(dockerd: Dockerd, name: str) -> str:
    return dockerd.cli("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()


def iperf3_gbit_s(dockerd: Dockerd, network: str, seconds: int) -> float:
    """One iperf3 TCP run, client container -> server container of `network`."""
    server, client = f"{network}-srv", f"{network}-cli"
    address = json.loads(
        dockerd.cli("inspect", "-f", "{{json .NetworkSettings.Networks}}", server).stdout
    )[network]["IPAddress"]
    in_server = ["nsenter", "-t", container_pid(dockerd, server), "-n"]
    in_client = ["nsenter", "-t", container_pid(dockerd, client), "-n"]
    srv = subprocess.Popen(
        [*in_server, "iperf3", "-s", "-1", "-B", address],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)  # let the server listen
        out = subprocess.run(
            [*in_client, "iperf3", "-J", "-c", address, "-t", str(seconds)],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 30,
        ).stdout
    finally:
        srv.wait(timeout=30)
    bits = float(json.loads(out)["end"]["sum_received"]["bits_per_second"])
    return bits / 1e9


def throughput(
    dockerd: Dockerd, networks: list[str], image: str, runs: int, seconds: int
) -> list[ThroughputRow]:
    for network in networks:
        for role in ("srv", "cli"):
            dockerd.cli(
                "run", "-d", "--name", f"{network}-{role}", "--network", network, image,
                "sleep", "3600",
            )  # fmt: skip
    samples: dict[str, list[float]] = {n: [] for n in networks}
    for run in range(runs):
        shift = run % len(networks)
        for network in networks[shift:] + networks[:shift]:
            samples[network].append(iperf3_gbit_s(dockerd, network, seconds))
    base = statistics.median(samples[networks[0]])
    return [
        ThroughputRow(
            network=network,
            runs=len(values),
            median_gbit_s=round(statistics.median(values), 2),
            min_gbit_s=round(min(values), 2),
            max_gbit_s=round(max(values), 2),
            vs_builtin=round(statistics.median(values) / base, 3),
        )
        for network, values in samples.items()
    ]


def table(rows: list[LatencyRow] | list[ThroughputRow]) -> str:
    if not rows:
        return ""
    header = list(asdict(rows[0]))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(str(v) for v in asdict(row).values()) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="5 rounds, two 2 s iperf3 runs")
    parser.add_argument("--rounds", type=int, help="docker run rounds (default 30, quick 5)")
    parser.add_argument("--latency-only", action="store_true", help="no iperf3 part")
    parser.add_argument(
        "--after-idle",
        type=int,
        default=0,
        metavar="N",
        help=f"also N rounds each {IDLE_PAUSE:g} s after the last (probing's memory gone stale)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench_docker needs root (dockerd, namespaces): run it with sudo")
    rounds, runs, seconds = (5, 2, 2) if args.quick else (30, 5, 10)
    rounds = args.rounds or rounds
    engine_name = engines.engine_names_from_env()[0]

    with (
        harness_dockerd(engine_name) as dockerd,
        tempfile.TemporaryDirectory(dir=scratch_dir(), prefix="pmv-bench-docker-") as tmp,
    ):
        lab = NetnsLab(Path(tmp))
        plugin = ManagedPlugin(f"{PLUGIN}:latest", dockerd)
        try:
            lan = make_lan(lab)
            image = images.ensure_busybox_image(dockerd)
            base = images.ensure_base_image(dockerd)
            build_plugin(dockerd, PLUGIN, Path(tmp) / "plugin", base)
            plugin.use_state_dir(Path(tmp) / "state")
            plugin.enable()
            parent = f"parent={lan.parent}"
            dockerd.cli(
                "network", "create", "-d", "macvlan", "--subnet", LAN_SUBNET_2,
                "--gateway", LAN_PEER_2, "-o", parent, "builtin",
            )  # fmt: skip
            dockerd.cli(
                "network", "create", "-d", plugin.name, "--ipam-driver", plugin.name,
                "--subnet", LAN_SUBNET, "--gateway", LAN_PEER, "-o", parent, "pymacvlan",
            )  # fmt: skip
            dockerd.cli(
                "network", "create", "-d", plugin.name, "--ipam-driver", plugin.name,
                "--subnet", PROBE_OFF_SUBNET, "--ipam-opt", "probe=off", "-o", parent,
                "pymacvlan-probe-off",
            )  # fmt: skip
            dockerd.cli(
                "network", "create", "-d", plugin.name, "--subnet", IMAGE_SUBNET_3,
                "-o", parent, "pymacvlan-docker-ipam",
            )  # fmt: skip
            networks = ["builtin", "pymacvlan", "pymacvlan-probe-off", "pymacvlan-docker-ipam"]
            lat = latency(dockerd, networks, image, rounds)
            print(f"## docker run latency ({dockerd.engine.version()}, {rounds} rounds)\n")
            print(table(lat), flush=True)
            idle: list[LatencyRow] = []
            if args.after_idle:
                idle = latency(dockerd, networks, image, args.after_idle, IDLE_PAUSE)
                print(f"\n## docker run after {IDLE_PAUSE:g} s idle ({args.after_idle} rounds)\n")
                print(table(idle), flush=True)
            # Probing must really have happened: a probe that cannot be made is logged.
            unprobed = plugin.log().count("address not probed")
            print(f"\naddresses handed out unprobed (LAN not reachable): {unprobed}", flush=True)
            thr: list[ThroughputRow] = []
            if not args.latency_only:  # probe=off changes nothing on the wire: not measured
                wired = [n for n in networks if n != "pymacvlan-probe-off"]
                thr = throughput(dockerd, wired, image, runs, seconds)
        finally:
            plugin.remove()
            lab.cleanup()
        version = dockerd.engine.version()

    if thr:
        print(f"\n## iperf3 TCP between two containers ({runs} x {seconds} s)\n")
        print(table(thr))
    if args.json:
        result = {
            "engine": version,
            "latency": [asdict(r) for r in lat],
            "latency_after_idle": [asdict(r) for r in idle],
            "throughput": [asdict(r) for r in thr],
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
