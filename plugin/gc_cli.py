"""`pymacvlan gc`: free the allocations that are certainly stale (docs/ipam.md, "Stale
allocations").

This process asks Docker's engine (DOCKER_HOST, else /var/run/docker.sock) which addresses its
containers use, and tells the running daemon (`POST /pymacvlan/v1/gc` on its socket), which
judges and frees. The daemon never calls the engine itself. Without Docker (`--without-docker`,
or an engine that does not answer) the daemon frees only what its own endpoints make certain.
It never writes a state file itself: a daemon that does not run is an error (exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ipam.stale import DEFAULT_GRACE_SECONDS
from plugin.admin import locate
from plugin.admin.docker_view import DockerAnswer, ask_docker, ipam_names
from plugin.admin.engine import Engine, EngineUnavailable
from plugin.admin.paths import GC_PATH
from plugin.admin.unixhttp import Unreachable, request_json

GC_TIMEOUT = 600.0  # thousands of releases, each committed to disk
_ACTIONS = {
    "freed": "freed",
    "would_free": "would free",
    "changed": "not freed",
    "suspect": "suspect",
    "kept": "kept",
}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gc = sub.add_parser(
        "gc",
        help="free IPAM allocations no container holds (asks Docker, tells the daemon)",
        description="Free the addresses whose container is gone: asks Docker's engine "
        "(DOCKER_HOST) which addresses its containers use, and has the running daemon free the "
        "allocations older than --grace that nobody uses. Without Docker, only those that the "
        "plugin's own endpoints make certain. Gateways and aux addresses are never freed.",
    )
    locate.add_target_arguments(gc)
    gc.add_argument("--dry-run", action="store_true", help="show what would be freed, free nothing")
    gc.add_argument(
        "--grace",
        type=_seconds,
        default=DEFAULT_GRACE_SECONDS,
        metavar="SECONDS",
        help=f"keep allocations younger than this (default {DEFAULT_GRACE_SECONDS:g})",
    )
    gc.add_argument(
        "--without-docker",
        action="store_true",
        help="do not ask Docker: free only what the plugin's own endpoints make certain",
    )
    gc.add_argument("--json", action="store_true", help="machine-readable output")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text[:40]!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("the grace period must be 0 or more seconds")
    return value


def run(args: argparse.Namespace) -> int:
    target = locate.locate(args)
    body: dict[str, Any] = {"grace_seconds": args.grace, "dry_run": args.dry_run}
    answer: DockerAnswer | None = None
    problem: str | None = None
    if args.without_docker:
        problem = "Docker was not asked (--without-docker)"
    else:
        try:
            answer = ask_docker(Engine.from_env(), ipam_names(target, args.plugin))
        except EngineUnavailable as exc:
            problem = f"Docker could not be asked: {exc}"
    if answer is not None:
        body["docker"] = answer.to_wire()
    else:
        body["docker_problem"] = problem
    try:
        status, result = request_json(target.socket, "POST", GC_PATH, body, timeout=GC_TIMEOUT)
    except Unreachable as exc:
        print(
            f"pymacvlan gc: the daemon does not answer ({target.how}): {exc}; gc needs the "
            "running daemon (it never changes a state file itself)",
            file=sys.stderr,
        )
        return 1
    if status != 200 or not isinstance(result, dict):
        err = result.get("Err", "") if isinstance(result, dict) else ""
        print(f"pymacvlan gc: the daemon answered {status}: {err or result}", file=sys.stderr)
        return 1
    if args.json:
        result["daemon"] = target.how
        result["docker_networks"] = answer.networks if answer is not None else None
        result["docker_problem"] = problem
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(render(result, target.how, answer, problem)))
    return 0


def render(
    result: dict[str, Any], how: str, answer: DockerAnswer | None, problem: str | None
) -> list[str]:
    """The answer for people: one line per allocation freed, suspect or young; a summary."""
    lines = [f"daemon: {how}"]
    if answer is not None:
        ours = ", ".join(answer.networks) or "none"
        lines.append(f"Docker: asked; networks with this plugin's IPAM: {ours}")
        if not answer.networks:
            lines.append(
                "  (no network names this plugin as its IPAM driver: nothing is certain; is "
                "--plugin or DOCKER_HOST right?)"
            )
    else:
        lines.append(f"Docker: {problem}; only what the plugin's own endpoints make certain")
    items = result.get("allocations") or []
    width = max((len(str(i["address"])) for i in items), default=0)
    for item in items:
        action = _ACTIONS.get(str(item["action"]), str(item["action"]))
        endpoint = f" endpoint {item['endpoint']}" if item.get("endpoint") else ""
        lines.append(
            f"{action:<11} {item['address']:<{width}}  pool {item['pool_id']}  "
            f"{item['kind']}{endpoint}  age {_age(item['age_seconds'])}: {item['reason']}"
        )
    counts: dict[str, int] = {}
    for item in items:
        counts[str(item["action"])] = counts.get(str(item["action"]), 0) + 1
    done = [
        f"{counts[action]} {_ACTIONS[action]}"
        for action in ("freed", "would_free", "changed", "suspect")
        if counts.get(action)
    ]
    kept = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in sorted(result["kept"].items()))
    lines.append(
        f"{result['judged']} allocations judged (grace {result['grace_seconds']:g} s"
        f"{', dry run' if result['dry_run'] else ''}): "
        + (", ".join(done) or "nothing to free")
        + (f"; kept: {kept}" if kept else "")
    )
    return lines


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
