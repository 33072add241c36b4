"""``pymacvlan doctor``: why container traffic does not flow, check by check, with what to do.

The checks run where the daemon runs: the command line asks it (`POST /pymacvlan/v1/doctor` on
its socket, found as `pymacvlan status` finds it: the managed plugin through Docker's engine, or a
daemon run by hand). When no daemon answers, the command line runs the same checks itself, in
its own network namespace, with the state read read-only from the state directory; that needs
root (the test link, raw frames, the owner-only state files) and knows no claims (only a running
daemon watches for them).

Exit status: 0 when nothing is a problem (warnings and skipped checks allowed), 1 when a check
found a problem or the checks could not run, 2 for a wrong command line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from plugin.admin.engine import Engine, EngineUnavailable
from plugin.admin.locate import Target, add_target_arguments, locate, node_name
from plugin.admin.unixhttp import Unreachable, request_json

if TYPE_CHECKING:  # imported when the command runs: `pymacvlan serve` must bind its socket fast
    from plugin.doctor.model import DoctorReport
    from plugin.doctor.scene import Request

EXIT_PROBLEM = 1  # as plugin.doctor.model's
EXIT_USAGE = 2

ROUTE = "/pymacvlan/v1/doctor"
# The daemon runs every check before it answers: a child-MAC test takes about two seconds per
# parent and gateway.
ANSWER_TIMEOUT = 300.0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "doctor",
        help="why container traffic does not flow: checks with verdicts and what to do",
        description="Check the parents, the kernel, the LAN (do frames from a container's MAC "
        "leave and come back?) and the state, for every network or one; exit 1 when a check "
        "finds a problem.",
    )
    add_target_arguments(parser)
    parser.add_argument(
        "--parent",
        metavar="IFACE",
        help="check this parent interface (and the networks on it), also before any network exists",
    )
    parser.add_argument(
        "--gateway",
        metavar="ADDR",
        help="with --parent: the LAN's gateway, asked from a test link's MAC and the parent's",
    )
    parser.add_argument("--network", metavar="NAME|ID", help="check one network")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from driver.errors import InvalidOption
    from plugin.doctor.model import DoctorReport
    from plugin.doctor.scene import Request, parse_request

    try:
        asked = parse_request(args.parent, args.network, args.gateway)
    except InvalidOption as exc:
        return _fail(str(exc), EXIT_USAGE)
    target = locate(args)
    if asked.network is not None:
        asked = Request(asked.parent, _network_id(asked.network), asked.gateway)
    body = {"parent": asked.parent, "network": asked.network, "gateway": _text(asked.gateway)}
    try:
        status, answer = request_json(target.socket, "POST", ROUTE, body, timeout=ANSWER_TIMEOUT)
    except Unreachable as exc:
        return _in_process(args, asked, target, str(exc).removeprefix(f"{target.socket}: "))
    if status != 200:
        message = answer.get("Err") if isinstance(answer, dict) else None
        text = message or f"the daemon answered {status} without a message"
        return _fail(str(text), EXIT_USAGE if status == 400 else EXIT_PROBLEM)
    try:
        report = DoctorReport.model_validate(answer)
    except ValueError as exc:
        return _fail(f"the daemon's answer is not a doctor report: {str(exc)[:300]}", EXIT_PROBLEM)
    how = target.how if str(target.socket) in target.how else f"{target.how}, {target.socket}"
    return _show(args, report, f"checks run by the daemon ({how})")


def _in_process(args: argparse.Namespace, asked: Request, target: Target, why: str) -> int:
    if os.geteuid() != 0:
        return _fail(
            f"no daemon answers on {target.socket} ({why}), and the checks cannot run here "
            "without root (they make a test link, send raw frames and read the daemon's "
            "owner-only state): start the daemon, or run this as root",
            EXIT_PROBLEM,
        )
    # Imported only now: the daemon's side (netlink, the state stores) is not needed otherwise.
    from plugin.doctor.local import LocalStateError, diagnose_here

    try:
        report = asyncio.run(diagnose_here(asked, Path(target.state_dir), node_name(target)))
    except LocalStateError as exc:
        return _fail(str(exc), EXIT_USAGE)
    where = (
        f"checks run in this process, in its network namespace, with the state of "
        f"{target.state_dir} (no daemon answers on {target.socket}: {why})"
    )
    return _show(args, report, where)


def _show(args: argparse.Namespace, report: DoctorReport, where: str) -> int:
    from plugin.doctor.render import render

    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        print(render(report, where))
    return report.exit_status


def _network_id(wanted: str) -> str:
    """The id of the Docker network named `wanted`, when Docker knows it; else `wanted` as it is
    (an id, or a prefix of one: the daemon matches those)."""
    try:
        found = Engine.from_env().get(f"/networks/{urllib.parse.quote(wanted, safe='')}")
    except EngineUnavailable:
        return wanted
    network_id = found.get("Id") if isinstance(found, dict) else None
    return network_id if isinstance(network_id, str) and network_id else wanted


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _fail(message: str, status: int) -> int:
    print(f"pymacvlan doctor: {message}", file=sys.stderr)
    return status
