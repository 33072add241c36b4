"""`pymacvlan status`: what the plugin holds (networks, endpoints, pools, addresses, ...).

It asks the running daemon (`GET /pymacvlan/v1/status` on its socket, found by
plugin/admin/locate.py: the managed plugin's, without a path); when nothing answers there it
reads the daemon's state directory itself, read-only (plugin/admin/offline.py), and says so.
Docker, when it answers, adds what only it knows: network and container names. It is never
required: without it the output says "name unknown".

Exit status: 0 when the report is shown (a report that shows a problem included), 1 when neither
the daemon nor its state could be read (one line on stderr), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from plugin.admin import locate
from plugin.admin.engine import Engine, EngineUnavailable
from plugin.admin.paths import STATUS_PATH
from plugin.admin.unixhttp import Unreachable, request_json

if TYPE_CHECKING:
    from plugin.admin.report import StatusReport

DAEMON_TIMEOUT = 10.0  # the route answers at once; a daemon this slow is stuck
DOCKER_TIMEOUT = 5.0  # names are a nicety: do not make the user wait for a stuck engine


class CannotRead(Exception):
    """Neither the daemon nor its state directory could be read (one line)."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "status",
        help="show what the plugin holds: networks, endpoints, pools, addresses",
        description="Show what pymacvlan holds on this host: networks, endpoints, pools and "
        "their use, addresses, cluster blocks, LAN conflicts, DHCP leases. Asks the running "
        "daemon (the managed plugin's, found through Docker); when none answers, reads its "
        "state directory read-only.",
    )
    parser.add_argument(
        "--network",
        metavar="NAME|ID",
        help="only this network (a Docker name, an id or the start of one) and what it uses",
    )
    parser.add_argument("--json", action="store_true", help="the report as JSON, for scripts")
    locate.add_target_arguments(parser)


def run(args: argparse.Namespace) -> int:
    # Imported only now: `pymacvlan serve` imports this module too, before it binds its socket.
    from plugin.admin.narrow import NoSuchNetwork
    from plugin.admin.status_view import render

    try:
        target = locate.locate(args)
        report, origin = read_report(target)
        report = with_names(report, target)
        if args.network is not None:
            report = narrowed(report, args.network)
    except (CannotRead, NoSuchNetwork) as exc:
        print(f"pymacvlan status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        sys.stdout.write(render(report, origin=origin, now=time.time()))
    return 0


def read_report(target: locate.Target) -> tuple[StatusReport, str]:
    """The daemon's report, else the state directory's; and a line saying which."""
    from pydantic import ValidationError

    from plugin.admin.report import StatusReport

    try:
        status, body = request_json(target.socket, "GET", STATUS_PATH, timeout=DAEMON_TIMEOUT)
    except Unreachable as unreachable:
        return _read_offline(target, unreachable)
    if status != 200:
        err = body.get("Err") if isinstance(body, dict) else None
        raise CannotRead(
            f"the daemon on {target.socket} answered {status}"
            + (f": {str(err)[:300]}" if err else "")
            + (" (is it older than this command? it has no status route)" if status == 404 else "")
        )
    try:
        report = StatusReport.model_validate(body)
    except ValidationError as exc:
        raise CannotRead(
            f"the daemon on {target.socket} answered something that is not a status report "
            f"({exc.error_count()} problems, the first: {exc.errors()[0]['msg']})"
        ) from None
    if target.plugin is not None:
        # The daemon names its paths as it sees them inside the plugin; the host's are these.
        report = report.model_copy(
            update={"state_dir": str(target.state_dir), "socket": str(target.socket)}
        )
    origin = f"pymacvlan answers on {target.socket}"
    if target.how != f"socket {target.socket}":
        origin += f"\n({target.how})"
    return report, origin


def _read_offline(target: locate.Target, unreachable: Unreachable) -> tuple[StatusReport, str]:
    # Imported only now: the stores and the allocator are not needed to ask a daemon.
    from plugin.admin.offline import StateUnreadable, read_state_dir

    try:
        report = read_state_dir(target.state_dir, locate.node_name(target), time.time())
    except StateUnreadable as exc:
        raise CannotRead(
            f"the daemon does not answer ({unreachable}) and its state cannot be read: {exc}"
        ) from None
    origin = (
        f"the daemon is not running; read from {target.state_dir}\n"
        f"(nothing answers on {target.socket}: {_reason(unreachable)}; {target.how})"
    )
    return report, origin


def _reason(exc: Unreachable) -> str:
    text = str(exc)
    return text.split(": ", 1)[1] if ": " in text else text


# ------------------------------------------------------------------------------- names


def with_names(report: StatusReport, target: locate.Target) -> StatusReport:
    """The report with Docker's network and container names, where Docker answers; else with
    why it could not be asked (`names_problem`)."""
    if target.engine_problem is not None:
        return report.model_copy(update={"names_problem": target.engine_problem})
    try:
        engine = Engine.from_env(timeout=DOCKER_TIMEOUT)
        listed = engine.get("/networks")
        networks = {
            str(n["Id"]): str(n.get("Name", ""))
            for n in (listed if isinstance(listed, list) else [])
            if isinstance(n, dict) and "Id" in n
        }
        containers: dict[str, str] = {}
        for network in report.networks:
            if network.id in networks:
                containers.update(_containers(engine.get(f"/networks/{network.id}")))
    except EngineUnavailable as exc:
        return report.model_copy(update={"names_problem": str(exc)})
    return report.model_copy(
        update={
            "networks": [
                n.model_copy(update={"name": networks.get(n.id) or None}) for n in report.networks
            ],
            "endpoints": [
                e.model_copy(update={"container": containers.get(e.id) or e.container})
                for e in report.endpoints
            ],
            "names_problem": None,
        }
    )


def _containers(network: Any) -> dict[str, str]:
    """Endpoint id -> container name, from Docker's `GET /networks/ID`."""
    found: dict[str, str] = {}
    if not isinstance(network, dict):
        return found
    for entry in (network.get("Containers") or {}).values():
        if isinstance(entry, dict) and entry.get("EndpointID") and entry.get("Name"):
            found[str(entry["EndpointID"])] = str(entry["Name"])
    return found


def narrowed(report: StatusReport, wanted: str) -> StatusReport:
    """The report narrowed to the network `wanted` names: an id, a Docker name, the start of
    an id. Raises `NoSuchNetwork` (unless the state is unusable: then there is nothing to
    match, and the report says why)."""
    from plugin.admin.narrow import match_network, narrow

    by_name = [n.id for n in report.networks if n.name == wanted]
    if any(n.id == wanted for n in report.networks):
        ids = [wanted]
    elif len(by_name) == 1:
        ids = by_name
    elif report.health != "ready":
        ids = []
    else:
        ids = [match_network(report, wanted)]
    return narrow(report, ids)
