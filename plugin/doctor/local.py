"""The checks run by the command line itself, when no daemon answers.

In this process's network namespace, with its privileges (root: the test link, raw frames), the
state read read-only from the state directory (plugin/admin/offline.py), stale allocations judged
on it as a running daemon judges its own. A stopped daemon has seen no claims: that check says
skipped.
"""

from __future__ import annotations

import time
from pathlib import Path

from driver.errors import DriverError
from driver.netlink import LinkLayer
from plugin.admin.narrow import NoSuchNetwork, match_network, narrow
from plugin.admin.offline import StateUnreadable, read_state_dir
from plugin.admin.report import StatusReport
from plugin.doctor.model import Check, DoctorReport
from plugin.doctor.runner import diagnose
from plugin.doctor.scene import Host, Inputs, Request


class LocalStateError(Exception):
    """What the caller asked for is not in the state (an unknown network): one line."""


async def diagnose_here(asked: Request, state_dir: Path, node_name: str) -> DoctorReport:
    now = time.time()
    problem: str | None = None
    try:
        report = read_state_dir(state_dir, node_name, now)
    except StateUnreadable as exc:
        problem = str(exc)
    except Exception as exc:  # a state this code cannot read is reported, never a traceback
        problem = f"cannot read the state in {state_dir}: {type(exc).__name__}: {exc}"
    if problem is not None:
        report = StatusReport(
            source="state-dir",
            state_dir=str(state_dir),
            node_name=node_name,
            generated_at=now,
            health="unusable",
            problems=[problem],
        )
    if asked.network is not None:
        try:
            report = narrow(report, [match_network(report, asked.network)])
        except NoSuchNetwork as exc:
            raise LocalStateError(str(exc)) from None
    try:
        links = await LinkLayer.open()
    except DriverError as exc:
        return DoctorReport(
            where="in-process",
            generated_at=now,
            state_dir=str(state_dir),
            checks=[Check(name="links", subject="this host", verdict="problem", found=str(exc))],
        )
    try:
        host = Host(links=links, on_kernel=True, netns=None)
        return await diagnose(
            Inputs(
                where="in-process", report=report, host=host, request=asked, state_problem=problem
            )
        )
    finally:
        links.close()
