"""`pymacvlan doctor`'s report as people read it: one block per check, the problems first.

PROBLEM  child-mac  gateway 192.0.2.1 from eth0
         192.0.2.1 answers eth0 (MAC 52:54:00:12:34:56) but not a macvlan link with ...
         what to do: let the NIC pass other MACs: promiscuous mode / forged transmits ...
"""

from __future__ import annotations

import textwrap

from plugin.doctor.model import VERDICTS, Check, DoctorReport, Verdict

WIDTH = 100
_LABELS: dict[Verdict, str] = {
    "problem": "PROBLEM",
    "warning": "warning",
    "ok": "ok",
    "skipped": "skipped",
}
_ORDER: dict[Verdict, int] = {"problem": 0, "warning": 1, "skipped": 2, "ok": 3}
_INDENT = " " * 9


def render(report: DoctorReport, where: str) -> str:
    lines = [f"pymacvlan doctor: {where}", ""]
    for check in sorted(report.checks, key=lambda c: _ORDER[c.verdict]):
        lines += _block(check)
    counts = ", ".join(f"{report.count(v)} {v}" for v in VERDICTS if report.count(v))
    lines += ["", counts or "no checks ran"]
    return "\n".join(lines)


def _block(check: Check) -> list[str]:
    head = f"{_LABELS[check.verdict]:<8} {check.name}  {check.subject}"
    body = textwrap.wrap(check.found, WIDTH, initial_indent=_INDENT, subsequent_indent=_INDENT)
    if check.todo:
        body += textwrap.wrap(
            "what to do: " + check.todo,
            WIDTH,
            initial_indent=_INDENT,
            subsequent_indent=_INDENT + "  ",
        )
    return [head, *body]
