"""Faults during a cluster-mode run: an etcd follower restarted, then the leader killed and
restarted, then hosts killed with SIGKILL and freed with `pymacvlan cluster reclaim`, while every
surviving host keeps allocating.

The hosts: `hosts - victims` `SimHost`s in this process (the survivors) and `victims` in a worker
process of their own (tests/bench/cluster_sim_worker.py), which is the one that gets SIGKILL: a
killed host must run nothing any more, not even a `finally` (see that module). All start at the
same moment and allocate `boot` addresses (/28 blocks of 198.18.0.0/16); then every survivor
asks for one more address every `interval` seconds (±50%) and releases its oldest once it holds
more than `keep`. With the default 300 s quarantine every new address is a fresh one, so the
survivors keep claiming blocks through every phase:

    steady         nothing wrong
    follower down  one etcd member (not the leader) stopped with SIGTERM
    follower back  it was started again
    leader down    the leader (asked of the members, as `etcdctl endpoint status` shows it)
                   killed with SIGKILL
    leader back    it was started again
    quorum lost    two of the three members stopped: etcd answers nothing (as when it is down,
                   or when a host is cut off from it)
    quorum back    they were started again
    hosts killed   SIGKILL to the victims' process; `pymacvlan cluster reclaim` is refused while
                   their registrations live, then run (the real command) for each once they
                   expired (`node_ttl`)
    after reclaim  the survivors go on; the victims' blocks are free for them

Checked throughout: every address granted is inside its host's blocks and held by one host at a
time (`Ledger`, the victims' grants read from their process's output), and etcd's blocks never
overlap nor disagree with the survivors' memory (`Audit`, every second). At the end, the
survivors' own books (their IPAM state) are compared with the ledger. Failures are counted per
phase, with what the host was told.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ipam.cluster.claims import list_blocks, read_nodes
from ipam.cluster.etcd import EtcdClient
from ipam.cluster.layout import Layout
from ipam.errors import IpamError
from tests.bench.cluster_sim import Audit, Ledger, SimHost, SimSettings, classify, percentile
from tests.bench.report import dec, num, plain, table
from tests.cluster.etcd_cluster import EtcdCluster
from tests.harness.paths import REPO

SUBNET = "198.18.0.0/16"
# Small blocks (16 addresses): at one new address per second, every survivor claims a block
# every 16 s or so, so that claims happen during every fault, not only inside blocks.
BLOCK = 28


@dataclass
class PhaseResult:
    name: str
    seconds: float
    allocations: int
    failed: int
    hosts_allocating: int  # survivors granted at least one address in this phase
    claims: int  # blocks claimed by survivors in this phase
    claims_failed: int
    p50_ms: float
    max_ms: float  # the slowest request of the phase
    errors: dict[str, int]
    example: str = ""  # one failed request's full answer


@dataclass
class FaultResult:
    hosts: int
    victims: int
    boot_seconds: float
    phases: list[PhaseResult]
    follower: str
    leader: str
    refused: str  # what `cluster reclaim` said right after the kill
    expired_after: float  # seconds from the kill until no victim was registered
    reclaimed_after: float  # ... until every victim's blocks were reclaimed
    victim_blocks: int  # the victims' blocks in etcd after the kill
    reclaimed_blocks: int  # what `cluster reclaim` reported
    victim_addresses: int  # addresses the victims held (freed with their blocks)
    victim_errors: int
    audits: int
    audits_skipped: int  # etcd could not be read for an audit (during the faults)
    final_allocations: int
    violations: list[str] = field(default_factory=list)


@dataclass
class _Phase:
    name: str
    started: float
    claims_before: dict[str, int]
    allocations: int = 0
    failed: int = 0
    hosts: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    example: str = ""


async def cli(etcd: EtcdCluster, prefix: str, *args: str) -> tuple[int, str, str]:
    """`pymacvlan cluster ARGS` against this run's etcd and prefix."""
    env = {
        **os.environ,
        "PYMACVLAN_ETCD_ENDPOINTS": etcd.endpoints,
        "PYMACVLAN_ETCD_PREFIX": prefix,
    }
    # The command of the virtualenv this runs in (a copy of the checkout may run the benchmark).
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "pymacvlan"),
        "cluster",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def fault_run(
    etcd: EtcdCluster,
    root: Path,
    *,
    hosts: int = 100,
    victims: int = 10,
    block_size: int = BLOCK,
    boot: int = 20,
    interval: float = 1.0,
    keep: int = 20,
    phase_seconds: float = 10.0,
    down_seconds: float = 5.0,
    node_ttl: int = 20,
    log: bool = True,
) -> FaultResult:
    prefix = f"/faults-{secrets.token_hex(4)}"
    settings = SimSettings(etcd.endpoints, prefix, node_ttl=node_ttl)
    base = root / prefix.strip("/")
    survivors = [
        SimHost(f"live{i:03d}", base / f"live{i}", settings) for i in range(hosts - victims)
    ]
    victim_names = [f"gone{i:03d}" for i in range(victims)]
    ledger = Ledger()
    layout = Layout(prefix)
    reader = EtcdClient(etcd.endpoints.split(","), 1.0)
    audit = Audit(reader, layout)
    audits_skipped = 0
    rng = random.Random(7)
    firsts: dict[str, float] = {}
    victim_errors: list[str] = []
    booted: set[str] = set()
    stopping = asyncio.Event()
    wall = time.perf_counter()

    def say(text: str) -> None:
        if log:
            print(f"[faults, {time.perf_counter() - wall:6.1f} s] {text}", file=sys.stderr)

    def begin(name: str) -> _Phase:
        say(name)
        return _Phase(name, time.perf_counter(), {h.name: len(h.claims) for h in survivors})

    phase = begin("boot")
    done: list[PhaseResult] = []

    def finish(ending: _Phase) -> None:
        new_claims = [c for h in survivors for c in h.claims[ending.claims_before[h.name] :]]
        done.append(
            PhaseResult(
                name=ending.name,
                seconds=time.perf_counter() - ending.started,
                allocations=ending.allocations,
                failed=ending.failed,
                hosts_allocating=len(ending.hosts),
                claims=sum(1 for c in new_claims if c.outcome == "claimed"),
                claims_failed=sum(1 for c in new_claims if c.outcome in ("unavailable", "failed")),
                p50_ms=1000 * percentile(ending.latencies, 50),
                max_ms=1000 * max(ending.latencies, default=0.0),
                errors=dict(ending.errors),
                example=ending.example,
            )
        )

    async def request(host: SimHost, pool_id: str) -> bool:
        current = phase
        started = time.perf_counter()
        try:
            address = await host.allocate(pool_id)
        except IpamError as exc:
            current.failed += 1
            current.errors[classify(exc)] += 1
            current.example = current.example or f"{host.name}: {exc}"
            return False
        finally:
            current.latencies.append(time.perf_counter() - started)
        ledger.hold(host.name, address, inside=host.inside_blocks(pool_id, address))
        current.allocations += 1
        current.hosts.add(host.name)
        return True

    async def live(host: SimHost, go: float) -> None:
        await host.open()
        pool_id = await host.pool(SUBNET, block_size)
        while len(host.held[pool_id]) < boot:
            if await request(host, pool_id):
                firsts.setdefault(host.name, time.perf_counter() - go)
            else:
                await asyncio.sleep(interval)
        booted.add(host.name)
        while not stopping.is_set():
            await asyncio.sleep(interval * rng.uniform(0.5, 1.5))
            await request(host, pool_id)
            if len(host.held[pool_id]) > keep:
                oldest = host.held[pool_id][0]
                await host.release(pool_id, oldest)
                ledger.drop(host.name, oldest)

    async def watch_victims(stream: asyncio.StreamReader, ready: asyncio.Event) -> None:
        while line := await stream.readline():
            event = json.loads(line)
            kind = event["event"]
            if kind == "ready":
                ready.set()
            elif kind == "hold":
                ledger.hold(event["host"], event["address"], inside=event["inside"])
            elif kind == "first":
                firsts.setdefault(event["host"], event["seconds"])
            elif kind == "booted":
                booted.add(event["host"])
            elif kind == "error":
                victim_errors.append(f"{event['host']}: {event['error']}")

    async def audits() -> None:
        nonlocal audits_skipped
        while True:
            try:
                await audit.check(survivors)
            except IpamError:
                audits_skipped += 1
            await asyncio.sleep(1.0)

    spec = {
        "settings": asdict(settings),
        "root": str(base),
        "nodes": victim_names,
        "subnet": SUBNET,
        "block_size": block_size,
        "boot": boot,
        "interval": interval,
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.bench.cluster_sim_worker",
        json.dumps(spec),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
        start_new_session=True,  # a Ctrl-C on the benchmark is not for it
    )
    tasks: list[asyncio.Task[None]] = []
    try:
        assert worker.stdout is not None
        assert worker.stdin is not None
        ready = asyncio.Event()
        watcher = asyncio.create_task(watch_victims(worker.stdout, ready))
        tasks.append(watcher)
        async with asyncio.timeout(60):
            await ready.wait()
        go = time.perf_counter()
        worker.stdin.write(b"go\n")
        await worker.stdin.drain()
        tasks += [asyncio.create_task(live(h, go)) for h in survivors]
        tasks.append(asyncio.create_task(audits()))
        while len(booted) < hosts:
            await asyncio.sleep(0.2)
            if time.perf_counter() - go > 600:
                raise TimeoutError(f"only {len(booted)} of {hosts} hosts booted in 600 s")
        boot_seconds = max(firsts.values())
        finish(phase)

        phase = begin("steady")
        await asyncio.sleep(phase_seconds)
        finish(phase)

        leader = await asyncio.to_thread(etcd.leader)
        follower = next(i for i in range(len(etcd.members)) if i != leader)
        phase = begin("follower down")
        await asyncio.to_thread(etcd.stop, follower)
        await asyncio.sleep(down_seconds)
        await asyncio.to_thread(etcd.start)
        finish(phase)
        phase = begin("follower back")
        await asyncio.sleep(phase_seconds)
        finish(phase)

        leader = await asyncio.to_thread(etcd.leader)
        phase = begin("leader down")
        await asyncio.to_thread(etcd.kill, leader)
        await asyncio.sleep(down_seconds)
        await asyncio.to_thread(etcd.start)
        finish(phase)
        phase = begin("leader back")
        await asyncio.sleep(phase_seconds)
        finish(phase)

        phase = begin("quorum lost")
        for index in range(1, len(etcd.members)):
            await asyncio.to_thread(etcd.stop, index)
        await asyncio.sleep(2 * down_seconds)
        await asyncio.to_thread(etcd.start)
        finish(phase)
        phase = begin("quorum back")
        await asyncio.sleep(phase_seconds)
        finish(phase)

        phase = begin("hosts killed")
        worker.kill()
        await worker.wait()
        killed = time.perf_counter()
        await watcher  # every grant the victims reported before they died is in the ledger
        victim_blocks = [
            c for c in await list_blocks(reader, layout) if c.owner.node in victim_names
        ]
        status, _, err = await cli(etcd, prefix, "reclaim", "--node", victim_names[0])
        refused = err.strip() if status == 1 else f"exit status {status}: {err.strip()}"
        while True:  # a dead host's registration lives until its lease runs out
            if not set(await read_nodes(reader, layout)) & set(victim_names):
                break
            await asyncio.sleep(0.5)
        expired_after = time.perf_counter() - killed
        reclaimed = 0
        victim_addresses = 0
        for name in victim_names:
            status, out, err = await cli(etcd, prefix, "reclaim", "--node", name, "--json")
            if status != 0:
                ledger.violations.append(f"reclaim of {name} failed: {err.strip()}")
                continue
            reclaimed += int(json.loads(out)["reclaimed"])
            victim_addresses += ledger.forget(name)
        reclaimed_after = time.perf_counter() - killed
        finish(phase)

        phase = begin("after reclaim")
        await asyncio.sleep(phase_seconds)
        finish(phase)
        stopping.set()
        await asyncio.sleep(interval * 1.5)  # the last requests finish
        await audit.check(survivors)
        final = final_check(survivors, ledger)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        say("closing")
        await asyncio.gather(*(h.close() for h in survivors), return_exceptions=True)
        await reader.close()
    return FaultResult(
        hosts=hosts,
        victims=victims,
        boot_seconds=boot_seconds,
        phases=done,
        follower=etcd.members[follower].name,
        leader=etcd.members[leader].name,
        refused=refused,
        expired_after=expired_after,
        reclaimed_after=reclaimed_after,
        victim_blocks=len(victim_blocks),
        reclaimed_blocks=reclaimed,
        victim_addresses=victim_addresses,
        victim_errors=len(victim_errors),
        audits=audit.checks,
        audits_skipped=audits_skipped,
        final_allocations=final,
        violations=ledger.violations + audit.violations,
    )


def final_check(survivors: list[SimHost], ledger: Ledger) -> int:
    """The survivors' own books against the ledger: the same addresses, each inside its host's
    blocks, none in two hosts' books. Returns how many allocations were checked."""
    seen: dict[str, str] = {}
    for host in survivors:
        (pool_id,) = host.held
        for record in host.service.allocations():
            address = record.address
            if address in seen:
                ledger.violations.append(
                    f"{address} in the books of {seen[address]} and {host.name}"
                )
            seen[address] = host.name
            if not host.inside_blocks(pool_id, address):
                ledger.violations.append(f"{address} of {host.name} is outside its blocks")
    names = {s.name for s in survivors}
    expected = {a: h for (_, a), h in ledger.holders.items() if h in names}
    if expected != seen:
        missing = sorted(set(expected) ^ set(seen))[:5]
        ledger.violations.append(f"the ledger and the hosts' books differ, e.g. {missing}")
    return len(seen)


def print_faults(result: FaultResult) -> None:
    print(
        f"\n## Faults: {result.hosts} hosts ({result.victims} of them killed), "
        f"every host has its first address after {result.boot_seconds:.1f} s\n"
    )
    print(
        table(
            [asdict(p) for p in result.phases],
            [
                ("name", "phase", plain),
                ("seconds", "seconds", dec),
                ("allocations", "addresses granted", num),
                ("failed", "failed requests", num),
                ("hosts_allocating", "hosts granted one", num),
                ("claims", "blocks claimed", num),
                ("claims_failed", "claims failed", num),
                ("p50_ms", "request p50 (ms)", dec),
                ("max_ms", "slowest request (ms)", dec),
            ],
        )
    )
    for p in result.phases:
        if p.errors:
            print(f"\n{p.name}: {p.errors}; e.g. {p.example}")
    print(
        f"\nleader killed: {result.leader}; follower restarted: {result.follower}\n"
        f"reclaim right after the kill: {result.refused[:200]}\n"
        f"victims' registrations expired after {result.expired_after:.1f} s; "
        f"all reclaimed after {result.reclaimed_after:.1f} s: {result.reclaimed_blocks} of "
        f"{result.victim_blocks} blocks, {result.victim_addresses} addresses freed\n"
        f"audits of etcd against the hosts: {result.audits} ({result.audits_skipped} skipped: "
        f"etcd not readable); survivors' allocations checked at the end: "
        f"{result.final_allocations}; violations: {len(result.violations)}"
    )
    for violation in result.violations[:10]:
        print(f"  VIOLATION: {violation}")
